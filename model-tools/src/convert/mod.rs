//! Model conversions that change the number format without quantizing: float32 to float16.

mod fp16;
mod fp16_block_list;
mod graph_edit;
mod types;

pub use fp16::{convert_fp16, Fp16Options, Fp16Report, KeepReason, KeptFloatNode};
pub use fp16_block_list::DEFAULT_FP16_BLOCK_OPS;

use inference::onnx::FormatError;

/// Why a model could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The bytes are not an ONNX model, or a tensor in it cannot be read (external data,
    /// data that does not fill its shape, ...).
    #[error("the model cannot be read: {0}")]
    Format(#[from] FormatError),
    /// The model has no float32 tensor, so there is nothing to convert (it may be float16 or
    /// quantized already).
    #[error("the model has no float32 values to convert (is it already float16 or quantized?)")]
    NoFloat32,
}
