//! Node attributes: typed accessors that check the declared type, and constructors.

use super::error::FormatError;
use super::graph::node_label;
use super::proto::attribute_proto::AttributeType;
use super::proto::{AttributeProto, GraphProto, NodeProto, TensorProto};

/// The value of an attribute, for the attribute types this layer reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// `FLOAT`.
    Float(f32),
    /// `INT`.
    Int(i64),
    /// `STRING` (ONNX strings are bytes, in practice UTF-8).
    String(Vec<u8>),
    /// `TENSOR`.
    Tensor(TensorProto),
    /// `GRAPH` (a subgraph, e.g. a branch of `If`).
    Graph(GraphProto),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `STRINGS`.
    Strings(Vec<Vec<u8>>),
    /// `TENSORS`.
    Tensors(Vec<TensorProto>),
    /// `GRAPHS`.
    Graphs(Vec<GraphProto>),
}

impl AttributeValue {
    /// The attribute type that stores this value.
    pub fn attribute_type(&self) -> AttributeType {
        match self {
            Self::Float(_) => AttributeType::Float,
            Self::Int(_) => AttributeType::Int,
            Self::String(_) => AttributeType::String,
            Self::Tensor(_) => AttributeType::Tensor,
            Self::Graph(_) => AttributeType::Graph,
            Self::Floats(_) => AttributeType::Floats,
            Self::Ints(_) => AttributeType::Ints,
            Self::Strings(_) => AttributeType::Strings,
            Self::Tensors(_) => AttributeType::Tensors,
            Self::Graphs(_) => AttributeType::Graphs,
        }
    }
}

/// An attribute named `name` holding `value`, with its type set.
pub fn make_attribute(name: &str, value: AttributeValue) -> AttributeProto {
    let mut a = AttributeProto {
        name: name.to_owned(),
        r#type: value.attribute_type() as i32,
        ..Default::default()
    };
    match value {
        AttributeValue::Float(f) => a.f = f,
        AttributeValue::Int(i) => a.i = i,
        AttributeValue::String(s) => a.s = s,
        AttributeValue::Tensor(t) => a.t = Some(t),
        AttributeValue::Graph(g) => a.g = Some(g),
        AttributeValue::Floats(v) => a.floats = v,
        AttributeValue::Ints(v) => a.ints = v,
        AttributeValue::Strings(v) => a.strings = v,
        AttributeValue::Tensors(v) => a.tensors = v,
        AttributeValue::Graphs(v) => a.graphs = v,
    }
    a
}

/// The value of an attribute, by its declared type. An attribute that declares no type
/// (`UNDEFINED`, from pre-2017 exporters) is refused here; the typed accessors below accept it.
pub fn attribute_value(a: &AttributeProto) -> Result<AttributeValue, FormatError> {
    let ty = AttributeType::try_from(a.r#type).unwrap_or(AttributeType::Undefined);
    Ok(match ty {
        AttributeType::Float => AttributeValue::Float(a.f),
        AttributeType::Int => AttributeValue::Int(a.i),
        AttributeType::String => AttributeValue::String(a.s.clone()),
        AttributeType::Tensor => AttributeValue::Tensor(a.t.clone().unwrap_or_default()),
        AttributeType::Graph => AttributeValue::Graph(a.g.clone().unwrap_or_default()),
        AttributeType::Floats => AttributeValue::Floats(a.floats.clone()),
        AttributeType::Ints => AttributeValue::Ints(a.ints.clone()),
        AttributeType::Strings => AttributeValue::Strings(a.strings.clone()),
        AttributeType::Tensors => AttributeValue::Tensors(a.tensors.clone()),
        AttributeType::Graphs => AttributeValue::Graphs(a.graphs.clone()),
        _ => {
            return Err(FormatError::UnsupportedAttribute {
                attribute: a.name.clone(),
                type_name: type_name(a.r#type),
            })
        }
    })
}

/// The attribute of `node` named `name`, if any.
pub fn find_attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Sets attribute `name` of `node` to `value`, replacing one of that name.
pub fn set_attribute(node: &mut NodeProto, name: &str, value: AttributeValue) {
    let a = make_attribute(name, value);
    match node.attribute.iter_mut().find(|a| a.name == name) {
        Some(old) => *old = a,
        None => node.attribute.push(a),
    }
}

fn type_name(code: i32) -> String {
    AttributeType::try_from(code).map_or_else(
        |_| format!("unknown ({code})"),
        |t| t.as_str_name().to_owned(),
    )
}

/// The attribute `name` of `node` if present, after checking it declares `expected` (or no
/// type at all).
fn typed<'a>(
    node: &'a NodeProto,
    name: &str,
    expected: AttributeType,
) -> Result<Option<&'a AttributeProto>, FormatError> {
    let Some(a) = find_attribute(node, name) else {
        return Ok(None);
    };
    if a.r#type != expected as i32 && a.r#type != AttributeType::Undefined as i32 {
        return Err(FormatError::AttributeType {
            node: node_label(node),
            attribute: name.to_owned(),
            expected: expected.as_str_name(),
            found: type_name(a.r#type),
        });
    }
    Ok(Some(a))
}

/// An `INT` attribute; `None` when absent, an error when of another type.
pub fn attr_int(node: &NodeProto, name: &str) -> Result<Option<i64>, FormatError> {
    Ok(typed(node, name, AttributeType::Int)?.map(|a| a.i))
}

/// An `INTS` attribute; `None` when absent, an error when of another type.
pub fn attr_ints<'a>(node: &'a NodeProto, name: &str) -> Result<Option<&'a [i64]>, FormatError> {
    Ok(typed(node, name, AttributeType::Ints)?.map(|a| a.ints.as_slice()))
}

/// A `FLOAT` attribute; `None` when absent, an error when of another type.
pub fn attr_float(node: &NodeProto, name: &str) -> Result<Option<f32>, FormatError> {
    Ok(typed(node, name, AttributeType::Float)?.map(|a| a.f))
}

/// A `FLOATS` attribute; `None` when absent, an error when of another type.
pub fn attr_floats<'a>(node: &'a NodeProto, name: &str) -> Result<Option<&'a [f32]>, FormatError> {
    Ok(typed(node, name, AttributeType::Floats)?.map(|a| a.floats.as_slice()))
}

/// A `STRING` attribute as text; `None` when absent, an error when of another type or not
/// UTF-8.
pub fn attr_string<'a>(node: &'a NodeProto, name: &str) -> Result<Option<&'a str>, FormatError> {
    typed(node, name, AttributeType::String)?
        .map(|a| {
            std::str::from_utf8(&a.s).map_err(|_| FormatError::NotUtf8 {
                what: format!("{}: attribute `{name}`", node_label(node)),
            })
        })
        .transpose()
}

/// A `TENSOR` attribute; `None` when absent (or empty), an error when of another type.
pub fn attr_tensor<'a>(
    node: &'a NodeProto,
    name: &str,
) -> Result<Option<&'a TensorProto>, FormatError> {
    Ok(typed(node, name, AttributeType::Tensor)?.and_then(|a| a.t.as_ref()))
}

/// A `GRAPH` attribute; `None` when absent (or empty), an error when of another type.
pub fn attr_graph<'a>(
    node: &'a NodeProto,
    name: &str,
) -> Result<Option<&'a GraphProto>, FormatError> {
    Ok(typed(node, name, AttributeType::Graph)?.and_then(|a| a.g.as_ref()))
}
