//! MSE ranges (this crate's own method): the clipping threshold that minimizes the mean
//! squared error that quantizing the histogram's values would cause.
//!
//! Candidates are symmetric in bins about zero: for `k = 0, 1, ...` the range
//! `[edges[k], edges[n - k]]` of a histogram of `n` bins, each bound clamped to the values seen
//! (so `k = 0` is the min/max range and a non-negative tensor gets `[0, t]`). For a candidate
//! `[lo, hi]`, quantization is affine over `[min(lo, 0), max(hi, 0)]` (the range always holds
//! zero, as ONNX requires) with `2^bits` levels, step `s`. Within a bin values are taken as
//! uniformly spread, so:
//!
//! - a value inside `[lo, hi]` costs the rounding error of a uniform step, `s² / 12`;
//! - a value clipped to `hi` from a bin `[a, b]` above it costs `E[(x - hi)²] =
//!   (c - hi)² + w² / 12`, `c` the bin's centre and `w` its width (likewise below `lo`);
//!   where a bound is clamped to the lowest or highest value seen, nothing lies beyond it.
//!
//! The mean over all counted values is evaluated for every candidate in constant time from
//! prefix sums of `n`, `n·c` and `n·(c² + w²/12)`, in float64; the first (widest) candidate of
//! least error wins. Unlike entropy, which compares shapes of distributions, this weighs the
//! rounding error of every value against the clipping error of the few large ones directly.

use super::histogram::SignedHistogram;
use super::range::TensorRange;

/// Prefix sums over the bins of `n`, `n·c` and `n·(c² + w²/12)`.
struct Moments {
    count: Vec<f64>,
    first: Vec<f64>,
    second: Vec<f64>,
}

impl Moments {
    fn new(counts: &[u64], edges: &[f64]) -> Self {
        let mut m = Self {
            count: vec![0.0],
            first: vec![0.0],
            second: vec![0.0],
        };
        for (j, &n) in counts.iter().enumerate() {
            let (a, b) = (edges[j], edges[j + 1]);
            let (c, w) = ((a + b) / 2.0, b - a);
            let n = n as f64;
            m.count.push(m.count[j] + n);
            m.first.push(m.first[j] + n * c);
            m.second.push(m.second[j] + n * (c * c + w * w / 12.0));
        }
        m
    }

    /// Count and squared distance to `bound` of the bins `range`.
    fn beyond(&self, bins: std::ops::Range<usize>, bound: f64) -> (f64, f64) {
        let (i, j) = (bins.start, bins.end);
        let n = self.count[j] - self.count[i];
        let s1 = self.first[j] - self.first[i];
        let s2 = self.second[j] - self.second[i];
        (n, (s2 - 2.0 * bound * s1 + bound * bound * n).max(0.0))
    }
}

/// The mean squared error of quantizing the histogram over `[lo, hi]`, with the clipped bins
/// below `lo` and above `hi` given as `(count, squared error)`.
fn mean_error(
    total: f64,
    lo: f64,
    hi: f64,
    below: (f64, f64),
    above: (f64, f64),
    steps: f64,
) -> f64 {
    let step = (hi.max(0.0) - lo.min(0.0)) / steps;
    let inside = (total - below.0 - above.0).max(0.0);
    (inside * step * step / 12.0 + below.1 + above.1) / total
}

