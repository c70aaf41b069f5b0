//! [`Calibrator`]: ranges of many named tensors, fed batch by batch.

use std::collections::BTreeMap;

use serde::Serialize;

use super::histogram::{finite_min_max, AbsHistogram, HistogramTooWide, SignedHistogram};
use super::range::{CalibrationMethod, TensorRange, TensorRanges};

/// onnxruntime's default percentile.
pub const DEFAULT_PERCENTILE: f64 = 99.999;
/// onnxruntime's default histogram size for percentile calibration.
pub const DEFAULT_PERCENTILE_BINS: usize = 2048;
/// onnxruntime's default histogram size for entropy calibration (TensorRT uses 2048).
pub const DEFAULT_ENTROPY_BINS: usize = 128;
/// onnxruntime's default number of quantized bins for entropy calibration.
pub const DEFAULT_ENTROPY_QUANTIZED_BINS: usize = 128;
/// The default histogram size for MSE calibration.
pub const DEFAULT_MSE_BINS: usize = 2048;

/// A calibration method with its settings. `From<CalibrationMethod>` gives onnxruntime's
/// defaults (those of `create_calibrator`, which `quantize_static` uses).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum CalibratorConfig {
    /// The lowest and highest value seen.
    MinMax {
        /// Widen to `[-m, m]`, `m` the largest magnitude (default false).
        symmetric: bool,
    },
    /// A percentile of a histogram.
    Percentile {
        /// In `[0, 100]`; default 99.999.
        percentile: f64,
        /// Histogram of absolute values and a range `[-e, e]` (clamped to the values seen);
        /// otherwise half the cut on each side. Default true, as onnxruntime's
        /// `create_calibrator`.
        symmetric: bool,
        /// Bins of the first batch's histogram; default 2048.
        num_bins: usize,
    },
    /// KL divergence on a histogram.
    Entropy {
        /// Bins of the first batch's histogram; default 128 (onnxruntime's).
        num_bins: usize,
        /// Bins the candidate ranges are quantized into; default 128.
        num_quantized_bins: usize,
    },
    /// Least mean squared quantization error on a histogram.
    Mse {
        /// Bins of the first batch's histogram; default 2048.
        num_bins: usize,
        /// Bits of the quantized type the error is computed for; default 8.
        bits: u32,
    },
}

impl From<CalibrationMethod> for CalibratorConfig {
    fn from(method: CalibrationMethod) -> Self {
        match method {
            CalibrationMethod::MinMax => Self::MinMax { symmetric: false },
            CalibrationMethod::Percentile => Self::Percentile {
                percentile: DEFAULT_PERCENTILE,
                symmetric: true,
                num_bins: DEFAULT_PERCENTILE_BINS,
            },
            CalibrationMethod::Entropy => Self::Entropy {
                num_bins: DEFAULT_ENTROPY_BINS,
                num_quantized_bins: DEFAULT_ENTROPY_QUANTIZED_BINS,
            },
            CalibrationMethod::Mse => Self::Mse {
                num_bins: DEFAULT_MSE_BINS,
                bits: 8,
            },
        }
    }
}

impl Default for CalibratorConfig {
    fn default() -> Self {
        CalibrationMethod::MinMax.into()
    }
}

impl CalibratorConfig {
    /// The method.
    pub fn method(&self) -> CalibrationMethod {
        match self {
            Self::MinMax { .. } => CalibrationMethod::MinMax,
            Self::Percentile { .. } => CalibrationMethod::Percentile,
            Self::Entropy { .. } => CalibrationMethod::Entropy,
            Self::Mse { .. } => CalibrationMethod::Mse,
        }
    }

    /// onnxruntime's percentile defaults with another percentile, e.g. 99.99.
    pub fn percentile(percentile: f64) -> Self {
        match Self::from(CalibrationMethod::Percentile) {
            Self::Percentile {
                symmetric,
                num_bins,
                ..
            } => Self::Percentile {
                percentile,
                symmetric,
                num_bins,
            },
            other => other,
        }
    }

