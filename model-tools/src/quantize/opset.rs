//! Raising a model's `ai.onnx` opset to the one the integer operators need, where that is safe.
//!
//! `MatMulInteger` and `ConvInteger` exist since opset 10, `DynamicQuantizeLinear` since 11.
//! Changing the imported opset changes the meaning of every node in the model, so it is
//! raised in place only from opset 7–10 and only when no node uses an operator whose
//! definition changed incompatibly on the way to 11 (`Slice` and `TopK` took their
//! parameters as inputs at 10, `Pad`, `Clip` and `Resize` at 11, `Upsample` and `Scatter`
//! were deprecated, ...). Otherwise the error tells the user to convert the model with
//! `onnx.version_converter`, which rewrites those nodes.

use inference::onnx::{self, proto::ModelProto, proto::NodeProto};

use super::error::QuantizeError;

/// The opset the integer operators of the dynamic quantizer need.
pub const INTEGER_OPSET: i64 = 11;

/// Imports `ai.onnx` at [`INTEGER_OPSET`] when below it, and makes the IR version at least 6
/// (the one of opset 11); returns the opset the model imports afterwards.
pub(crate) fn raise_to_integer_opset(model: &mut ModelProto) -> Result<i64, QuantizeError> {
    let version = onnx::opset_version(model, "").ok_or(QuantizeError::NoDefaultOpset)?;
    if version >= INTEGER_OPSET {
        return Ok(version);
    }
    if version < 7 {
        return Err(QuantizeError::OpsetTooOld {
            version,
            why: "broadcasting rules changed at opset 7".to_owned(),
        });
    }
    let graph = onnx::graph(model)?;
    if let Some(why) = first_blocker(&graph.node) {
        return Err(QuantizeError::OpsetTooOld { version, why });
    }
    onnx::set_opset_version(model, "", INTEGER_OPSET);
    model.ir_version = model.ir_version.max(6);
    Ok(INTEGER_OPSET)
}

/// The first node (in subgraphs too) whose meaning would change between opset 7 and 11.
fn first_blocker(nodes: &[NodeProto]) -> Option<String> {
    for node in nodes {
        if onnx::is_default_domain(&node.domain) {
            if let Some(change) = incompatible_change(node) {
                return Some(format!("{} {change}", onnx::node_label(node)));
            }
        }
        for attribute in &node.attribute {
            let graphs = attribute.g.iter().chain(&attribute.graphs);
            for graph in graphs {
                if let Some(why) = first_blocker(&graph.node) {
                    return Some(why);
                }
            }
        }
    }
    None
}

fn incompatible_change(node: &NodeProto) -> Option<&'static str> {
    Some(match node.op_type.as_str() {
        "Slice" | "TopK" => "takes its parameters as inputs from opset 10",
        "Pad" | "Clip" => "takes its parameters as inputs from opset 11",
        "Resize" => "changed its inputs at opset 11",
        "Upsample" | "Scatter" => "is deprecated by opset 11",
        "Scan" => "changed its signature at opset 9",
        "Dropout" if node.output.len() > 1 => "changed the type of its mask at opset 10",
        "BatchNormalization" if onnx::find_attribute(node, "spatial").is_some() => {
            "lost its `spatial` attribute at opset 9"
        }
        _ => return None,
    })
}
