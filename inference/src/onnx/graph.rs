//! Inside a graph: initializers, nodes, and the declared types of values.

use std::collections::HashMap;

use super::model::is_default_domain;
use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{
    type_proto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::metadata::Dim;
use crate::tensor::ElementType;

/// The initializer of `graph` named `name`.
pub fn initializer<'a>(graph: &'a GraphProto, name: &str) -> Option<&'a TensorProto> {
    graph.initializer.iter().find(|t| t.name == name)
}

/// The initializer of `graph` named `name`, to edit.
pub fn initializer_mut<'a>(graph: &'a mut GraphProto, name: &str) -> Option<&'a mut TensorProto> {
    graph.initializer.iter_mut().find(|t| t.name == name)
}

/// Adds an initializer, replacing one of the same name.
pub fn set_initializer(graph: &mut GraphProto, tensor: TensorProto) {
    match initializer_mut(graph, &tensor.name) {
        Some(old) => *old = tensor,
        None => graph.initializer.push(tensor),
    }
}

/// A node of `op_type` in the default domain, named `name`, reading `inputs` (`""` for an
/// omitted optional input) and writing `outputs`; attributes are added with
/// [`super::set_attribute`].
pub fn make_node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op_type.to_owned(),
        name: name.to_owned(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

/// The operator with its domain when not the default one: `Conv`, `com.microsoft.QGemm`.
pub fn qualified_op(node: &NodeProto) -> String {
    if is_default_domain(&node.domain) {
        node.op_type.clone()
    } else {
        format!("{}.{}", node.domain, node.op_type)
    }
}

/// Names a node for a message: ``node `conv1` (Conv)``, or by its first output when unnamed.
pub fn node_label(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        format!("node `{}` ({})", node.name, node.op_type)
    } else if let Some(out) = node.output.iter().find(|o| !o.is_empty()) {
        format!("the {} node writing `{out}`", node.op_type)
    } else {
        format!("an unnamed {} node", node.op_type)
    }
}

/// For each value a node writes, the index of that node in `graph.node`.
pub fn producers(graph: &GraphProto) -> HashMap<&str, usize> {
    graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n.output
                .iter()
                .filter(|o| !o.is_empty())
                .map(move |o| (o.as_str(), i))
        })
        .collect()
}

/// For each value nodes read, the indices of those nodes in `graph.node`, in graph order.
pub fn consumers(graph: &GraphProto) -> HashMap<&str, Vec<usize>> {
    let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            let readers = map.entry(input.as_str()).or_default();
            if readers.last() != Some(&i) {
                readers.push(i);
            }
        }
    }
    map
}

/// The declared type of a value: a tensor's element type code and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredTensor {
    /// The `TensorProto.DataType` code (see [`DeclaredTensor::element_type`]).
    pub elem_type: i32,
    /// The declared shape; `None` when no rank is declared.
    pub shape: Option<Vec<Dim>>,
}

impl DeclaredTensor {
    /// The element type, if the platform serves it.
    pub fn element_type(&self) -> Option<ElementType> {
        ElementType::from_onnx_code(self.elem_type)
    }
}

/// The tensor type a value info declares; `None` for a value without a type or of a
/// non-tensor type (sequence, map, optional).
pub fn declared_tensor(vi: &ValueInfoProto) -> Option<DeclaredTensor> {
    let type_proto::Value::TensorType(t) = vi.r#type.as_ref()?.value.as_ref()?;
    let shape = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(dimension::Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as usize),
                Some(dimension::Value::DimParam(p)) => Dim::from_param(p),
                _ => Dim::Unknown,
            })
            .collect()
    });
    Some(DeclaredTensor {
        elem_type: t.elem_type,
        shape,
    })
}

/// A value info declaring a tensor of `ty`; `shape` `None` declares no rank.
pub fn make_value_info(name: &str, ty: ElementType, shape: Option<&[Dim]>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: ty.onnx_code(),
                shape: shape.map(|dims| TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            denotation: String::new(),
                            value: match d {
                                Dim::Fixed(n) => Some(dimension::Value::DimValue(*n as i64)),
                                Dim::Symbolic(s) => Some(dimension::Value::DimParam(s.clone())),
                                Dim::Unknown => None,
                            },
                        })
                        .collect(),
                }),
            })),
        }),
        doc_string: String::new(),
    }
}
