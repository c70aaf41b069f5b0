//! INT8 quantization of ONNX models.
//!
//! - the arithmetic shared by every quantizer: [`compute_scale_zp`] and [`params_for_range`]
//!   (scale and zero point of a real range, exactly as onnxruntime computes them),
//!   [`quantize_weights`] (a float32 tensor to u8/s8, per tensor or per channel, with
//!   [`weight_channel_axis`] naming the channel axis of each operator's weight);
//! - [`quantize_dynamic`]: INT8 weights and activations quantized at run time
//!   (`DynamicQuantizeLinear` + `MatMulInteger` / `ConvInteger`) for `MatMul`, `Gemm` and
//!   `Conv`, returning the new model and a [`QuantizeReport`] of what was quantized and what
//!   stayed in float, and why.
//!
//! ```no_run
//! use model_tools::quantize::{quantize_dynamic, DynamicOptions, QuantType};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fp32 = std::fs::read("models/digits_mlp.onnx")?;
//! let options = DynamicOptions {
//!     weight_type: QuantType::S8,
//!     per_channel: true,
//!     ..DynamicOptions::default()
//! };
//! let (int8, report) = quantize_dynamic(&fp32, &options)?;
//! std::fs::write("digits_mlp_dynamic.onnx", &int8)?;
//! println!("{} nodes quantized, {:.2}× the size", report.quantized.len(), report.size_ratio());
//! for kept in report.notable_kept() {
//!     println!("{} ({}) stays float: {}", kept.label(), kept.op_type, kept.reason);
//! }
//! # Ok(())
//! # }
//! ```

mod auto;
mod dynamic;
mod error;
mod names;
mod opset;
mod params;
mod preprocess;
#[cfg(test)]
mod reference_tests;
mod report;
mod static_qdq;
mod weights;

pub use auto::{quantize_auto, AutoError, AutoOptions, AutoReport, AutoStep};
pub use preprocess::{preprocess, PreprocessReport};
pub use static_qdq::{
    quantize_static, StaticOptions, QDQ_OPSET, QDQ_PER_CHANNEL_OPSET, STATIC_OPS,
};

pub use dynamic::{quantize_dynamic, DynamicOp, DynamicOptions, UnknownDynamicOp};
pub use error::QuantizeError;
pub use opset::INTEGER_OPSET;
pub use params::{
    compute_scale_zp, compute_scale_zp_f16, dequantize_value, params_for_range, quantize_value,
    BadIntegerRange, ParamsConfig, QuantParams, QuantParamsF16, QuantType, UnknownQuantType,
};
pub use report::{KeepReason, KeptNode, QuantizeReport, QuantizedNode};
pub use weights::{
    quantize_weights, weight_channel_axis, Granularity, QuantizedWeights, WeightConfig, WeightError,
};
