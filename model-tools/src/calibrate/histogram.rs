//! Histograms of a tensor's values, built batch by batch exactly as onnxruntime's
//! `HistogramCollector` builds them, so that only the histogram, never the activations, stays in
//! memory.
//!
//! - [`SignedHistogram`] (`collect_value` / `merge_histogram`): equal bins over
//!   `[-t, t]`, `t` the largest magnitude seen; when a batch exceeds `t`, bins of the same
//!   width are added on both sides and the old counts are kept in the middle. Entropy,
//!   percentile without `symmetric`, and MSE read it.
//! - [`AbsHistogram`] (`collect_absolute_value`): absolute values, bins over the first batch's
//!   `[min |x|, max |x|]`, extended to the right with bins of the same width when a later
//!   batch goes further. Symmetric percentile reads it.
//!
//! Both ignore NaN and infinite values (onnxruntime's `nanmin`/`nanmax` skip NaN, and an
//! infinite value makes its histogram fail), and batches without a finite value. Like
//! onnxruntime's, the abs histogram does not count later values below its first edge.

use super::numpy::{
    arange_f32_scalars, arange_len, count_uniform, count_with_edges, floor_divide_f32, linspace_f32,
};

/// The most bins a histogram may grow to (32 MiB of counts): a tensor whose range grows by
/// more than that many bin widths is an error rather than an allocation that never ends.
pub const MAX_HISTOGRAM_BINS: usize = 1 << 22;

/// A histogram would need more than [`MAX_HISTOGRAM_BINS`] bins.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("the histogram would need {bins} bins (at most {MAX_HISTOGRAM_BINS})")]
pub struct HistogramTooWide {
    /// The number of bins it would need (may be approximate when huge).
    pub bins: f64,
}

/// Whether a histogram of `bins` bins (maybe NaN or infinite) is over the limit.
fn too_wide(bins: f64) -> bool {
    bins.is_nan() || bins > MAX_HISTOGRAM_BINS as f64
}

/// The lowest and highest finite values, or `None` when there is none.
pub(crate) fn finite_min_max(values: &[f32]) -> Option<(f32, f32)> {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, &v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// `numpy.histogram(values, bins, range=(first, last))`: counts and float32 edges; an empty
/// range is widened by 0.5 on each side, as numpy does.
fn histogram_over(
    values: &[f32],
    bins: usize,
    first: f32,
    last: f32,
) -> Result<(Vec<u64>, Vec<f32>), HistogramTooWide> {
    if bins > MAX_HISTOGRAM_BINS {
        return Err(HistogramTooWide { bins: bins as f64 });
    }
    let (first, last) = if first == last {
        (first - 0.5, last + 0.5)
    } else {
        (first, last)
    };
    let edges = linspace_f32(first, last, bins);
    let mut counts = vec![0; bins];
    count_uniform(values, first, last, &edges, &mut counts);
    Ok((counts, edges))
}

fn add_into(target: &mut [u64], source: &[u64]) {
    for (t, s) in target.iter_mut().zip(source) {
        *t += s;
    }
}

/// A histogram of values over a range symmetric about zero that widens as batches arrive;
/// see the [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub struct SignedHistogram {
    first_bins: usize,
    counts: Vec<u64>,
    edges: Vec<f32>,
    min: f32,
    max: f32,
    threshold: f32,
}

impl SignedHistogram {
    /// An empty histogram whose first batch is counted into `num_bins` bins (at least 1).
    pub fn new(num_bins: usize) -> Self {
        Self {
            first_bins: num_bins.max(1),
            counts: Vec::new(),
            edges: Vec::new(),
            min: 0.0,
            max: 0.0,
            threshold: 0.0,
        }
    }

