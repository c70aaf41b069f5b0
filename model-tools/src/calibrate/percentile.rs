//! Percentile ranges, as onnxruntime's `HistogramCollector.compute_percentile` chooses them.

use super::histogram::{AbsHistogram, SignedHistogram};
use super::range::TensorRange;

/// `numpy.cumsum(counts / counts.sum())`: the cumulative share of each bin, in float64.
fn cumulative_shares(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>() as f64;
    let mut acc = 0.0;
    counts
        .iter()
        .map(|&c| {
            acc += c as f64 / total;
            acc
        })
        .collect()
}

/// `numpy.searchsorted(cdf, share)`: the first bin whose cumulative share reaches `share`
/// (`cdf.len()` when none does).
fn first_reaching(cdf: &[f64], share: f64) -> usize {
    cdf.partition_point(|&c| c < share)
}

/// `[lo, hi]` narrowed to `[min, max]`, as onnxruntime clamps every threshold to the values
/// seen.
pub(crate) fn clamp_to_seen(lo: f32, hi: f32, min: f32, max: f32) -> TensorRange {
    TensorRange::new(
        if lo < min { min } else { lo },
        if hi > max { max } else { hi },
    )
}

impl AbsHistogram {
    /// onnxruntime's symmetric percentile: the left edge `e` of the bin where the cumulative
    /// share of absolute values reaches `percentile / 100`, as `[-e, e]` clamped to the values
    /// seen (so a non-negative tensor gets `[min, e]`). `None` before any value.
    pub fn percentile_range(&self, percentile: f64) -> Option<TensorRange> {
        if self.is_empty() {
            return None;
        }
        let cdf = cumulative_shares(self.counts());
        let edge = self.edges()[first_reaching(&cdf, percentile / 100.0)];
        Some(clamp_to_seen(-edge, edge, self.min(), self.max()))
    }
}

impl SignedHistogram {
    /// onnxruntime's percentile without `symmetric`: `(100 - percentile) / 2` percent cut on
    /// each side; each bound is the left edge of the bin where the cumulative share reaches
    /// it, clamped to the values seen. `None` before any value.
    pub fn percentile_range(&self, percentile: f64) -> Option<TensorRange> {
        if self.is_empty() {
            return None;
        }
        let cdf = cumulative_shares(self.counts());
        let cut = (100.0 - percentile) / 200.0;
        let edges = self.edges();
        let lo = edges[first_reaching(&cdf, cut)];
        let hi = edges[first_reaching(&cdf, 1.0 - cut)];
        Some(clamp_to_seen(lo, hi, self.min(), self.max()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1, 2, ..., 100.
    fn hundred() -> Vec<f32> {
        (1..=100).map(|v| v as f32).collect()
    }

    #[test]
    fn symmetric_percentile_takes_the_left_edge_of_the_bin_that_reaches_it() {
        let mut h = AbsHistogram::new(99);
        let mut values = hundred();
        values[0] = -1.0;
        h.observe(&values).unwrap();
        // Bins of width 1 over [1, 100]: bin i holds i + 1 (the last also 100); 89.5% of the
        // values are reached in bin 89, whose left edge is 90; -90 is clamped to min = -1.
        assert_eq!(h.percentile_range(89.5), Some(TensorRange::new(-1.0, 90.0)));
        // 99.5% is reached in the last bin (left edge 99).
        assert_eq!(h.percentile_range(99.5), Some(TensorRange::new(-1.0, 99.0)));
        assert_eq!(AbsHistogram::new(4).percentile_range(99.0), None);
    }

    #[test]
    fn asymmetric_percentile_cuts_half_on_each_side() {
        let mut h = SignedHistogram::new(200);
        let values: Vec<f32> = hundred().into_iter().flat_map(|v| [v, -v]).collect();
        h.observe(&values).unwrap();
        // 200 bins of width 1 over [-100, 100]: -100..-1 in bins 0..99, 1..98 in bins
        // 101..198, 99 and 100 in bin 199. 4.75% (9.5 values) cut below is reached in bin 9
        // (left edge -91); 95.25% in bin 191 (left edge 91).
        assert_eq!(
            h.percentile_range(90.5),
            Some(TensorRange::new(-91.0, 91.0))
        );
    }
}
