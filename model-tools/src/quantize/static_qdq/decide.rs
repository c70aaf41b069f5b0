//! The decision for each node: quantize it, fold it (a `Relu`/`Clip` removed into the range
//! of the node before it), or keep it in float with a reason.

use std::collections::{HashMap, HashSet};

use inference::onnx::{self, proto::GraphProto};
use inference::ElementType;

use super::super::error::QuantizeError;
use super::super::report::KeepReason;
use super::select::{self, Constants, Role};
use super::StaticOptions;
use crate::calibrate::TensorRanges;

/// What happens to one node.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Decision {
    /// Quantized: its inputs read through DequantizeLinear, its output gets a Q/DQ pair.
    Quantize,
    /// Removed: the node at this index (quantized) now writes this node's output.
    FoldedInto(usize),
    /// Left in float.
    Keep(KeepReason),
}

/// The decisions for `graph.node`, by index.
pub(super) fn decide(
    graph: &GraphProto,
    ranges: &TensorRanges,
    options: &StaticOptions,
) -> Result<Vec<Decision>, QuantizeError> {
    let constants = Constants::of(graph);
    let producers = onnx::producers(graph);
    let consumers = onnx::consumers(graph);
    let graph_outputs: HashSet<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
    let bad_weights = unusable_weights(graph, &constants)?;

    let check = |i: usize, output_range_of: &str| -> Result<(), KeepReason> {
        let node = &graph.node[i];
        select::check(node, output_range_of, ranges, &constants, options)?;
        let roles = select::input_roles(node, &constants, options.per_channel);
        for (name, role) in node.input.iter().zip(roles) {
            if matches!(role, Role::Weight { .. }) {
                if let Some(reason) = bad_weights.get(name.as_str()) {
                    return Err(reason.clone());
                }
            }
        }
        Ok(())
    };

    let mut decisions: Vec<Option<Decision>> = vec![None; graph.node.len()];
    // Folds first: the producer is checked with the activation's output range.
    if !options.symmetric_activations {
        for (i, node) in graph.node.iter().enumerate() {
            if !select::is_foldable_activation(node) || check(i, &node.output[0]).is_err() {
                continue;
            }
            let Some(input) = node.input.first() else {
                continue;
            };
            let Some(&p) = producers.get(input.as_str()) else {
                continue;
            };
            let producer = &graph.node[p];
            let alone = consumers.get(input.as_str()).is_some_and(|c| c.len() == 1)
                && !graph_outputs.contains(input.as_str())
                && producer.output.first() == Some(input)
                && !select::SAME_AS_INPUT.contains(&producer.op_type.as_str())
                && !select::is_foldable_activation(producer)
                && decisions[p].is_none();
            if alone && check(p, &node.output[0]).is_ok() {
                decisions[p] = Some(Decision::Quantize);
                decisions[i] = Some(Decision::FoldedInto(p));
            }
        }
    }
    Ok(decisions
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            d.unwrap_or_else(|| match check(i, &graph.node[i].output[0]) {
                Ok(()) => Decision::Quantize,
                Err(reason) => Decision::Keep(reason),
            })
        })
        .collect())
}

/// Float initializers that cannot be stored as integers (a NaN or infinite value), with the
/// reason; a malformed initializer is an error.
fn unusable_weights<'g>(
    graph: &'g GraphProto,
    constants: &Constants,
) -> Result<HashMap<&'g str, KeepReason>, QuantizeError> {
    let mut bad = HashMap::new();
    for proto in &graph.initializer {
        if !constants.contains(&proto.name) || onnx::element_type(proto) != Some(ElementType::F32) {
            continue;
        }
        let tensor = onnx::tensor_from_proto(proto).map_err(|source| QuantizeError::Node {
            node: format!("initializer `{}`", proto.name),
            source,
        })?;
        if let Some(value) = tensor
            .as_array::<f32>()
            .and_then(|a| a.iter().find(|x| !x.is_finite()).copied())
        {
            bad.insert(
                proto.name.as_str(),
                KeepReason::Unsupported {
                    detail: format!(
                        "`{}` holds {value}, which has no integer representation",
                        proto.name
                    ),
                },
            );
        }
    }
    Ok(bad)
}
