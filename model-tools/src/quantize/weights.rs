//! Quantizing a float32 weight tensor to 8 bits, per tensor or per channel, as onnxruntime's
//! `quantize_data` / `quantize_weight_per_channel` do.
//!
//! Per tensor, one [`QuantParams`] covers the whole tensor, from its minimum and maximum. Per
//! channel, each slice along `axis` gets its own, from that slice's minimum and maximum: the
//! output channels of a layer, so that a channel of small weights is not crushed by a channel
//! of large ones. The axis is the one whose index selects an output channel
//! ([`weight_channel_axis`]): 0 for `Conv` weights `[M, C/group, k…]`, the column axis of a
//! `MatMul`'s `B` `[K, N]`, and for `Gemm` the axis of `N` in `B` as stored (0 when
//! `transB = 1`).
//!
//! Values are quantized with [`super::params::quantize_value`]: `round(x / scale) + zero_point`,
//! half to even, saturated to the type's limits, exactly as onnxruntime's `quantize_nparray`.

use inference::{ElementType, Tensor};

use super::params::{params_for_range, quantize_value, ParamsConfig, QuantParams, QuantType};

/// One set of parameters for the whole tensor, or one per slice along an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One scale and zero point.
    PerTensor,
    /// One scale and zero point per index of `axis`.
    PerChannel {
        /// The channel axis, `0..rank`.
        axis: usize,
    },
}

/// How to quantize a weight tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightConfig {
    /// The type, symmetry, range reduction and minimum real range.
    pub params: ParamsConfig,
    /// Per tensor or per channel.
    pub granularity: Granularity,
}

impl WeightConfig {
    /// Per-tensor quantization to `qtype` with its default symmetry (s8 symmetric, u8 not) and
    /// the full range: onnxruntime's defaults for weights.
    pub fn per_tensor(qtype: QuantType) -> Self {
        Self {
            params: ParamsConfig::new(qtype),
            granularity: Granularity::PerTensor,
        }
    }

    /// The same, one set of parameters per index of `axis`.
    pub fn per_channel(qtype: QuantType, axis: usize) -> Self {
        Self {
            params: ParamsConfig::new(qtype),
            granularity: Granularity::PerChannel { axis },
        }
    }
}

/// A quantized weight tensor: `weight ≈ scale[c] · (data − zero_point[c])`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeights {
    /// The integers: a `U8` or `I8` tensor of the weight's shape.
    pub data: Tensor,
    /// One entry per tensor, or one per channel in channel order.
    pub params: Vec<QuantParams>,
    /// The channel axis when per channel.
    pub axis: Option<usize>,
    /// The type of `data`.
    pub qtype: QuantType,
}

impl QuantizedWeights {
    /// The scales, one per tensor or per channel.
    pub fn scales(&self) -> Vec<f32> {
        self.params.iter().map(|p| p.scale).collect()
    }

    /// The zero points, one per tensor or per channel.
    pub fn zero_points(&self) -> Vec<i32> {
        self.params.iter().map(|p| p.zero_point).collect()
    }

    /// The zero point every channel shares (always so for symmetric quantization), if any.
    pub fn shared_zero_point(&self) -> Option<i32> {
        let first = self.params.first()?.zero_point;
        self.params
            .iter()
            .all(|p| p.zero_point == first)
            .then_some(first)
    }

    /// The scales as a float32 tensor: a scalar per tensor, `[C]` per channel (the form
    /// `DequantizeLinear` and `QuantizeLinear` take).
    pub fn scale_tensor(&self) -> Tensor {
        let shape: &[usize] = match self.axis {
            None => &[],
            Some(_) => &[self.params.len()],
        };
        Tensor::from_shape_vec(shape, self.scales()).expect("one scale per channel")
    }

    /// The zero points as a tensor of the quantized type, shaped like [`Self::scale_tensor`].
    pub fn zero_point_tensor(&self) -> Tensor {
        let shape: &[usize] = match self.axis {
            None => &[],
            Some(_) => &[self.params.len()],
        };
        integer_tensor(self.qtype, shape, &self.zero_points())
    }

    /// The same real values stored as u8: every integer and zero point of an s8 tensor plus
    /// 128, which is exact (`scale · (q − z)` does not change). For operators whose kernels
    /// take only uint8 weights, such as ONNX Runtime's `ConvInteger`. A u8 tensor is returned
    /// as it is.
    pub fn to_unsigned(self) -> QuantizedWeights {
        let Tensor::I8(array) = &self.data else {
            return self;
        };
        let data = Tensor::U8(array.mapv(|q| (i16::from(q) + 128) as u8));
        let params = self
            .params
            .iter()
            .map(|p| QuantParams {
                scale: p.scale,
                zero_point: p.zero_point + 128,
            })
            .collect();
        QuantizedWeights {
            data,
            params,
            axis: self.axis,
            qtype: QuantType::U8,
        }
    }