    /// Counts one batch of values.
    pub fn observe(&mut self, values: &[f32]) -> Result<(), HistogramTooWide> {
        let Some((lo, hi)) = finite_min_max(values) else {
            return Ok(());
        };
        let threshold = lo.abs().max(hi.abs());
        if self.counts.is_empty() {
            (self.counts, self.edges) =
                histogram_over(values, self.first_bins, -threshold, threshold)?;
            (self.min, self.max, self.threshold) = (lo, hi, threshold);
            return Ok(());
        }
        let old_bins = self.counts.len();
        if threshold <= self.threshold {
            let (counts, _) = histogram_over(values, old_bins, -self.threshold, self.threshold)?;
            add_into(&mut self.counts, &counts);
        } else if self.threshold == 0.0 {
            let (mut counts, edges) = histogram_over(values, old_bins, -threshold, threshold)?;
            add_into(&mut counts, &self.counts);
            (self.counts, self.edges, self.threshold) = (counts, edges, threshold);
        } else {
            // Widen by whole bins of the old width on each side, so the old counts keep
            // their place in the middle.
            let stride = (2.0 * self.threshold) / old_bins as f32;
            let half = floor_divide_f32(threshold - self.threshold, stride) + 1.0;
            let wanted = old_bins as f64 + 2.0 * f64::from(half.trunc());
            if too_wide(wanted) {
                return Err(HistogramTooWide { bins: wanted });
            }
            let half = half as usize;
            let bins = old_bins + 2 * half;
            let widened = (half as f32) * stride + self.threshold;
            let (mut counts, edges) = histogram_over(values, bins, -widened, widened)?;
            add_into(&mut counts[half..bins - half], &self.counts);
            (self.counts, self.edges, self.threshold) = (counts, edges, widened);
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        Ok(())
    }

    /// Whether no finite value was counted yet.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The count of each bin.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The bin edges, one more than the bins.
    pub fn edges(&self) -> &[f32] {
        &self.edges
    }

    /// The width of a bin (0 when empty).
    pub fn bin_width(&self) -> f32 {
        match self.edges.as_slice() {
            [a, b, ..] => b - a,
            _ => 0.0,
        }
    }

    /// The lowest value seen.
    pub fn min(&self) -> f32 {
        self.min
    }

    /// The highest value seen.
    pub fn max(&self) -> f32 {
        self.max
    }

    /// The half-width of the histogram's range.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
}

/// A histogram of absolute values that extends to the right as batches arrive; see the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub struct AbsHistogram {
    first_bins: usize,
    counts: Vec<u64>,
    edges: Vec<f32>,
    min: f32,
    max: f32,
}

impl AbsHistogram {
    /// An empty histogram whose first batch is counted into `num_bins` bins (at least 1).
    pub fn new(num_bins: usize) -> Self {
        Self {
            first_bins: num_bins.max(1),
            counts: Vec::new(),
            edges: Vec::new(),
            min: 0.0,
            max: 0.0,
        }
    }

