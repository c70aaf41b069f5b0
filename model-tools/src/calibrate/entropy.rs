//! Entropy ranges: the clipping threshold whose quantized histogram loses the least
//! information (KL divergence), as onnxruntime's `get_entropy_threshold` chooses it after
//! TensorRT's 8-bit calibration (Migacz, GTC 2017).
//!
//! For each candidate `i` from `num_quantized_bins / 2` to the middle bin, the bins
//! `[zero - i, zero + i + 1)` around the middle bin `zero` form the reference distribution
//! `p`, with everything outside added to its first and last bin; the same bins, without the
//! outliers, merged into `num_quantized_bins` groups and spread back evenly over each group's
//! non-empty bins (truncated to whole counts, as onnxruntime's int64 array truncates) form
//! `q`. Both are smoothed (zeros become 1e-4, taken off the non-zero bins) and their KL
//! divergence computed in float32 with numpy's pairwise summation; the first candidate of
//! least divergence wins and its outer edges, clamped to the values seen, are the range.

use super::histogram::SignedHistogram;
use super::percentile::clamp_to_seen;
use super::range::TensorRange;

/// numpy's float32 `add.reduce` on a contiguous array: pairwise summation with blocks of 128
/// and eight accumulators.
fn pairwise_sum(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0f32, |acc, &x| acc + x);
    }
    if n <= 128 {
        let mut r = [0.0f32; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
}

/// onnxruntime's `smooth_distribution`: zeros become `1e-4`, and the non-zero bins give up
/// the same mass between them; `None` when every bin is zero or the zeros are so many that
/// a non-zero bin would go negative.
fn smooth(counts: &[u64]) -> Option<Vec<f32>> {
    const EPS: f64 = 0.0001;
    let zeros = counts.iter().filter(|&&c| c == 0).count();
    let nonzeros = counts.len() - zeros;
    if nonzeros == 0 {
        return None;
    }
    let taken = EPS * zeros as f64 / nonzeros as f64;
    if taken >= 1.0 {
        return None;
    }
    let (eps, taken) = (EPS as f32, -taken as f32);
    Some(
        counts
            .iter()
            .map(|&c| {
                // numpy adds `eps * is_zero + taken * is_nonzero`: eps or taken, exactly.
                c as f32 + if c == 0 { eps } else { taken }
            })
            .collect(),
    )
}

/// The KL divergence of `q` from `p` after normalizing both, in float32 (scipy's
/// `entropy(p, q)` as onnxruntime re-implements it).
fn kl_divergence(p: &[f32], q: &[f32]) -> f32 {
    let (sp, sq) = (pairwise_sum(p), pairwise_sum(q));
    let terms: Vec<f32> = p
        .iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (pk, qk) = (p / sp, q / sq);
            // onnxruntime's rel_entr marks every term but positive/positive infinite (its
            // zero case is overwritten); smoothing leaves no zero, so this never bites.
            if pk > 0.0 && qk > 0.0 {
                pk * (pk / qk).ln()
            } else {
                f32::INFINITY
            }
        })
        .collect();
    pairwise_sum(&terms)
}

/// The divergence of one candidate: the bins `[start, end)` of `hist`.
fn candidate_divergence(hist: &[u64], start: usize, end: usize, quantized_bins: usize) -> f32 {
    let sliced = &hist[start..end];
    let mut p = sliced.to_vec();
    let last = p.len() - 1;
    p[0] += hist[..start].iter().sum::<u64>();
    p[last] += hist[end..].iter().sum::<u64>();

    let merged = sliced.len() / quantized_bins;
    if merged == 0 {
        return f32::INFINITY;
    }
    let mut groups: Vec<u64> = sliced
        .chunks_exact(merged)
        .take(quantized_bins)
        .map(|g| g.iter().sum())
        .collect();
    groups[quantized_bins - 1] += sliced[quantized_bins * merged..].iter().sum::<u64>();

    let mut q = vec![0u64; p.len()];
    for (g, &total) in groups.iter().enumerate() {
        let span = g * merged..(g + 1) * merged;
        let nonzero = p[span.clone()].iter().filter(|&&c| c != 0).count();
        if nonzero != 0 {
            let each = (total as f64 / nonzero as f64) as u64;
            q[span].fill(each);
        }
    }
    match (smooth(&p), smooth(&q)) {
        (Some(p), Some(q)) => kl_divergence(&p, &q),
        _ => f32::INFINITY,
    }
}