    /// The float32 values the integers stand for, in the weight's shape.
    pub fn dequantize(&self) -> Tensor {
        let shape = self.data.shape().to_vec();
        let values: Vec<i32> = match &self.data {
            Tensor::U8(a) => a.iter().map(|&q| i32::from(q)).collect(),
            Tensor::I8(a) => a.iter().map(|&q| i32::from(q)).collect(),
            _ => unreachable!("quantized data is u8 or i8"),
        };
        let channel = ChannelIndex::new(&shape, self.axis);
        let real = values
            .iter()
            .enumerate()
            .map(|(i, &q)| super::params::dequantize_value(q, self.params[channel.of(i)]))
            .collect();
        Tensor::from_shape_vec(&shape, real).expect("same shape")
    }
}

/// Why a tensor cannot be quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    /// Only float32 weights are quantized.
    #[error("the weights are {0}; only float32 weights are quantized")]
    NotFloat32(ElementType),
    /// A NaN or an infinity, which has no 8-bit representation.
    #[error("the weights hold a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// Row-major index of the first such value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A per-channel axis the tensor does not have.
    #[error("per-channel axis {axis} is out of range for weights of rank {rank}")]
    AxisOutOfRange {
        /// The axis asked for.
        axis: usize,
        /// The tensor's rank.
        rank: usize,
    },
}

/// Quantizes a float32 tensor as `config` says: per tensor from its minimum and maximum, or per
/// channel from each channel's, with [`params_for_range`], then every value with
/// [`quantize_value`]. An empty tensor (or channel) gets scale 1 and zero point 0.
pub fn quantize_weights(
    weights: &Tensor,
    config: &WeightConfig,
) -> Result<QuantizedWeights, WeightError> {
    let Some(array) = weights.as_array::<f32>() else {
        return Err(WeightError::NotFloat32(weights.element_type()));
    };
    if let Some((index, &value)) = array.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(WeightError::NonFinite { index, value });
    }
    let shape = weights.shape().to_vec();
    let axis = match config.granularity {
        Granularity::PerTensor => None,
        Granularity::PerChannel { axis } if axis < shape.len() => Some(axis),
        Granularity::PerChannel { axis } => {
            return Err(WeightError::AxisOutOfRange {
                axis,
                rank: shape.len(),
            })
        }
    };
    let channel = ChannelIndex::new(&shape, axis);
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); channel.count];
    for (i, &x) in array.iter().enumerate() {
        let r = &mut ranges[channel.of(i)];
        r.0 = r.0.min(x);
        r.1 = r.1.max(x);
    }
    let params: Vec<QuantParams> = ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo > hi {
                // An empty channel: onnxruntime's `compute_data_quant_params` on no data.
                QuantParams {
                    scale: 1.0,
                    zero_point: 0,
                }
            } else {
                params_for_range(lo, hi, &config.params)
            }
        })
        .collect();
    let qtype = config.params.qtype;
    let values: Vec<i32> = array
        .iter()
        .enumerate()
        .map(|(i, &x)| quantize_value(x, params[channel.of(i)], qtype))
        .collect();
    Ok(QuantizedWeights {
        data: integer_tensor(qtype, &shape, &values),
        params,
        axis,
        qtype,
    })
}

/// The axis of a weight whose index selects an output channel, for the operators that take
/// weights: 0 for `Conv` (`[M, C/group, k…]`), the last axis for `MatMul`'s `B` (`[…, K, N]`),
/// and for `Gemm`'s `B` 1, or 0 when `trans_b` (`B` stored as `[N, K]`). `None` for other
/// operators or a rank that has no such axis.
pub fn weight_channel_axis(op_type: &str, rank: usize, trans_b: bool) -> Option<usize> {
    match op_type {
        "Conv" if rank >= 1 => Some(0),
        "MatMul" if rank >= 2 => Some(rank - 1),
        "Gemm" if rank == 2 => Some(if trans_b { 0 } else { 1 }),
        _ => None,
    }
}

/// A `U8` or `I8` tensor from values known to fit the type.
pub(crate) fn integer_tensor(qtype: QuantType, shape: &[usize], values: &[i32]) -> Tensor {
    let tensor = match qtype {
        QuantType::U8 => Tensor::from_shape_vec(
            shape,
            values
                .iter()
                .map(|&v| u8::try_from(v).expect("quantized into u8 limits"))
                .collect(),
        ),
        QuantType::S8 => Tensor::from_shape_vec(
            shape,
            values
                .iter()
                .map(|&v| i8::try_from(v).expect("quantized into i8 limits"))
                .collect(),
        ),
    };
    tensor.expect("one value per element")
}