    /// Checks the settings: a percentile in `[0, 100]`, at least one bin, at least as many
    /// bins as quantized bins, 2 to 32 bits.
    pub fn validate(&self) -> Result<(), CalibrationError> {
        let invalid = |message: String| Err(CalibrationError::InvalidConfig(message));
        match *self {
            Self::MinMax { .. } => Ok(()),
            Self::Percentile {
                percentile,
                num_bins,
                ..
            } => {
                if !(0.0..=100.0).contains(&percentile) {
                    invalid(format!(
                        "percentile {percentile} is outside [0, 100]; try 99.99 or 99.999"
                    ))
                } else {
                    check_bins(num_bins)
                }
            }
            Self::Entropy {
                num_bins,
                num_quantized_bins,
            } => {
                check_bins(num_bins)?;
                if num_quantized_bins == 0 || num_quantized_bins > num_bins {
                    invalid(format!(
                        "entropy needs 1 to num_bins ({num_bins}) quantized bins, not {num_quantized_bins}"
                    ))
                } else {
                    Ok(())
                }
            }
            Self::Mse { num_bins, bits } => {
                check_bins(num_bins)?;
                if !(2..=32).contains(&bits) {
                    invalid(format!("MSE is computed for 2 to 32 bits, not {bits}"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

fn check_bins(num_bins: usize) -> Result<(), CalibrationError> {
    if (1..=super::histogram::MAX_HISTOGRAM_BINS).contains(&num_bins) {
        Ok(())
    } else {
        Err(CalibrationError::InvalidConfig(format!(
            "num_bins must be 1 to {}, not {num_bins}",
            super::histogram::MAX_HISTOGRAM_BINS
        )))
    }
}

/// Why calibration could not go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    /// The settings are out of range.
    #[error("invalid calibration settings: {0}")]
    InvalidConfig(String),
    /// A tensor's range grew so far beyond its first batch's that its histogram would be too
    /// large.
    #[error("tensor `{tensor}`: {source}; its first batch spans a much smaller range than later ones (use minmax, or calibrate with a first batch that is representative)")]
    HistogramTooWide {
        /// The tensor.
        tensor: String,
        /// How wide.
        #[source]
        source: HistogramTooWide,
    },
}

/// The running minimum and maximum of a tensor (onnxruntime's `MinMaxCalibrater` without
/// moving average: `nanmin`/`nanmax` over batches).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MinMax {
    seen: Option<(f32, f32)>,
}

impl MinMax {
    /// Folds in one batch; NaN and infinite values are ignored.
    pub fn observe(&mut self, values: &[f32]) {
        if let Some((lo, hi)) = finite_min_max(values) {
            self.seen = Some(match self.seen {
                None => (lo, hi),
                Some((a, b)) => (a.min(lo), b.max(hi)),
            });
        }
    }

    /// `[min, max]`, or `[-m, m]` with `m = max(|min|, |max|)` when `symmetric`; `None` before
    /// any finite value.
    pub fn range(&self, symmetric: bool) -> Option<TensorRange> {
        let (lo, hi) = self.seen?;
        Some(if symmetric {
            let m = lo.abs().max(hi.abs());
            TensorRange::new(-m, m)
        } else {
            TensorRange::new(lo, hi)
        })
    }
}

/// What a [`Calibrator`] keeps for one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorStats {
    /// Running min and max.
    MinMax(MinMax),
    /// Histogram of absolute values (symmetric percentile).
    Abs(AbsHistogram),
    /// Histogram of values (entropy, percentile, MSE).
    Signed(SignedHistogram),
}

impl TensorStats {
    fn new(config: &CalibratorConfig) -> Self {
        match *config {
            CalibratorConfig::MinMax { .. } => Self::MinMax(MinMax::default()),
            CalibratorConfig::Percentile {
                symmetric: true,
                num_bins,
                ..
            } => Self::Abs(AbsHistogram::new(num_bins)),
            CalibratorConfig::Percentile { num_bins, .. }
            | CalibratorConfig::Entropy { num_bins, .. }
            | CalibratorConfig::Mse { num_bins, .. } => {
                Self::Signed(SignedHistogram::new(num_bins))
            }
        }
    }

    fn observe(&mut self, values: &[f32]) -> Result<(), HistogramTooWide> {
        match self {
            Self::MinMax(m) => {
                m.observe(values);
                Ok(())
            }
            Self::Abs(h) => h.observe(values),
            Self::Signed(h) => h.observe(values),
        }
    }

    fn range(&self, config: &CalibratorConfig) -> Option<TensorRange> {
        match (self, *config) {
            (Self::MinMax(m), CalibratorConfig::MinMax { symmetric }) => m.range(symmetric),
            (Self::Abs(h), CalibratorConfig::Percentile { percentile, .. }) => {
                h.percentile_range(percentile)
            }
            (Self::Signed(h), CalibratorConfig::Percentile { percentile, .. }) => {
                h.percentile_range(percentile)
            }
            (
                Self::Signed(h),
                CalibratorConfig::Entropy {
                    num_quantized_bins, ..
                },
            ) => h.entropy_range(num_quantized_bins),
            (Self::Signed(h), CalibratorConfig::Mse { bits, .. }) => h.mse_range(bits),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    stats: TensorStats,
    values: u64,
    ignored: u64,
}

/// Chooses a range for each named tensor from the values it is fed, batch by batch: only
/// running statistics (a min/max pair or a histogram per tensor) are kept, never the values.
///
/// ```
/// use model_tools::calibrate::{CalibrationMethod, Calibrator, TensorRange};
///
/// let mut calibrator = Calibrator::new(CalibrationMethod::MinMax.into()).unwrap();
/// calibrator.observe("x", &[0.5, -1.0]).unwrap();
/// calibrator.observe("x", &[2.0, f32::NAN]).unwrap();
/// assert_eq!(calibrator.ranges()["x"], TensorRange::new(-1.0, 2.0));
/// ```
#[derive(Debug, Clone)]
pub struct Calibrator {
    config: CalibratorConfig,
    tensors: BTreeMap<String, Tracked>,
}

impl Calibrator {
    /// A calibrator with these (validated) settings.
    pub fn new(config: CalibratorConfig) -> Result<Self, CalibrationError> {
        config.validate()?;
        Ok(Self {
            config,
            tensors: BTreeMap::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CalibratorConfig {
        &self.config
    }

    /// Feeds one batch of a tensor's values (any shape, flattened; the order does not
    /// matter). NaN and infinite values are counted in [`Calibrator::ignored_values`] and
    /// otherwise ignored.
    pub fn observe(&mut self, tensor: &str, values: &[f32]) -> Result<(), CalibrationError> {
        if !self.tensors.contains_key(tensor) {
            let tracked = Tracked {
                stats: TensorStats::new(&self.config),
                values: 0,
                ignored: 0,
            };
            self.tensors.insert(tensor.to_owned(), tracked);
        }
        let tracked = self.tensors.get_mut(tensor).expect("inserted above");
        let finite = values.iter().filter(|v| v.is_finite()).count() as u64;
        tracked.values += finite;
        tracked.ignored += values.len() as u64 - finite;
        tracked
            .stats
            .observe(values)
            .map_err(|source| CalibrationError::HistogramTooWide {
                tensor: tensor.to_owned(),
                source,
            })
    }

    /// The range of every tensor that was fed at least one finite value.
    pub fn ranges(&self) -> TensorRanges {
        self.tensors
            .iter()
            .filter_map(|(name, t)| Some((name.clone(), t.stats.range(&self.config)?)))
            .collect()
    }

    /// The range of one tensor, if it was fed a finite value.
    pub fn range(&self, tensor: &str) -> Option<TensorRange> {
        self.tensors.get(tensor)?.stats.range(&self.config)
    }

    /// The statistics kept for a tensor (its histogram, for plots or checks).
    pub fn stats(&self, tensor: &str) -> Option<&TensorStats> {
        self.tensors.get(tensor).map(|t| &t.stats)
    }

    /// The tensors fed so far, in name order.
    pub fn tensors(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Finite values fed for a tensor.
    pub fn values(&self, tensor: &str) -> u64 {
        self.tensors.get(tensor).map_or(0, |t| t.values)
    }

    /// NaN and infinite values fed for a tensor, which calibration ignored.
    pub fn ignored_values(&self, tensor: &str) -> u64 {
        self.tensors.get(tensor).map_or(0, |t| t.ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_merges_batches_and_can_be_symmetric() {
        let mut c = Calibrator::new(CalibratorConfig::MinMax { symmetric: false }).unwrap();
        c.observe("a", &[0.5, -1.0, f32::INFINITY]).unwrap();
        c.observe("a", &[2.0, f32::NAN]).unwrap();
        c.observe("empty", &[f32::NAN]).unwrap();
        assert_eq!(c.range("a"), Some(TensorRange::new(-1.0, 2.0)));
        assert_eq!((c.values("a"), c.ignored_values("a")), (3, 2));
        assert_eq!(
            c.ranges().len(),
            1,
            "a tensor without finite values has no range"
        );
        assert_eq!(c.tensors().collect::<Vec<_>>(), ["a", "empty"]);

        let mut s = Calibrator::new(CalibratorConfig::MinMax { symmetric: true }).unwrap();
        s.observe("a", &[0.5, -1.0]).unwrap();
        s.observe("a", &[-3.0]).unwrap();
        assert_eq!(s.range("a"), Some(TensorRange::new(-3.0, 3.0)));
    }

    #[test]
    fn defaults_are_onnxruntimes() {
        assert_eq!(
            CalibratorConfig::from(CalibrationMethod::Percentile),
            CalibratorConfig::Percentile {
                percentile: 99.999,
                symmetric: true,
                num_bins: 2048
            }
        );
        assert_eq!(
            CalibratorConfig::from(CalibrationMethod::Entropy),
            CalibratorConfig::Entropy {
                num_bins: 128,
                num_quantized_bins: 128
            }
        );
        assert_eq!(
            CalibratorConfig::percentile(99.99).method(),
            CalibrationMethod::Percentile
        );
        for m in CalibrationMethod::ALL {
            assert_eq!(CalibratorConfig::from(m).method(), m);
            CalibratorConfig::from(m).validate().unwrap();
        }
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let err = |c: CalibratorConfig| Calibrator::new(c).unwrap_err().to_string();
        assert!(err(CalibratorConfig::percentile(101.0)).contains("percentile 101"));
        let e = err(CalibratorConfig::Entropy {
            num_bins: 64,
            num_quantized_bins: 128,
        });
        assert!(e.contains("quantized bins"), "{e}");
        let e = err(CalibratorConfig::Mse {
            num_bins: 0,
            bits: 8,
        });
        assert!(e.contains("num_bins"), "{e}");
        let e = err(CalibratorConfig::Mse {
            num_bins: 16,
            bits: 1,
        });
        assert!(e.contains("bits"), "{e}");
    }

    #[test]
    fn each_method_keeps_its_own_statistics() {
        for method in CalibrationMethod::ALL {
            let mut c = Calibrator::new(method.into()).unwrap();
            let values: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
            c.observe("t", &values).unwrap();
            let r = c.range("t").unwrap();
            assert!(
                r.min >= -4.0 && r.max <= 4.0 && r.min < r.max,
                "{method}: {r}"
            );
            let expected = match method {
                CalibrationMethod::MinMax => matches!(c.stats("t"), Some(TensorStats::MinMax(_))),
                CalibrationMethod::Percentile => matches!(c.stats("t"), Some(TensorStats::Abs(_))),
                _ => matches!(c.stats("t"), Some(TensorStats::Signed(_))),
            };
            assert!(expected, "{method}");
        }
    }

    #[test]
    fn a_runaway_histogram_names_the_tensor() {
        let mut c = Calibrator::new(CalibrationMethod::Entropy.into()).unwrap();
        c.observe("conv", &[1e-30]).unwrap();
        let err = c.observe("conv", &[1e30]).unwrap_err().to_string();
        assert!(err.contains("`conv`") && err.contains("bins"), "{err}");
    }
}
