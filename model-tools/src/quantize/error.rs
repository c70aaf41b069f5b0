//! Why a model could not be quantized at all. (A node that cannot be quantized is not an
//! error: it stays in float and the report says why.)

use inference::onnx::FormatError;

use super::weights::WeightError;

/// Why quantization failed.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The bytes are not an ONNX model, or a part of it the quantizer reads is malformed.
    #[error("not a valid ONNX model: {0}")]
    Format(#[from] FormatError),
    /// The model imports no version of the default operator set.
    #[error("the model imports no `ai.onnx` operator set, so its operators have no meaning; re-export it with an opset import")]
    NoDefaultOpset,
    /// The model's IR version predates the one the quantizer writes.
    #[error("the model uses ONNX IR version {0}, from before initializers and inputs were separate (IR 4); re-export it, or upgrade it with `onnx.version_converter.convert_version(model, 13)`")]
    IrTooOld(i64),
    /// The integer operators need opset 11 and the model's opset cannot simply be raised.
    #[error("the model imports ai.onnx opset {version}, but the integer operators need opset 11, and {why}; upgrade it first with `onnx.version_converter.convert_version(model, 13)`")]
    OpsetTooOld {
        /// The opset imported.
        version: i64,
        /// What prevents raising it in place.
        why: String,
    },
    /// Nodes to exclude that the model does not have.
    #[error("no node named {} in the model (node names: {known})", .names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    UnknownNodes {
        /// The names not found.
        names: Vec<String>,
        /// Some of the names the model has, for the message.
        known: String,
    },
    /// No operator type to quantize was given.
    #[error("no operator types to quantize: choose one or more of MatMul, Gemm, Conv")]
    NoOpTypes,
    /// A node's attribute or a weight that the quantizer reads is malformed.
    #[error("{node}: {source}")]
    Node {
        /// The node, as `inference::onnx::node_label` names it.
        node: String,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// A weight could not be stored as integers.
    #[error("{node}: {source}")]
    Weight {
        /// The node reading the weight.
        node: String,
        /// What is wrong with it.
        #[source]
        source: WeightError,
    },
    /// A constant the rewrite reads is not in the graph.
    #[error("{node}: the initializer `{name}` it reads is missing from the graph")]
    MissingConstant {
        /// The node.
        node: String,
        /// The initializer's name.
        name: String,
    },
    /// A node the pre-processing rewrites is not in a form it handles.
    #[error("{node}: {detail}")]
    Unsupported {
        /// The node.
        node: String,
        /// What stands in the way.
        detail: String,
    },
    /// The model's opset predates the QuantizeLinear/DequantizeLinear form asked for.
    #[error("the model imports ai.onnx opset {version}, but {what} need opset {needed}; upgrade it first with `onnx.version_converter.convert_version(model, {needed})`{alternative}")]
    QdqOpsetTooOld {
        /// The opset imported.
        version: i64,
        /// The opset needed.
        needed: i64,
        /// What needs it.
        what: &'static str,
        /// What else the user can do, starting with "; ", or empty.
        alternative: &'static str,
    },
}
