//! Which nodes static quantization rewrites, what each of their inputs is (an activation, a
//! weight, a bias), and which `Relu`/`Clip` nodes fold into the range of the node before them.

use std::collections::{HashMap, HashSet};

use inference::onnx::{self, proto::GraphProto, proto::NodeProto};
use inference::ElementType;

use super::super::report::KeepReason;
use super::super::weights::weight_channel_axis;
use super::StaticOptions;
use crate::calibrate::TensorRanges;

/// The operators static quantization knows, in the order `--help` lists them.
pub const STATIC_OPS: [&str; 19] = [
    "Conv",
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "Concat",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Relu",
    "Clip",
    "Sigmoid",
    "Resize",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "LeakyRelu",
];

/// Operators whose output holds only values of their first input (reordered, reshaped, or a
/// maximum of them): the output shares the input's scale and zero point, so the integer
/// kernel moves bytes without requantizing.
pub(super) const SAME_AS_INPUT: [&str; 7] = [
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "MaxPool",
    "Resize",
];

/// What an input of a quantized node is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Role {
    /// A tensor computed at run time: a QuantizeLinear/DequantizeLinear pair with the
    /// calibrated range.
    Activation,
    /// A constant float initializer: stored as integers with a DequantizeLinear, per channel
    /// along `axis` when that is asked for and the operator has a channel axis.
    Weight {
        /// The output-channel axis of this weight, when it has one.
        channel_axis: Option<usize>,
    },
    /// The bias of `Conv`/`Gemm`: INT32 with the scale `s_input · s_weight`.
    Bias,
    /// Left as it is (shapes, axes, sizes, `Clip` bounds, a `Gemm` bias that `alpha`/`beta`
    /// scale).
    Skip,
}

/// The constant initializers of a graph (initializers that are not also graph inputs), by
/// name, with their element type and rank.
pub(super) struct Constants {
    by_name: HashMap<String, (Option<ElementType>, usize)>,
}

impl Constants {
    pub(super) fn of(graph: &GraphProto) -> Self {
        let inputs: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
        let by_name = graph
            .initializer
            .iter()
            .filter(|t| !inputs.contains(t.name.as_str()))
            .map(|t| (t.name.clone(), (onnx::element_type(t), t.dims.len())))
            .collect();
        Self { by_name }
    }

    fn float(&self, name: &str) -> Option<usize> {
        match self.by_name.get(name) {
            Some((Some(ElementType::F32), rank)) => Some(*rank),
            _ => None,
        }
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

/// The role of each input of `node` (an operator of [`STATIC_OPS`]).
pub(super) fn input_roles(node: &NodeProto, constants: &Constants, per_channel: bool) -> Vec<Role> {
    let op = node.op_type.as_str();
    let weight_or_activation = |i: usize, channel_axis: Option<usize>| {
        let name = node.input.get(i).map(String::as_str).unwrap_or("");
        match constants.float(name) {
            Some(_) => Role::Weight {
                channel_axis: channel_axis.filter(|_| per_channel),
            },
            None if constants.contains(name) => Role::Skip,
            None => Role::Activation,
        }
    };
    let rank_of = |i: usize| {
        node.input
            .get(i)
            .and_then(|n| constants.float(n))
            .unwrap_or(0)
    };
    node.input
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if name.is_empty() {
                return Role::Skip;
            }
            match (op, i) {
                ("Conv", 0) => Role::Activation,
                ("Conv", 1) => {
                    weight_or_activation(1, weight_channel_axis("Conv", rank_of(1), false))
                }
                ("Conv", 2) if constants.float(name) == Some(1) => Role::Bias,
                ("MatMul", 0) => weight_or_activation(0, None),
                ("MatMul", 1) => {
                    weight_or_activation(1, weight_channel_axis("MatMul", rank_of(1), false))
                }
                ("Gemm", 0) => weight_or_activation(0, None),
                ("Gemm", 1) => {
                    let trans_b = onnx::attr_int(node, "transB").ok().flatten() == Some(1);
                    weight_or_activation(1, weight_channel_axis("Gemm", rank_of(1), trans_b))
                }
                ("Gemm", 2) if gemm_bias_is_plain(node) && constants.float(name) == Some(1) => {
                    Role::Bias
                }
                ("Add" | "Mul", 0 | 1) | ("Concat", _) => weight_or_activation(i, None),
                (_, 0) => Role::Activation,
                _ => Role::Skip,
            }
        })
        .collect()
}

/// `Y = A·B + C` exactly (`alpha` and `beta` 1), so that an INT32 bias with the scale
/// `s_A · s_B` adds to the integer product.
fn gemm_bias_is_plain(node: &NodeProto) -> bool {
    let one = |name| {
        onnx::attr_float(node, name)
            .ok()
            .flatten()
            .is_none_or(|v| v == 1.0)
    };
    one("alpha") && one("beta")
}

/// Whether `node` can be quantized with its output's range taken from `output_range_of`:
/// `Ok` or the reason it stays float.
pub(super) fn check(
    node: &NodeProto,
    output_range_of: &str,
    ranges: &TensorRanges,
    constants: &Constants,
    options: &StaticOptions,
) -> Result<(), KeepReason> {
    if !onnx::is_default_domain(&node.domain) || !STATIC_OPS.contains(&node.op_type.as_str()) {
        return Err(KeepReason::NotQuantizable);
    }
    if options.exclude_nodes.contains(&node.name) {
        return Err(KeepReason::Excluded);
    }
    if options.exclude_op_types.contains(&node.op_type) {
        return Err(KeepReason::OpTypeNotSelected);
    }
    let roles = input_roles(node, constants, options.per_channel);
    if node.op_type == "Conv" && roles.get(1) == Some(&Role::Activation) {
        return Err(KeepReason::WeightNotConstant {
            input: node.input[1].clone(),
        });
    }
    let activations = node
        .input
        .iter()
        .zip(&roles)
        .filter(|(_, r)| **r == Role::Activation);
    let mut any_activation = false;
    for (name, _) in activations {
        any_activation = true;
        if !ranges.contains_key(name) {
            return Err(no_range(name));
        }
    }
    if !any_activation {
        return Err(KeepReason::Unsupported {
            detail: "all its inputs are constants (fold them first)".to_owned(),
        });
    }
    let same_as_input = SAME_AS_INPUT.contains(&node.op_type.as_str());
    if !same_as_input && !ranges.contains_key(output_range_of) {
        return Err(no_range(output_range_of));
    }
    if node.output.len() != 1 && node.op_type != "MaxPool" {
        return Err(KeepReason::Unsupported {
            detail: format!("{} outputs; the quantizer handles one", node.output.len()),
        });
    }
    if node.op_type == "MaxPool" && node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(KeepReason::Unsupported {
            detail: "MaxPool's Indices output is used".to_owned(),
        });
    }
    Ok(())
}

fn no_range(tensor: &str) -> KeepReason {
    KeepReason::Unsupported {
        detail: format!(
            "no calibration range for `{tensor}` (not a float tensor, or not observed)"
        ),
    }
}

/// `Relu` and `Clip`: their clamp is what quantizing the node before them with their output's
/// range does, so they can be removed once that node is quantized.
pub(super) fn is_foldable_activation(node: &NodeProto) -> bool {
    onnx::is_default_domain(&node.domain) && matches!(node.op_type.as_str(), "Relu" | "Clip")
}
