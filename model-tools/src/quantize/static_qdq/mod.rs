//! Static quantization in the QDQ format: every quantized node reads its inputs through
//! `DequantizeLinear` and writes its output through a `QuantizeLinear`/`DequantizeLinear`
//! pair, with scales and zero points from calibrated ranges; weights are stored as integers
//! (per tensor or per output channel) and biases as INT32 with the scale `s_input · s_weight`.
//! ONNX Runtime fuses `DequantizeLinear → op → QuantizeLinear` into its integer kernels
//! (`QLinearConv`, `QLinearMatMul`, ...); any other runtime runs the graph as written.
//!
//! What it does, per node of [`STATIC_OPS`] that is not excluded:
//! - activations (tensors computed at run time) get one Q/DQ pair each, shared by all their
//!   readers, with the range [`crate::calibrate`] measured;
//! - `Reshape`, `Flatten`, `Transpose`, `Squeeze`, `Unsqueeze`, `MaxPool` and `Resize` give
//!   their output their input's scale and zero point (they only move values);
//! - a `Relu` or `Clip` that alone reads the output of a quantized node is removed, and that
//!   node's output takes its range (the clamp is what the quantized range does), unless
//!   activations are symmetric;
//! - everything else stays float, as it was, and the report lists it with the reason.
//!
//! The model is pre-processed first ([`super::preprocess`]: constants to initializers,
//! `BatchNormalization` folded into `Conv`, `Identity` bypassed); ranges calibrated on the
//! original model apply, since the tensors that remain keep their names.

mod decide;
mod emit;
mod rewrite;
mod select;

use std::collections::HashSet;

use inference::onnx::{self, proto::GraphProto};

use super::error::QuantizeError;
use super::params::QuantType;
use super::report::QuantizeReport;
use crate::calibrate::TensorRanges;
pub use select::STATIC_OPS;

/// The oldest `ai.onnx` opset with `QuantizeLinear`/`DequantizeLinear`.
pub const QDQ_OPSET: i64 = 10;
/// The oldest `ai.onnx` opset whose `DequantizeLinear` takes an `axis` (per-channel weights).
pub const QDQ_PER_CHANNEL_OPSET: i64 = 13;

/// How [`quantize_static`] quantizes.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticOptions {
    /// The integer type of activations (onnxruntime's default: u8).
    pub activation_type: QuantType,
    /// The integer type of weights (default s8, symmetric).
    pub weight_type: QuantType,
    /// One scale per output channel of `Conv`, `MatMul` and `Gemm` weights.
    pub per_channel: bool,
    /// Activation ranges made symmetric around 0 (zero point 0 for s8, 128 for u8).
    pub symmetric_activations: bool,
    /// Nodes to keep in float, by name.
    pub exclude_nodes: Vec<String>,
    /// Operator types to keep in float.
    pub exclude_op_types: Vec<String>,
}

impl Default for StaticOptions {
    fn default() -> Self {
        Self {
            activation_type: QuantType::U8,
            weight_type: QuantType::S8,
            per_channel: false,
            symmetric_activations: false,
            exclude_nodes: Vec::new(),
            exclude_op_types: Vec::new(),
        }
    }
}

/// Quantizes `model` (ONNX bytes) in the QDQ format with the activation ranges `ranges`
/// (from [`crate::calibrate`]): returns the new model and what was quantized and kept.
pub fn quantize_static(
    model: &[u8],
    ranges: &TensorRanges,
    options: &StaticOptions,
) -> Result<(Vec<u8>, QuantizeReport), QuantizeError> {
    let mut proto = onnx::decode_model(model)?;
    let opset = onnx::opset_version(&proto, "").ok_or(QuantizeError::NoDefaultOpset)?;
    let needed = if options.per_channel {
        QDQ_PER_CHANNEL_OPSET
    } else {
        QDQ_OPSET
    };
    if opset < needed {
        return Err(QuantizeError::QdqOpsetTooOld {
            version: opset,
            needed,
            what: if options.per_channel {
                "per-channel DequantizeLinear (its `axis`)"
            } else {
                "QuantizeLinear and DequantizeLinear"
            },
            alternative: if options.per_channel && opset >= QDQ_OPSET {
                "; or quantize per tensor (without --per-channel)"
            } else {
                ""
            },
        });
    }
    let graph = onnx::graph_mut(&mut proto)?;
    check_excluded_names(graph, &options.exclude_nodes)?;
    let preprocessed = super::preprocess::preprocess(graph)?;
    let decisions = decide::decide(graph, ranges, options)?;
    let mut report = rewrite::rewrite(graph, &decisions, ranges, options)?;
    let bytes = onnx::encode_model(&proto);
    report.size_before = model.len();
    report.size_after = bytes.len();
    report.opset_before = opset;
    report.opset_after = opset;
    report.preprocess = Some(preprocessed);
    Ok((bytes, report))
}

fn check_excluded_names(graph: &GraphProto, exclude: &[String]) -> Result<(), QuantizeError> {
    let names: HashSet<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    let missing: Vec<String> = exclude
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let known = graph
        .node
        .iter()
        .filter(|n| !n.name.is_empty())
        .take(12)
        .map(|n| format!("`{}`", n.name))
        .collect::<Vec<_>>()
        .join(", ");
    Err(QuantizeError::UnknownNodes {
        names: missing,
        known,
    })
}