/// Maps a row-major flat index to its channel along an axis (always 0 per tensor).
struct ChannelIndex {
    /// Elements per step of the axis: the product of the later dimensions.
    inner: usize,
    /// Channels: the axis's dimension (1 per tensor).
    count: usize,
}

impl ChannelIndex {
    fn new(shape: &[usize], axis: Option<usize>) -> Self {
        match axis {
            None => Self { inner: 1, count: 1 },
            Some(axis) => Self {
                inner: shape[axis + 1..].iter().product(),
                count: shape[axis],
            },
        }
    }

    fn of(&self, flat: usize) -> usize {
        if self.count == 1 {
            0
        } else {
            (flat / self.inner.max(1)) % self.count
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::from_shape_vec(shape, data.to_vec()).unwrap()
    }

    #[test]
    fn per_tensor_s8_is_symmetric_with_zero_point_0() {
        let w = tensor(&[2, 2], &[-1.1, 0.5, 0.25, 2.0]);
        let q = quantize_weights(&w, &WeightConfig::per_tensor(QuantType::S8)).unwrap();
        assert_eq!(q.params.len(), 1);
        assert_eq!(q.params[0].zero_point, 0);
        assert_eq!(q.params[0].scale, (4.0f64 / 254.0) as f32);
        let Tensor::I8(data) = &q.data else {
            panic!("{:?}", q.data)
        };
        assert_eq!(data.iter().copied().collect::<Vec<_>>(), [-70, 32, 16, 127]);
        assert_eq!(q.scale_tensor().shape(), &[] as &[usize]);
    }

    #[test]
    fn per_channel_gives_each_channel_its_range() {
        // Columns of a [K=2, N=3] MatMul weight: channel axis 1.
        let w = tensor(&[2, 3], &[1.0, -100.0, 0.0, -1.0, 50.0, 0.0]);
        let q = quantize_weights(&w, &WeightConfig::per_channel(QuantType::U8, 1)).unwrap();
        assert_eq!(q.params.len(), 3);
        assert_eq!(q.params[0].scale, (2.0f64 / 255.0) as f32);
        assert_eq!(q.params[1].scale, (150.0f64 / 255.0) as f32);
        assert_eq!(q.params[2].scale, 1.0); // all zero
        assert_eq!(q.zero_point_tensor().shape(), &[3]);
        let back = q.dequantize();
        let back = back.as_array::<f32>().unwrap();
        for (x, y) in w.as_array::<f32>().unwrap().iter().zip(back.iter()) {
            assert!((x - y).abs() <= 0.3, "{x} vs {y}");
        }
        assert!((back[[0, 0]] - 1.0).abs() < 0.01);
    }

    #[test]
    fn unsigned_storage_of_s8_weights_is_exact() {
        let w = tensor(&[3, 2], &[-1.0, 0.3, 0.7, -0.2, 0.0, 0.9]);
        let q = quantize_weights(&w, &WeightConfig::per_channel(QuantType::S8, 0)).unwrap();
        let u = q.clone().to_unsigned();
        assert_eq!(u.qtype, QuantType::U8);
        assert_eq!(u.shared_zero_point(), Some(128));
        assert_eq!(u.data.element_type(), ElementType::U8);
        assert_eq!(u.dequantize(), q.dequantize());
    }

    #[test]
    fn bad_weights_are_refused_with_the_reason() {
        let nan = tensor(&[2], &[0.0, f32::NAN]);
        let err = quantize_weights(&nan, &WeightConfig::per_tensor(QuantType::S8)).unwrap_err();
        assert!(
            matches!(err, WeightError::NonFinite { index: 1, .. }),
            "{err}"
        );
        let ints = Tensor::from_shape_vec(&[1], vec![1i64]).unwrap();
        let err = quantize_weights(&ints, &WeightConfig::per_tensor(QuantType::S8)).unwrap_err();
        assert!(err.to_string().contains("int64"), "{err}");
        let w = tensor(&[2], &[0.0, 1.0]);
        let err = quantize_weights(&w, &WeightConfig::per_channel(QuantType::S8, 1)).unwrap_err();
        assert_eq!(err, WeightError::AxisOutOfRange { axis: 1, rank: 1 });
    }

    #[test]
    fn channel_axes_follow_the_operator() {
        assert_eq!(weight_channel_axis("Conv", 4, false), Some(0));
        assert_eq!(weight_channel_axis("MatMul", 2, false), Some(1));
        assert_eq!(weight_channel_axis("MatMul", 1, false), None);
        assert_eq!(weight_channel_axis("Gemm", 2, true), Some(0));
        assert_eq!(weight_channel_axis("Gemm", 2, false), Some(1));
        assert_eq!(weight_channel_axis("Relu", 2, false), None);
    }
}
