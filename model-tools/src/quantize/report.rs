//! What a quantizer did: the nodes it quantized, the ones it left in float and why, sizes.

use std::fmt;

use serde::Serialize;

use super::params::QuantType;

/// The outcome of a quantization, for a person (the CLI prints it) or a program (it serializes
/// to JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizeReport {
    /// The nodes replaced by integer arithmetic, in graph order.
    pub quantized: Vec<QuantizedNode>,
    /// Every other node of the main graph, in graph order, with the reason it stayed float.
    pub kept_float: Vec<KeptNode>,
    /// Bytes of the model given.
    pub size_before: usize,
    /// Bytes of the model written.
    pub size_after: usize,
    /// The `ai.onnx` opset the model imported.
    pub opset_before: i64,
    /// The `ai.onnx` opset the written model imports (raised to 11 when the new operators
    /// need it).
    pub opset_after: i64,
    /// What pre-processing changed (static quantization only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<super::preprocess::PreprocessReport>,
}

impl QuantizeReport {
    /// `size_after / size_before` (0 for an empty input).
    pub fn size_ratio(&self) -> f64 {
        if self.size_before == 0 {
            0.0
        } else {
            self.size_after as f64 / self.size_before as f64
        }
    }

    /// The nodes kept in float for a reason other than [`KeepReason::NotQuantizable`]: the
    /// ones a reader should look at (excluded, or not quantizable as they are).
    pub fn notable_kept(&self) -> impl Iterator<Item = &KeptNode> {
        self.kept_float
            .iter()
            .filter(|k| k.reason != KeepReason::NotQuantizable)
    }
}

/// A node the quantizer rewrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizedNode {
    /// The node's name (may be empty in the model).
    pub node: String,
    /// Its first output, which the rewrite still writes.
    pub output: String,
    /// Its operator (`MatMul`, `Gemm`, `Conv`).
    pub op_type: String,
    /// The weight initializer quantized.
    pub weight: String,
    /// The integer type the weight is quantized as.
    pub weight_type: QuantType,
    /// The integer type the weight is stored as (u8 for `ConvInteger`, which has no int8
    /// weight kernel in ONNX Runtime; a symmetric s8 weight is stored shifted by 128, exactly).
    pub stored_as: QuantType,
    /// Whether each output channel has its own scale.
    pub per_channel: bool,
    /// The integer operator that replaces it (`MatMulInteger`, `ConvInteger`).
    pub integer_op: String,
}

/// A node left in float.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptNode {
    /// The node's name (may be empty in the model).
    pub node: String,
    /// Its first output.
    pub output: String,
    /// Its operator, with its domain when not the default one (`com.example.Custom`).
    pub op_type: String,
    /// Why it was not quantized.
    pub reason: KeepReason,
}

impl KeptNode {
    /// The node's name, or its first output when it has none.
    pub fn label(&self) -> &str {
        if self.node.is_empty() {
            &self.output
        } else {
            &self.node
        }
    }
}

/// Why a node stayed in float.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeepReason {
    /// The caller excluded it by name.
    Excluded,
    /// Its operator is quantizable but not among the operator types asked for.
    OpTypeNotSelected,
    /// The quantizer has no integer form for this operator (or does not know it): it is left
    /// exactly as it was.
    NotQuantizable,
    /// The weight input is computed at run time, not a constant initializer.
    WeightNotConstant {
        /// The input.
        input: String,
    },
    /// The weight initializer is also a graph input, so a caller may override it at run time.
    WeightIsGraphInput {
        /// The input.
        input: String,
    },
    /// Quantizable in principle, not in this form.
    Unsupported {
        /// What stands in the way.
        detail: String,
    },
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Excluded => f.write_str("excluded by name"),
            KeepReason::OpTypeNotSelected => f.write_str("operator type not selected"),
            KeepReason::NotQuantizable => f.write_str("no integer form; left as is"),
            KeepReason::WeightNotConstant { input } => {
                write!(
                    f,
                    "weight `{input}` is computed at run time, not an initializer"
                )
            }
            KeepReason::WeightIsGraphInput { input } => write!(
                f,
                "weight `{input}` is also a graph input, so it may be overridden at run time"
            ),
            KeepReason::Unsupported { detail } => f.write_str(detail),
        }
    }
}
