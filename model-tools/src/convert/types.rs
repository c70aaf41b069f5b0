//! The element type of every value of a graph: what its declarations say, else what the
//! operator that writes it produces.
//!
//! The converters need to know which values are float32 without running shape inference: graph
//! inputs, initializers and `value_info` declare theirs; a node's outputs follow a per-operator
//! rule (the `to` of a `Cast`, `bool` for comparisons, `int64` for `Shape`, ...), and by default
//! the type of the node's first typed input, which is right for the element-wise, shape and
//! data-movement operators that make up most graphs.

use std::collections::HashMap;

use inference::onnx;
use inference::onnx::proto::tensor_proto::DataType;
use inference::onnx::proto::{GraphProto, NodeProto};

/// `TensorProto.DataType` codes by value name.
pub(crate) type Types = HashMap<String, i32>;

pub(crate) const FLOAT: i32 = DataType::Float as i32;
pub(crate) const FLOAT16: i32 = DataType::Float16 as i32;
const INT64: i32 = DataType::Int64 as i32;
const INT32: i32 = DataType::Int32 as i32;
const UINT8: i32 = DataType::Uint8 as i32;
const BOOL: i32 = DataType::Bool as i32;
const STRING: i32 = DataType::String as i32;

/// The element types of the values `graph` reads and writes, `outer` giving those of the
/// enclosing graphs (for a subgraph's references to outer values). Values of unknown type are
/// absent.
pub(crate) fn infer(graph: &GraphProto, outer: &Types) -> Types {
    let mut types = outer.clone();
    for vi in graph
        .input
        .iter()
        .chain(&graph.value_info)
        .chain(&graph.output)
    {
        if let Some(t) = onnx::declared_tensor(vi).filter(|t| t.elem_type != 0) {
            types.insert(vi.name.clone(), t.elem_type);
        }
    }
    for t in &graph.initializer {
        types.insert(t.name.clone(), t.data_type);
    }
    for s in &graph.sparse_initializer {
        if let Some(v) = &s.values {
            types.insert(v.name.clone(), v.data_type);
        }
    }
    let declared: std::collections::HashSet<String> = graph
        .value_info
        .iter()
        .chain(&graph.output)
        .filter(|vi| onnx::declared_tensor(vi).is_some_and(|t| t.elem_type != 0))
        .map(|vi| vi.name.clone())
        .collect();
    for node in &graph.node {
        for (i, out) in node.output.iter().enumerate() {
            if out.is_empty() || declared.contains(out) {
                continue;
            }
            match output_type(node, i, &types) {
                Some(t) => types.insert(out.clone(), t),
                None => types.remove(out),
            };
        }
    }
    types
}

/// The element type of output `i` of `node`, given the types known so far.
fn output_type(node: &NodeProto, i: usize, types: &Types) -> Option<i32> {
    let input = |k: usize| {
        node.input
            .get(k)
            .filter(|s| !s.is_empty())
            .and_then(|s| types.get(s))
            .copied()
    };
    let first_known = || {
        node.input
            .iter()
            .filter(|s| !s.is_empty())
            .find_map(|s| types.get(s))
            .copied()
    };
    let int_attr = |name: &str| {
        onnx::attr_int(node, name)
            .ok()
            .flatten()
            .and_then(|v| i32::try_from(v).ok())
            .filter(|&v| v != 0)
    };
    if !onnx::is_default_domain(&node.domain) {
        return first_known();
    }
    match (node.op_type.as_str(), i) {
        ("Cast", _) => int_attr("to"),
        ("CastLike", _) => input(1),
        ("Constant", _) => constant_type(node),
        ("ConstantOfShape", _) => Some(
            onnx::attr_tensor(node, "value")
                .ok()
                .flatten()
                .map_or(FLOAT, |t| t.data_type),
        ),
        ("Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" | "NonMaxSuppression", _)
        | ("TopK" | "MaxPool", 1)
        | ("Unique", 1..) => Some(INT64),
        ("Dropout", 1) => Some(BOOL),
        (
            "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" | "And" | "Or" | "Xor"
            | "Not" | "IsNaN" | "IsInf",
            _,
        ) => Some(BOOL),
        ("QuantizeLinear", _) => input(2)
            .or_else(|| int_attr("output_dtype"))
            .or(Some(UINT8)),
        ("DequantizeLinear", _) => input(1),
        ("DynamicQuantizeLinear", 1) => Some(FLOAT),
        ("DynamicQuantizeLinear", _) => Some(UINT8),
        ("MatMulInteger" | "ConvInteger", _) => Some(INT32),
        ("QLinearConv" | "QLinearMatMul", _) => input(7),
        ("RandomNormal" | "RandomUniform", _) => int_attr("dtype").or(Some(FLOAT)),
        ("RandomNormalLike" | "RandomUniformLike" | "EyeLike" | "Bernoulli", _) => {
            int_attr("dtype").or_else(|| input(0))
        }
        ("Multinomial", _) => int_attr("dtype").or(Some(INT32)),
        ("Where", _) => input(1),
        ("OneHot", _) => input(2),
        ("If", _) => subgraph_output(node, "then_branch", i),
        ("Loop", _) => subgraph_output(node, "body", i + 1),
        ("Scan", _) => subgraph_output(node, "body", i),
        _ => first_known(),
    }
}

