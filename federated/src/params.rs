//! Model parameters as named tensors, keyed by ONNX initializer name, and their arithmetic.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// One named tensor of `f32` parameters, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamTensor {
    /// The ONNX initializer name.
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

/// Why parameters are unusable or do not fit together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A tensor's data does not fill its shape.
    #[error("tensor `{name}` has shape {shape:?} ({expected} values) but {given} values")]
    Length {
        /// Tensor name.
        name: String,
        /// Shape.
        shape: Vec<usize>,
        /// Values the shape holds.
        expected: usize,
        /// Values given.
        given: usize,
    },
    /// Two tensors share a name.
    #[error("tensor name `{0}` appears twice")]
    DuplicateName(String),
    /// A value is NaN or infinite.
    #[error("tensor `{name}` holds a non-finite value at {index}")]
    NonFinite {
        /// Tensor name.
        name: String,
        /// Flat index.
        index: usize,
    },
    /// Two parameter sets have different names or shapes.
    #[error("parameters do not match: {0}")]
    Mismatch(String),
    /// Nothing to aggregate.
    #[error("no parameters to aggregate")]
    Empty,
}

/// A model's trainable parameters, in a fixed order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Parameters {
    tensors: Vec<ParamTensor>,
}

/// The number of values a tensor of `shape` holds, or `None` when that overflows `usize`
/// (a shape with a zero dimension holds none, whatever its other dimensions).
pub(crate) fn shape_len(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

impl Parameters {
    /// Checks every tensor (length, finite values) and that names are unique.
    pub fn new(tensors: Vec<ParamTensor>) -> Result<Self, ParamError> {
        let mut seen = HashSet::new();
        for t in &tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(ParamError::DuplicateName(t.name.clone()));
            }
            // A shape whose product overflows holds more values than any data can.
            let expected = shape_len(&t.shape).unwrap_or(usize::MAX);
            if expected != t.data.len() {
                return Err(ParamError::Length {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    expected,
                    given: t.data.len(),
                });
            }
            if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(ParamError::NonFinite {
                    name: t.name.clone(),
                    index,
                });
            }
        }
        Ok(Self { tensors })
    }

    /// The tensors, in order.
    pub fn tensors(&self) -> &[ParamTensor] {
        &self.tensors
    }

    /// The tensor with this name.
    pub fn get(&self, name: &str) -> Option<&ParamTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Total number of values.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All values, tensor after tensor.
    pub fn flatten(&self) -> Vec<f32> {
        self.tensors
            .iter()
            .flat_map(|t| t.data.iter().copied())
            .collect()
    }

    /// Parameters of the same names and shapes as `self`, filled from `flat`.
    pub fn unflatten_like(&self, flat: &[f32]) -> Result<Parameters, ParamError> {
        if flat.len() != self.len() {
            return Err(ParamError::Mismatch(format!(
                "{} values for parameters of {}",
                flat.len(),
                self.len()
            )));
        }
        let mut offset = 0;
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                let n = t.data.len();
                let data = flat[offset..offset + n].to_vec();
                offset += n;
                ParamTensor {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    data,
                }
            })
            .collect();
        Parameters::new(tensors)
    }

    /// Checks that `other` has the same names and shapes, in the same order.
    pub fn check_compatible(&self, other: &Parameters) -> Result<(), ParamError> {
        if self.tensors.len() != other.tensors.len() {
            return Err(ParamError::Mismatch(format!(
                "{} tensors vs {}",
                self.tensors.len(),
                other.tensors.len()
            )));
        }
        for (a, b) in self.tensors.iter().zip(&other.tensors) {
            if a.name != b.name || a.shape != b.shape {
                return Err(ParamError::Mismatch(format!(
                    "`{}` {:?} vs `{}` {:?}",
                    a.name, a.shape, b.name, b.shape
                )));
            }
        }
        Ok(())
    }

    /// `self - base`, tensor by tensor.
    pub fn delta(&self, base: &Parameters) -> Result<Parameters, ParamError> {
        self.check_compatible(base)?;
        let flat: Vec<f32> = self
            .flatten()
            .iter()
            .zip(base.flatten())
            .map(|(a, b)| a - b)
            .collect();
        self.unflatten_like(&flat)
    }

    /// `self − base` as a flat vector, `base` being flattened parameters of the same layout
    /// (checked by the caller; extra values on either side are ignored).
    pub fn flat_delta(&self, base: &[f32]) -> Vec<f32> {
        self.tensors
            .iter()
            .flat_map(|t| t.data.iter())
            .zip(base)
            .map(|(p, c)| p - c)
            .collect()
    }

    /// `self + alpha * other`.
    pub fn add_scaled(&self, other: &Parameters, alpha: f32) -> Result<Parameters, ParamError> {
        self.check_compatible(other)?;
        let flat: Vec<f32> = self
            .flatten()
            .iter()
            .zip(other.flatten())
            .map(|(a, b)| a + alpha * b)
            .collect();
        self.unflatten_like(&flat)
    }

    /// The L2 norm of all values.
    pub fn l2_norm(&self) -> f64 {
        self.tensors
            .iter()
            .flat_map(|t| t.data.iter())
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt()
    }
}