impl SignedHistogram {
    /// The range of least mean squared quantization error for `bits`-bit quantization (see
    /// the [module documentation](self)). `None` before any value.
    pub fn mse_range(&self, bits: u32) -> Option<TensorRange> {
        if self.is_empty() {
            return None;
        }
        let counts = self.counts();
        let edges: Vec<f64> = self.edges().iter().copied().map(f64::from).collect();
        let n = counts.len();
        let steps = 2f64.powi(bits.clamp(1, 32) as i32) - 1.0;
        let moments = Moments::new(counts, &edges);
        let total = moments.count[n];
        let (min, max) = (f64::from(self.min()), f64::from(self.max()));
        let mut best: Option<(f64, f64, f64)> = None;
        for k in 0..=(n - 1) / 2 {
            let (lo, below) = if edges[k] <= min {
                (min, (0.0, 0.0))
            } else {
                (edges[k], moments.beyond(0..k, edges[k]))
            };
            let (hi, above) = if edges[n - k] >= max {
                (max, (0.0, 0.0))
            } else {
                (edges[n - k], moments.beyond(n - k..n, edges[n - k]))
            };
            let error = mean_error(total, lo, hi, below, above, steps);
            if best.is_none_or(|(least, _, _)| error < least) {
                best = Some((error, lo, hi));
            }
        }
        best.map(|(_, lo, hi)| TensorRange::new(lo as f32, hi as f32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same mean error, integrated bin by bin without prefix sums.
    fn direct_error(h: &SignedHistogram, lo: f64, hi: f64, steps: f64) -> f64 {
        let step = (hi.max(0.0) - lo.min(0.0)) / steps;
        let edges = h.edges();
        let (min, max) = (f64::from(h.min()), f64::from(h.max()));
        let mut sum = 0.0;
        let mut total = 0.0;
        for (j, &n) in h.counts().iter().enumerate() {
            let (a, b) = (f64::from(edges[j]), f64::from(edges[j + 1]));
            let n = n as f64;
            total += n;
            let (c, w2) = ((a + b) / 2.0, (b - a) * (b - a) / 12.0);
            sum += if b <= lo && lo > min {
                n * ((lo - c).powi(2) + w2)
            } else if a >= hi && hi < max {
                n * ((c - hi).powi(2) + w2)
            } else {
                n * step * step / 12.0
            };
        }
        sum / total
    }

    fn heavy_tailed() -> Vec<f32> {
        // A deterministic Cauchy-like sample: tan of evenly spread angles, and one outlier.
        let mut v: Vec<f32> = (1..4000)
            .map(|i| ((i as f32 / 4000.0 - 0.5) * 3.0).tan())
            .collect();
        v.push(400.0);
        v
    }

    /// Two million values spread evenly over [-1, 1) (or [0, 1) when `relu`) and one at 100:
    /// so many that clipping the one (99² / 2e6 ≈ 0.005 when clipped at 1) can cost less than
    /// the rounding error the min/max range gives every value ((101 / 255)² / 12 ≈ 0.013).
    fn spread_with_outlier(relu: bool) -> Vec<f32> {
        let mut v: Vec<f32> = (0..2_000_000)
            .map(|i| {
                let x = ((f64::from(i) * 0.618_033_988_75).fract() * 2.0 - 1.0) as f32;
                if relu {
                    x.max(0.0)
                } else {
                    x
                }
            })
            .collect();
        v.push(100.0);
        v
    }

    #[test]
    fn evenly_spread_values_keep_nearly_the_full_range() {
        let mut h = SignedHistogram::new(2048);
        let values: Vec<f32> = (0..10_000).map(|i| i as f32 / 5000.0 - 1.0).collect();
        h.observe(&values).unwrap();
        let r = h.mse_range(8).unwrap();
        assert!(r.min < -0.99 && r.max > 0.99, "{r}");
        assert_eq!(SignedHistogram::new(8).mse_range(8), None);
    }

    #[test]
    fn a_far_outlier_among_many_values_is_clipped_and_zero_stays_in_a_relu_range() {
        let mut h = SignedHistogram::new(2048);
        h.observe(&spread_with_outlier(false)).unwrap();
        // Clipping at h costs (100 - h)² / N for the outlier and saves rounding error
        // ((h + 1) / 255)² / 12 for all: least at h = 27.35 (bins are 0.1 wide).
        let r = h.mse_range(8).unwrap();
        assert!((r.max - 27.35).abs() < 0.3, "{r}");
        assert_eq!(r.min, h.min());
        let mut relu = SignedHistogram::new(2048);
        relu.observe(&spread_with_outlier(true)).unwrap();
        // Without negative values the step is h / 255: least at h = 28.07.
        let r = relu.mse_range(8).unwrap();
        assert_eq!(r.min, 0.0);
        assert!((r.max - 28.07).abs() < 0.3, "{r}");
        // With 16 bits rounding is so cheap that the outlier is kept.
        assert_eq!(relu.mse_range(16).unwrap().max, 100.0);
    }

    #[test]
    fn the_chosen_range_has_the_least_directly_integrated_error() {
        let mut h = SignedHistogram::new(512);
        h.observe(&heavy_tailed()).unwrap();
        let chosen = h.mse_range(8).unwrap();
        let steps = 255.0;
        let best = direct_error(&h, f64::from(chosen.min), f64::from(chosen.max), steps);
        let edges = h.edges();
        let n = edges.len() - 1;
        for k in 0..=(n - 1) / 2 {
            let lo = f64::from(edges[k]).max(f64::from(h.min()));
            let hi = f64::from(edges[n - k]).min(f64::from(h.max()));
            let other = direct_error(&h, lo, hi, steps);
            assert!(best <= other * (1.0 + 1e-9), "k = {k}: {best} > {other}");
        }
    }

    #[test]
    fn it_beats_min_max_on_the_actual_values() {
        let values = spread_with_outlier(false);
        let mut h = SignedHistogram::new(2048);
        h.observe(&values).unwrap();
        let quantize_error = |r: TensorRange| {
            let (lo, hi) = (f64::from(r.min.min(0.0)), f64::from(r.max.max(0.0)));
            let s = (hi - lo) / 255.0;
            values
                .iter()
                .map(|&v| {
                    let v = f64::from(v);
                    let q = ((v.clamp(lo, hi) - lo) / s).round() * s + lo;
                    (v - q).powi(2)
                })
                .sum::<f64>()
                / values.len() as f64
        };
        let mse = quantize_error(h.mse_range(8).unwrap());
        let minmax = quantize_error(TensorRange::new(h.min(), h.max()));
        assert!(mse < minmax * 0.8, "mse {mse} vs min/max {minmax}");
    }
}