    /// Counts the absolute values of one batch.
    pub fn observe(&mut self, values: &[f32]) -> Result<(), HistogramTooWide> {
        let Some((lo, hi)) = finite_min_max(values) else {
            return Ok(());
        };
        let magnitudes: Vec<f32> = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|v| v.abs())
            .collect();
        let (amin, amax) = finite_min_max(&magnitudes).unwrap_or((0.0, 0.0));
        if self.counts.is_empty() {
            (self.counts, self.edges) = histogram_over(&magnitudes, self.first_bins, amin, amax)?;
            (self.min, self.max) = (lo, hi);
            return Ok(());
        }
        let mut edges: Vec<f64> = self.edges.iter().copied().map(f64::from).collect();
        let last = self.edges[self.edges.len() - 1];
        if amax > last {
            // numpy.arange(last + width, amax + width, width): the bin holding amax and maybe
            // one more.
            let width = self.edges[1] - self.edges[0];
            let (start, stop) = (last + width, amax + width);
            let extra = arange_len(start, stop, width);
            let wanted = self.counts.len() as f64 + extra;
            if too_wide(wanted) {
                return Err(HistogramTooWide { bins: wanted });
            }
            edges.extend(arange_f32_scalars(start, stop, width));
        }
        let mut counts = vec![0; edges.len() - 1];
        count_with_edges(&magnitudes, &edges, &mut counts);
        add_into(&mut counts, &self.counts);
        self.counts = counts;
        self.edges = edges.into_iter().map(|e| e as f32).collect();
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        Ok(())
    }

    /// Whether no finite value was counted yet.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The count of each bin.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The bin edges (of absolute values), one more than the bins.
    pub fn edges(&self) -> &[f32] {
        &self.edges
    }

    /// The width of the first bin (0 when empty).
    pub fn bin_width(&self) -> f32 {
        match self.edges.as_slice() {
            [a, b, ..] => b - a,
            _ => 0.0,
        }
    }

    /// The lowest value seen (signed).
    pub fn min(&self) -> f32 {
        self.min
    }

    /// The highest value seen (signed).
    pub fn max(&self) -> f32 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_batch_spans_its_largest_magnitude_on_both_sides() {
        let mut h = SignedHistogram::new(4);
        h.observe(&[-1.0, 0.0, 1.0, 0.75, f32::NAN, f32::INFINITY])
            .unwrap();
        assert_eq!(h.edges(), &[-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(h.counts(), &[1, 0, 1, 2]);
        assert_eq!((h.min(), h.max(), h.threshold()), (-1.0, 1.0, 1.0));
    }

    #[test]
    fn a_narrower_batch_adds_into_the_same_bins() {
        let mut h = SignedHistogram::new(4);
        h.observe(&[-1.0, 1.0]).unwrap();
        h.observe(&[-0.1, 0.3, 0.6]).unwrap();
        assert_eq!(h.counts(), &[1, 1, 1, 2]);
        assert_eq!(h.edges().len(), 5);
        assert_eq!((h.min(), h.max()), (-1.0, 1.0));
    }

    #[test]
    fn a_wider_batch_adds_bins_of_the_old_width_on_both_sides() {
        let mut h = SignedHistogram::new(4);
        h.observe(&[-1.0, 1.0]).unwrap();
        // Old stride 0.5; (2 - 1) // 0.5 + 1 = 3 bins more on each side: 10 bins over ±2.5.
        h.observe(&[2.0]).unwrap();
        assert_eq!(h.threshold(), 2.5);
        assert_eq!(h.counts().len(), 10);
        assert_eq!(h.bin_width(), 0.5);
        assert_eq!(h.counts(), &[0, 0, 0, 1, 0, 0, 1, 0, 0, 1]);
        assert_eq!((h.min(), h.max()), (-1.0, 2.0));
    }

    #[test]
    fn an_all_zero_first_batch_is_replaced_by_the_next_range() {
        let mut h = SignedHistogram::new(4);
        h.observe(&[0.0, 0.0]).unwrap();
        assert_eq!(h.edges(), &[-0.5, -0.25, 0.0, 0.25, 0.5]);
        assert_eq!(h.counts(), &[0, 0, 2, 0]);
        h.observe(&[-2.0, 1.0]).unwrap();
        assert_eq!(h.edges(), &[-2.0, -1.0, 0.0, 1.0, 2.0]);
        assert_eq!(h.counts(), &[1, 0, 2, 1]);
    }

    #[test]
    fn batches_without_finite_values_change_nothing() {
        let mut h = SignedHistogram::new(4);
        h.observe(&[]).unwrap();
        h.observe(&[f32::NAN]).unwrap();
        assert!(h.is_empty());
        let mut a = AbsHistogram::new(4);
        a.observe(&[f32::NEG_INFINITY]).unwrap();
        assert!(a.is_empty());
    }

    #[test]
    fn absolute_values_extend_to_the_right_and_drop_what_falls_below() {
        let mut h = AbsHistogram::new(2);
        h.observe(&[-2.0, 1.0]).unwrap();
        assert_eq!(h.edges(), &[1.0, 1.5, 2.0]);
        assert_eq!(h.counts(), &[1, 1]);
        // 3.2 needs numpy.arange(2.5, 3.7, 0.5) = [2.5, 3.0, 3.5]; 0.5 < 1.0 is not counted.
        h.observe(&[3.2, -0.5, 1.2]).unwrap();
        assert_eq!(h.edges(), &[1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
        assert_eq!(h.counts(), &[2, 1, 0, 0, 1]);
        assert_eq!((h.min(), h.max()), (-2.0, 3.2));
    }

    #[test]
    fn runaway_growth_is_an_error_not_an_allocation() {
        let mut h = SignedHistogram::new(2);
        h.observe(&[1e-30]).unwrap();
        let err = h.observe(&[1e30]).unwrap_err();
        assert!(err.bins > MAX_HISTOGRAM_BINS as f64);
        let mut a = AbsHistogram::new(2);
        a.observe(&[1e-30, 2e-30]).unwrap();
        assert!(a.observe(&[1e30]).is_err());
    }
}
