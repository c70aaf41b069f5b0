//! Dynamic quantization: INT8 weights, activations quantized at run time.
//!
//! Each `MatMul`, `Gemm` and `Conv` whose weight is a constant float32 initializer becomes
//!
//! ```text
//! x ─ DynamicQuantizeLinear ─┬─ x_q ──────┐
//!                            ├─ x_scale ─ Mul(·, w_scale) ─────────────┐
//!                            └─ x_zp ─ MatMulInteger / ConvInteger ─ Cast ─ Mul ─ [Add bias] ─ y
//!                                        (w_q, w_zp)
//! ```
//!
//! - the weight is quantized once, at quantization time ([`super::quantize_weights`]), per
//!   tensor or per output channel, to s8 (symmetric) or u8 (asymmetric), as onnxruntime does;
//! - the activation is quantized to u8 at run time by `DynamicQuantizeLinear` from its own
//!   range: once per `MatMul`/`Gemm` (ONNX Runtime fuses the pair into one
//!   `DynamicQuantizeMatMul` kernel only when nothing else reads the quantized value, which
//!   onnxruntime's own quantizer misses for activations read by several `MatMul`s), once for
//!   all the `Conv`s that read it;
//! - the int32 result is cast to float and multiplied by `x_scale · w_scale` (a vector per
//!   channel, shaped to broadcast over the output's channel axis), then the bias is added;
//! - `Gemm` becomes the same `MatMul` form: `B` transposed at quantization time when
//!   `transB = 1`, `alpha` folded into `B`, `beta` into `C` (or a `Mul` when `C` is computed),
//!   and a `Transpose` of `A` when `transA = 1`;
//! - `Conv` uses `ConvInteger`, whose ONNX Runtime CPU kernel takes uint8 weights only: s8
//!   weights are stored as u8 plus 128 with zero point 128, which is exact
//!   ([`super::QuantizedWeights::to_unsigned`]).
//!
//! The node's output keeps its name, so the graph's outputs and every reader are unchanged.
//! A node that cannot be quantized (computed weight, float16, excluded, an operator the
//! quantizer does not know) stays exactly as it was and is listed in the report with the
//! reason. The opset is raised to 11 when below ([`super::opset`]).

mod emit;
mod plan;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

use inference::onnx;
use inference::onnx::proto::{GraphProto, NodeProto};
use serde::Serialize;

use self::plan::Rewrite;
use super::error::QuantizeError;
use super::names;
use super::opset;
use super::params::QuantType;
use super::report::QuantizeReport;

/// An operator the dynamic quantizer rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum DynamicOp {
    /// `MatMul` with a constant `B`, to `MatMulInteger`.
    MatMul,
    /// `Gemm` with a constant `B`, to `MatMulInteger` and `Add`.
    Gemm,
    /// `Conv` with constant weights, to `ConvInteger`.
    Conv,
}

impl DynamicOp {
    /// Every operator, in the order the CLI lists them.
    pub const ALL: [DynamicOp; 3] = [DynamicOp::MatMul, DynamicOp::Gemm, DynamicOp::Conv];

    /// The ONNX operator name.
    pub fn name(self) -> &'static str {
        match self {
            DynamicOp::MatMul => "MatMul",
            DynamicOp::Gemm => "Gemm",
            DynamicOp::Conv => "Conv",
        }
    }

    /// The operator of a node of the default domain, if it is one of these.
    fn of(node: &NodeProto) -> Option<Self> {
        if !onnx::is_default_domain(&node.domain) {
            return None;
        }
        Self::ALL.into_iter().find(|op| op.name() == node.op_type)
    }
}

impl fmt::Display for DynamicOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`DynamicOp`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not quantized dynamically: choose among MatMul, Gemm, Conv")]
pub struct UnknownDynamicOp(pub String);

impl FromStr for DynamicOp {
    type Err = UnknownDynamicOp;

    /// The ONNX name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownDynamicOp(s.to_owned()))
    }
}

/// Options of [`quantize_dynamic`].
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicOptions {
    /// The weights' type: s8 (symmetric, the default) or u8 (asymmetric).
    pub weight_type: QuantType,
    /// One scale per output channel instead of one per weight tensor.
    pub per_channel: bool,
    /// Quantize weights to 7 bits ([`QuantType::range`]), for CPUs without VNNI.
    pub reduce_range: bool,
    /// The operators to quantize (default: all of [`DynamicOp::ALL`]).
    pub op_types: BTreeSet<DynamicOp>,
    /// Names of nodes to leave in float (each must name a node; empty names are ignored).
    pub exclude_nodes: Vec<String>,
}

impl Default for DynamicOptions {
    fn default() -> Self {
        Self {
            weight_type: QuantType::S8,
            per_channel: false,
            reduce_range: false,
            op_types: DynamicOp::ALL.into_iter().collect(),
            exclude_nodes: Vec::new(),
        }
    }
}

/// Quantizes `model_bytes` (a serialized ONNX model) dynamically, as the module documentation
/// describes; returns the quantized model's bytes and what was done.
///
/// Fails on bytes that are not an ONNX model, on names in `exclude_nodes` that no node has,
/// on an empty `op_types`, on malformed weights or attributes of the nodes it rewrites, and
/// on a model whose opset is below 11 and cannot be raised in place.
pub fn quantize_dynamic(
    model_bytes: &[u8],
    options: &DynamicOptions,
) -> Result<(Vec<u8>, QuantizeReport), QuantizeError> {
    let mut model = onnx::decode_model(model_bytes)?;
    onnx::graph(&model)?;
    let opset_before = onnx::opset_version(&model, "").ok_or(QuantizeError::NoDefaultOpset)?;
    if options.op_types.is_empty() {
        return Err(QuantizeError::NoOpTypes);
    }
    if model.ir_version < 4 {
        return Err(QuantizeError::IrTooOld(model.ir_version));
    }
    let graph = onnx::graph_mut(&mut model)?;
    check_exclusions(graph, &options.exclude_nodes)?;

    let old_nodes = std::mem::take(&mut graph.node);
    let (nodes, initializers, replaced, quantized, kept_float) = {
        let mut rewrite = Rewrite::new(graph, options);
        for node in old_nodes {
            rewrite.node(node)?;
        }
        (
            rewrite.nodes,
            rewrite.initializers,
            rewrite.replaced,
            rewrite.quantized,
            rewrite.kept_float,
        )
    };
    graph.node = nodes;
    graph.initializer.extend(initializers);
    let read = names::values_read(graph);
    graph
        .initializer
        .retain(|t| !replaced.contains(&t.name) || read.contains(&t.name));

    let opset_after = if quantized.is_empty() {
        opset_before
    } else {
        opset::raise_to_integer_opset(&mut model)?
    };
    let bytes = onnx::encode_model(&model);
    let report = QuantizeReport {
        quantized,
        kept_float,
        size_before: model_bytes.len(),
        size_after: bytes.len(),
        opset_before,
        opset_after,
        preprocess: None,
    };
    Ok((bytes, report))
}

fn check_exclusions(graph: &GraphProto, exclude: &[String]) -> Result<(), QuantizeError> {
    let names: HashSet<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    let missing: Vec<String> = exclude
        .iter()
        .filter(|e| !e.is_empty() && !names.contains(e.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut known: Vec<&str> = graph
        .node
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| !n.is_empty())
        .take(12)
        .collect();
    if known.is_empty() {
        known.push("none: the nodes are unnamed");
    }
    Err(QuantizeError::UnknownNodes {
        names: missing,
        known: known.join(", "),
    })
}
