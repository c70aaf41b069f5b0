//! The element type of every value of a graph, so that intermediate tensors can be declared as
//! graph outputs (both engines need an output's type) without running shape inference.
//!
//! Types come from the graph's declarations (inputs, initializers, `value_info`, outputs),
//! then flow forward through the nodes by each operator's typing rule. An operator without a
//! rule here leaves its outputs untyped; calibration then reports them as skipped rather than
//! guessing.

use std::collections::HashMap;

use inference::onnx::{self, proto as pb};
use inference::ElementType;

/// Known element types by value name.
pub(crate) fn element_types(graph: &pb::GraphProto) -> HashMap<String, ElementType> {
    let mut types: HashMap<String, ElementType> = HashMap::new();
    let declared = graph
        .input
        .iter()
        .chain(&graph.value_info)
        .chain(&graph.output);
    for vi in declared {
        if let Some(ty) = onnx::declared_tensor(vi).and_then(|d| d.element_type()) {
            types.insert(vi.name.clone(), ty);
        }
    }
    for t in &graph.initializer {
        if let Some(ty) = ElementType::from_onnx_code(t.data_type) {
            types.insert(t.name.clone(), ty);
        }
    }
    // Nodes are usually in order; a few passes also type graphs that are not.
    for _ in 0..4 {
        let mut changed = false;
        for node in &graph.node {
            if !onnx::is_default_domain(&node.domain) {
                continue;
            }
            for (slot, output) in node.output.iter().enumerate() {
                if output.is_empty() || types.contains_key(output) {
                    continue;
                }
                if let Some(ty) = output_type(node, slot, &types) {
                    types.insert(output.clone(), ty);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    types
}

/// Operators whose every output has the element type of their first input.
const LIKE_FIRST_INPUT: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "BitShift",
    "Ceil",
    "Celu",
    "Clip",
    "Col2Im",
    "Compress",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DepthToSpace",
    "Div",
    "Einsum",
    "Elu",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "GridSample",
    "GroupNormalization",
    "HardSigmoid",
    "HardSwish",
    "Hardmax",
    "Identity",
    "InstanceNormalization",
    "LRN",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "LpNormalization",
    "LpPool",
    "MatMul",
    "Max",
    "MaxRoiPool",
    "MaxUnpool",
    "Mean",
    "MeanVarianceNormalization",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Neg",
    "Pad",
    "Pow",
    "PRelu",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "ReverseSequence",
    "RoiAlign",
    "Round",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Upsample",
];

/// Operators whose outputs are all int64.
const INT64_OUTPUTS: &[&str] = &[
    "ArgMax",
    "ArgMin",
    "NonMaxSuppression",
    "NonZero",
    "Shape",
    "Size",
];

/// Operators whose outputs are all bool.
const BOOL_OUTPUTS: &[&str] = &[
    "And",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "IsInf",
    "IsNaN",
    "Less",
    "LessOrEqual",
    "Not",
    "Or",
    "Xor",
];

/// The element type of output `slot` of `node`, if its rule and input types tell.
fn output_type(
    node: &pb::NodeProto,
    slot: usize,
    types: &HashMap<String, ElementType>,
) -> Option<ElementType> {
    let input = |i: usize| -> Option<ElementType> {
        node.input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| types.get(n))
            .copied()
    };
    let attr_type = |name: &str| -> Option<ElementType> {
        let code = onnx::attr_int(node, name).ok().flatten()?;
        ElementType::from_onnx_code(i32::try_from(code).ok()?)
    };
    let op = node.op_type.as_str();
    match op {
        _ if INT64_OUTPUTS.contains(&op) => Some(ElementType::I64),
        _ if BOOL_OUTPUTS.contains(&op) => Some(ElementType::Bool),
        // Second outputs that are indices or masks.
        "MaxPool" | "TopK" | "Unique" if slot > 0 => Some(ElementType::I64),
        "Dropout" if slot == 1 => Some(ElementType::Bool),
        "MaxPool" | "TopK" | "Unique" | "Dropout" => input(0),
        // Training outputs of normalizations are not typed here.
        "BatchNormalization" | "LayerNormalization" if slot > 0 => None,
        "LayerNormalization" => input(0),
        "Cast" => attr_type("to"),
        "CastLike" => input(1),
        "Where" => input(1),
        "ConstantOfShape" => Some(
            onnx::attr_tensor(node, "value")
                .ok()
                .flatten()
                .and_then(|t| ElementType::from_onnx_code(t.data_type))
                .unwrap_or(ElementType::F32),
        ),
        "Constant" => constant_type(node),
        "QuantizeLinear" => attr_type("output_dtype")
            .or_else(|| input(2))
            .or(Some(ElementType::U8)),
        "DequantizeLinear" => input(1),
        "DynamicQuantizeLinear" => Some(if slot == 1 {
            ElementType::F32
        } else {
            ElementType::U8
        }),
        "MatMulInteger" | "ConvInteger" => Some(ElementType::I32),
        "QLinearConv" | "QLinearMatMul" => input(7),
        _ if LIKE_FIRST_INPUT.contains(&op) => input(0),
        _ => None,
    }
}

/// The type of a `Constant` node's value, whichever attribute holds it.
fn constant_type(node: &pb::NodeProto) -> Option<ElementType> {
    if let Ok(Some(t)) = onnx::attr_tensor(node, "value") {
        return ElementType::from_onnx_code(t.data_type);
    }
    let has = |name: &str| node.attribute.iter().any(|a| a.name == name);
    if has("value_float") || has("value_floats") {
        Some(ElementType::F32)
    } else if has("value_int") || has("value_ints") {
        Some(ElementType::I64)
    } else if has("value_string") || has("value_strings") {
        Some(ElementType::String)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inference::test_support::{model, node, value_info};

    #[test]
    fn types_flow_through_nodes_by_each_operators_rule() {
        let mut cast = node("Cast", &["s"], &["c"]);
        onnx::set_attribute(&mut cast, "to", onnx::AttributeValue::Int(1));
        let bytes = model(
            vec![
                node("Relu", &["x"], &["r"]),
                node("Shape", &["r"], &["s"]),
                cast,
                node("Greater", &["r", "c"], &["g"]),
                node("Where", &["g", "r", "c"], &["w"]),
                node("TopK", &["w", "k"], &["values", "indices"]),
                node("Custom", &["x"], &["mystery"]),
            ],
            vec![value_info("x", ElementType::F32, &[None, Some(3)])],
            vec![value_info("w", ElementType::F32, &[None, Some(3)])],
            vec![],
        );
        let proto = onnx::decode_model(&bytes).unwrap();
        let types = element_types(onnx::graph(&proto).unwrap());
        let ty = |n: &str| types.get(n).copied();
        assert_eq!(ty("r"), Some(ElementType::F32));
        assert_eq!(ty("s"), Some(ElementType::I64));
        assert_eq!(ty("c"), Some(ElementType::F32));
        assert_eq!(ty("g"), Some(ElementType::Bool));
        assert_eq!(ty("values"), Some(ElementType::F32));
        assert_eq!(ty("indices"), Some(ElementType::I64));
        assert_eq!(ty("mystery"), None);
    }
}