/// `Σ wᵢ pᵢ / Σ wᵢ`: the weighted average of compatible parameter sets.
pub fn weighted_average(items: &[(&Parameters, f64)]) -> Result<Parameters, ParamError> {
    let (first, _) = items.first().ok_or(ParamError::Empty)?;
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    if total <= 0.0 || !total.is_finite() {
        return Err(ParamError::Mismatch(format!("weights sum to {total}")));
    }
    let mut acc = vec![0.0f64; first.len()];
    for (p, w) in items {
        first.check_compatible(p)?;
        for (a, v) in acc.iter_mut().zip(p.flatten()) {
            *a += w * v as f64;
        }
    }
    let flat: Vec<f32> = acc.iter().map(|a| (a / total) as f32).collect();
    first.unflatten_like(&flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn params(values: &[f32]) -> Parameters {
        Parameters::new(vec![
            ParamTensor {
                name: "w".into(),
                shape: vec![values.len() - 1],
                data: values[..values.len() - 1].to_vec(),
            },
            ParamTensor {
                name: "b".into(),
                shape: vec![],
                data: vec![values[values.len() - 1]],
            },
        ])
        .unwrap()
    }

    #[test]
    fn construction_validates() {
        let bad = ParamTensor {
            name: "w".into(),
            shape: vec![2, 2],
            data: vec![1.0; 3],
        };
        assert!(matches!(
            Parameters::new(vec![bad]),
            Err(ParamError::Length { .. })
        ));
        let nan = ParamTensor {
            name: "w".into(),
            shape: vec![1],
            data: vec![f32::NAN],
        };
        assert!(matches!(
            Parameters::new(vec![nan]),
            Err(ParamError::NonFinite { .. })
        ));
        let t = ParamTensor {
            name: "w".into(),
            shape: vec![1],
            data: vec![1.0],
        };
        assert!(matches!(
            Parameters::new(vec![t.clone(), t]),
            Err(ParamError::DuplicateName(_))
        ));
    }

    #[test]
    fn arithmetic_by_hand() {
        let a = params(&[1.0, 2.0, 3.0]);
        let b = params(&[3.0, 2.0, 1.0]);
        assert_eq!(a.flatten(), [1.0, 2.0, 3.0]);
        assert_eq!(a.delta(&b).unwrap().flatten(), [-2.0, 0.0, 2.0]);
        assert_eq!(a.add_scaled(&b, 0.5).unwrap().flatten(), [2.5, 3.0, 3.5]);
        // (1*1 + 3*3)/4 = 2.5, (2+6)/4 = 2, (3+3)/4 = 1.5
        let avg = weighted_average(&[(&a, 1.0), (&b, 3.0)]).unwrap();
        assert_eq!(avg.flatten(), [2.5, 2.0, 1.5]);
        assert!((a.l2_norm() - 14f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            a.unflatten_like(&[0.0; 3]).unwrap().get("b").unwrap().data,
            [0.0]
        );
        assert!(a.unflatten_like(&[0.0; 2]).is_err());
        let other = params(&[1.0, 2.0]);
        assert!(a.delta(&other).is_err());
        assert!(weighted_average(&[]).is_err());
    }
}