impl SignedHistogram {
    /// onnxruntime's entropy range over this histogram with `num_quantized_bins` target bins
    /// (see the [module documentation](self)). `None` before any value, or when the histogram
    /// has fewer than `num_quantized_bins` bins (onnxruntime fails there).
    ///
    /// With onnxruntime's defaults (128 bins, 128 quantized bins) there is a single candidate,
    /// the whole histogram, until batches widen it: the range is then the min/max range.
    pub fn entropy_range(&self, num_quantized_bins: usize) -> Option<TensorRange> {
        let hist = self.counts();
        let bins = hist.len();
        let (zero, half) = (bins / 2, num_quantized_bins / 2);
        if self.is_empty() || num_quantized_bins == 0 || zero < half {
            return None;
        }
        let mut best: Option<(f32, usize, usize)> = None;
        for i in half..=zero {
            let (start, end) = (zero - i, (zero + i + 1).min(bins));
            let divergence = candidate_divergence(hist, start, end, num_quantized_bins);
            // numpy.argmin: the first least value (NaN counts as least, as in numpy).
            let better = match best {
                None => true,
                Some((least, ..)) => !least.is_nan() && (divergence < least || divergence.is_nan()),
            };
            if better {
                best = Some((divergence, start, end));
            }
        }
        let (_, start, end) = best?;
        let edges = self.edges();
        Some(clamp_to_seen(
            edges[start],
            edges[end],
            self.min(),
            self.max(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sums_match_numpy_order() {
        let a: Vec<f32> = (0..1000).map(|i| (i as f32) * 0.1).collect();
        // Exact sum 49950; the blocked order stays within float32 rounding of it.
        assert!((pairwise_sum(&a) - 49950.0).abs() < 0.05);
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        assert_eq!(pairwise_sum(&[]), 0.0);
    }

    #[test]
    fn smoothing_moves_mass_onto_empty_bins() {
        let s = smooth(&[0, 2, 0, 0]).unwrap();
        assert_eq!(s[0], 0.0001f32);
        assert_eq!(s[1], 2.0 - 0.0003f32);
        assert!(smooth(&[0, 0]).is_none());
    }

    #[test]
    fn identical_distributions_diverge_by_nothing() {
        let p = [1.0, 2.0, 3.0];
        assert!(kl_divergence(&p, &p).abs() < 1e-7);
        assert!(kl_divergence(&p, &[3.0, 2.0, 1.0]) > 0.1);
    }

    #[test]
    fn onnxruntime_defaults_give_the_min_max_range_for_one_batch() {
        let mut h = SignedHistogram::new(128);
        let values: Vec<f32> = (0..1000)
            .map(|i| (i as f32 / 100.0).sin() * 3.0 - 0.5)
            .collect();
        h.observe(&values).unwrap();
        let r = h.entropy_range(128).unwrap();
        assert_eq!((r.min, r.max), (h.min(), h.max()));
        assert_eq!(h.entropy_range(256), None);
    }

    #[test]
    fn a_far_outlier_is_clipped() {
        let mut h = SignedHistogram::new(2048);
        let mut values: Vec<f32> = (0..20_000)
            .map(|i| (((f64::from(i) * 0.618_033_988_75).fract() - 0.5) * 2.0) as f32)
            .collect();
        values.push(100.0);
        h.observe(&values).unwrap();
        // Bins of 0.1 over ±100; candidates start at ±6.3 (129 bins): the one chosen stops
        // far short of the outlier, and its lower edge is clamped to the lowest value.
        let r = h.entropy_range(128).unwrap();
        assert!(r.max > 6.0 && r.max < 20.0, "{r}");
        assert_eq!(r.min, h.min());
    }
}
