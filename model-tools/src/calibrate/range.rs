//! What calibration produces: a float range per tensor, and the names of the methods.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The range of values a tensor is quantized over: the quantizer derives a scale and zero point
/// from it (and widens it to include 0, as ONNX quantization requires).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TensorRange {
    /// The lowest value represented.
    pub min: f32,
    /// The highest value represented.
    pub max: f32,
}

impl TensorRange {
    /// The range `[min, max]`.
    pub fn new(min: f32, max: f32) -> Self {
        Self { min, max }
    }

    /// `max - min`.
    pub fn width(&self) -> f32 {
        self.max - self.min
    }
}

impl fmt::Display for TensorRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.min, self.max)
    }
}

/// Ranges by tensor name, in name order; what the static quantizer consumes.
pub type TensorRanges = BTreeMap<String, TensorRange>;

/// How a tensor's range is chosen from the values it took during calibration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMethod {
    /// The lowest and highest value seen (onnxruntime's `MinMax`).
    MinMax,
    /// A percentile of a histogram, cutting off rare extremes (onnxruntime's `Percentile`).
    Percentile,
    /// The clipping threshold whose 8-bit histogram is closest in KL divergence to the
    /// original (onnxruntime's `Entropy`, TensorRT's calibration).
    Entropy,
    /// The threshold that minimizes the mean squared quantization error over a histogram
    /// (this crate's own; see [`super::SignedHistogram::mse_range`]).
    Mse,
}

impl CalibrationMethod {
    /// Every method, in the order the help lists them.
    pub const ALL: [CalibrationMethod; 4] =
        [Self::MinMax, Self::Percentile, Self::Entropy, Self::Mse];

    /// The name `FromStr` accepts and `Display` writes: `minmax`, `percentile`, `entropy`, `mse`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MinMax => "minmax",
            Self::Percentile => "percentile",
            Self::Entropy => "entropy",
            Self::Mse => "mse",
        }
    }
}

impl fmt::Display for CalibrationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A method name that is none of [`CalibrationMethod::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown calibration method `{0}`; use one of minmax, percentile, entropy, mse")]
pub struct UnknownCalibrationMethod(pub String);

impl FromStr for CalibrationMethod {
    type Err = UnknownCalibrationMethod;

    /// Case-insensitive; `min-max` and `min_max` also name [`CalibrationMethod::MinMax`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "minmax" | "min-max" | "min_max" => Ok(Self::MinMax),
            "percentile" => Ok(Self::Percentile),
            "entropy" => Ok(Self::Entropy),
            "mse" => Ok(Self::Mse),
            _ => Err(UnknownCalibrationMethod(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_from_their_names_and_aliases() {
        for m in CalibrationMethod::ALL {
            assert_eq!(m.name().parse::<CalibrationMethod>(), Ok(m));
            assert_eq!(
                m.to_string().to_uppercase().parse::<CalibrationMethod>(),
                Ok(m)
            );
        }
        assert_eq!("min-max".parse(), Ok(CalibrationMethod::MinMax));
        let err = "kl".parse::<CalibrationMethod>().unwrap_err();
        assert!(err.to_string().contains("`kl`"), "{err}");
        assert!(err.to_string().contains("entropy"), "{err}");
    }

    #[test]
    fn ranges_serialize_as_min_and_max() {
        let json = serde_json::to_string(&TensorRange::new(-1.5, 2.0)).unwrap();
        assert_eq!(json, r#"{"min":-1.5,"max":2.0}"#);
        assert_eq!(
            serde_json::to_string(&CalibrationMethod::MinMax).unwrap(),
            r#""minmax""#
        );
    }
}