/// The type a `Constant` node writes, by the attribute holding its value.
fn constant_type(node: &NodeProto) -> Option<i32> {
    node.attribute.iter().find_map(|a| match a.name.as_str() {
        "value" => a.t.as_ref().map(|t| t.data_type),
        "sparse_value" => a
            .sparse_tensor
            .as_ref()
            .and_then(|s| s.values.as_ref())
            .map(|t| t.data_type),
        "value_float" | "value_floats" => Some(FLOAT),
        "value_int" | "value_ints" => Some(INT64),
        "value_string" | "value_strings" => Some(STRING),
        _ => None,
    })
}

/// The declared element type of output `k` of the subgraph attribute `name`.
fn subgraph_output(node: &NodeProto, name: &str, k: usize) -> Option<i32> {
    let graph = onnx::attr_graph(node, name).ok().flatten()?;
    onnx::declared_tensor(graph.output.get(k)?)
        .map(|t| t.elem_type)
        .filter(|&t| t != 0)
}

#[cfg(test)]
mod tests {
    use inference::onnx::{make_attribute, make_node, AttributeValue};

    use super::*;

    fn typed(pairs: &[(&str, i32)]) -> Types {
        pairs.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect()
    }

    #[test]
    fn outputs_follow_their_operator() {
        let mut cast = make_node("Cast", "c", &["x"], &["xi"]);
        cast.attribute
            .push(make_attribute("to", AttributeValue::Int(INT64.into())));
        let graph = GraphProto {
            node: vec![
                make_node("Relu", "r", &["x"], &["y"]),
                make_node("Shape", "s", &["y"], &["shape"]),
                make_node("Less", "l", &["y", "x"], &["mask"]),
                make_node("Where", "w", &["mask", "y", "x"], &["picked"]),
                cast,
                make_node("TopK", "k", &["y", "shape"], &["values", "indices"]),
            ],
            ..Default::default()
        };
        let types = infer(&graph, &typed(&[("x", FLOAT)]));
        let expected = typed(&[
            ("x", FLOAT),
            ("y", FLOAT),
            ("shape", INT64),
            ("mask", BOOL),
            ("picked", FLOAT),
            ("xi", INT64),
            ("values", FLOAT),
            ("indices", INT64),
        ]);
        assert_eq!(types, expected);
    }

    #[test]
    fn constants_are_typed_by_their_attribute() {
        let mut floats = make_node("Constant", "a", &[], &["a"]);
        floats.attribute.push(make_attribute(
            "value_floats",
            AttributeValue::Floats(vec![1.0]),
        ));
        let mut ints = make_node("Constant", "b", &[], &["b"]);
        ints.attribute
            .push(make_attribute("value_int", AttributeValue::Int(3)));
        let fill = make_node("ConstantOfShape", "c", &["b"], &["c"]);
        let graph = GraphProto {
            node: vec![floats, ints, fill],
            ..Default::default()
        };
        let types = infer(&graph, &Types::new());
        assert_eq!(types, typed(&[("a", FLOAT), ("b", INT64), ("c", FLOAT)]));
    }
}
