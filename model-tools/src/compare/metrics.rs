//! The arithmetic of a comparison: error statistics accumulated batch by batch, argmax, and
//! the median of latencies.

use std::time::Duration;

/// Sums over every element of one output, reference `r` against candidate `c`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorStats {
    pub(crate) elements: usize,
    max_abs: f64,
    sum_abs: f64,
    sum_ref_sq: f64,
    sum_cand_sq: f64,
    sum_diff_sq: f64,
    sum_dot: f64,
    /// Elements where exactly one side is NaN, or both are but of a different sign of infinity.
    pub(crate) mismatched_non_finite: usize,
}

impl ErrorStats {
    pub(crate) fn add(&mut self, reference: &[f64], candidate: &[f64]) {
        for (&r, &c) in reference.iter().zip(candidate) {
            self.elements += 1;
            if !r.is_finite() || !c.is_finite() {
                let same = (r.is_nan() && c.is_nan()) || r == c;
                self.mismatched_non_finite += usize::from(!same);
                continue;
            }
            let d = r - c;
            self.max_abs = self.max_abs.max(d.abs());
            self.sum_abs += d.abs();
            self.sum_ref_sq += r * r;
            self.sum_cand_sq += c * c;
            self.sum_diff_sq += d * d;
            self.sum_dot += r * c;
        }
    }

    /// The largest |r − c|.
    pub(crate) fn max_abs_error(&self) -> f64 {
        self.max_abs
    }

    /// The mean |r − c| over finite elements.
    pub(crate) fn mean_abs_error(&self) -> f64 {
        let finite = self.elements - self.mismatched_non_finite;
        if finite == 0 {
            0.0
        } else {
            self.sum_abs / finite as f64
        }
    }

    /// r·c / (|r| |c|): 1 for identical directions; 1 when both are all zeros, 0 when only one
    /// is.
    pub(crate) fn cosine_similarity(&self) -> f64 {
        match (self.sum_ref_sq == 0.0, self.sum_cand_sq == 0.0) {
            (true, true) => 1.0,
            (true, false) | (false, true) => 0.0,
            _ => self.sum_dot / (self.sum_ref_sq.sqrt() * self.sum_cand_sq.sqrt()),
        }
    }

    /// Signal-to-quantization-noise ratio in dB, 10·log10(Σr² / Σ(r − c)²): `+inf` when the
    /// outputs are identical, `-inf` when the reference is all zeros but the candidate is not.
    pub(crate) fn sqnr_db(&self) -> f64 {
        if self.sum_diff_sq == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.sum_ref_sq / self.sum_diff_sq).log10()
        }
    }
}

/// The index of the largest value (the first of equals); NaN never wins.
pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

/// The median of the durations in milliseconds (nearest rank); 0 for none.
pub(crate) fn p50_ms(latencies: &mut [Duration]) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort();
    let i = latencies.len().div_ceil(2) - 1;
    latencies[i].as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_outputs_have_infinite_sqnr_and_no_error() {
        let mut s = ErrorStats::default();
        s.add(&[1.0, -2.0, 3.0], &[1.0, -2.0, 3.0]);
        assert_eq!(s.sqnr_db(), f64::INFINITY);
        assert_eq!((s.max_abs_error(), s.mean_abs_error()), (0.0, 0.0));
        assert!((s.cosine_similarity() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn statistics_match_the_formulas_across_batches() {
        let mut s = ErrorStats::default();
        s.add(&[3.0, 4.0], &[3.0, 3.0]);
        s.add(&[0.0], &[0.5]);
        assert_eq!(s.elements, 3);
        assert_eq!(s.max_abs_error(), 1.0);
        assert!((s.mean_abs_error() - 0.5).abs() < 1e-12);
        // Σr² = 25, Σd² = 1.25.
        assert!((s.sqnr_db() - 10.0 * (25.0f64 / 1.25).log10()).abs() < 1e-12);
        let cos = 21.0 / (5.0 * (18.25f64).sqrt());
        assert!((s.cosine_similarity() - cos).abs() < 1e-12);
    }

    #[test]
    fn zeros_and_non_finite_values_are_handled() {
        let mut zeros = ErrorStats::default();
        zeros.add(&[0.0, 0.0], &[0.0, 0.0]);
        assert_eq!(zeros.cosine_similarity(), 1.0);
        assert_eq!(zeros.sqnr_db(), f64::INFINITY);
        let mut off = ErrorStats::default();
        off.add(&[0.0], &[1.0]);
        assert_eq!(off.sqnr_db(), f64::NEG_INFINITY);
        assert_eq!(off.cosine_similarity(), 0.0);
        let mut nan = ErrorStats::default();
        nan.add(&[f64::NAN, 1.0, f64::INFINITY], &[1.0, 1.0, f64::INFINITY]);
        assert_eq!(nan.mismatched_non_finite, 1);
        assert_eq!(nan.sqnr_db(), f64::INFINITY);
    }

    #[test]
    fn argmax_and_median() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
        assert_eq!(argmax(&[f64::NAN, 0.5, 0.2]), 1);
        let mut l: Vec<Duration> = [5, 1, 3, 2, 4].map(Duration::from_millis).to_vec();
        assert_eq!(p50_ms(&mut l), 3.0);
        assert_eq!(p50_ms(&mut []), 0.0);
    }
}
