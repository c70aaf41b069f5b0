//! The ONNX format layer: the one place in the workspace that reads and writes ONNX protobuf.
//!
//! The model loader, the federated trainer, the model tools and the tests all go through it,
//! so a model is parsed one way everywhere.
//!
//! - [`proto`]: the message types (`ModelProto`, `GraphProto`, `NodeProto`, `TensorProto`, ...);
//! - models: [`decode_model`] / [`encode_model`], [`graph`], [`opset_version`],
//!   [`set_opset_version`], [`new_model`];
//! - tensors: [`tensor_from_proto`] / [`tensor_to_proto`] for every [`crate::ElementType`],
//!   from and to `raw_data` (little-endian) or the typed fields ([`DataLayout`]);
//!   [`set_tensor_data`] rewrites an initializer in place; [`decode_tensor_proto`] reads a
//!   serialized `TensorProto` file;
//! - attributes: [`attr_int`], [`attr_ints`], [`attr_float`], [`attr_floats`],
//!   [`attr_string`], [`attr_tensor`], [`attr_graph`] check the declared type;
//!   [`AttributeValue`], [`make_attribute`], [`set_attribute`] write them;
//! - graphs: [`initializer`], [`set_initializer`], [`make_node`], [`producers`],
//!   [`consumers`], [`declared_tensor`], [`make_value_info`].
//!
//! Errors are [`FormatError`]s; malformed bytes are an error, never a panic.
//!
//! ```
//! use inference::onnx::{self, DataLayout};
//! use inference::{ElementType, Tensor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/digits_mlp.onnx"))?;
//! let mut model = onnx::decode_model(&bytes)?;
//! let graph = onnx::graph_mut(&mut model)?;
//! let name = graph.initializer[0].name.clone();
//! let weights = onnx::tensor_from_proto(&graph.initializer[0])?;
//! assert_eq!(weights.element_type(), ElementType::F32);
//! let zeros = Tensor::from_shape_vec(weights.shape(), vec![0.0f32; weights.len()])?;
//! onnx::set_initializer(graph, onnx::tensor_to_proto(&name, &zeros, DataLayout::Raw));
//! let written = onnx::encode_model(&model);
//! assert_eq!(onnx::decode_model(&written)?, model);
//! # Ok(())
//! # }
//! ```

mod attribute;
mod error;
mod graph;
mod model;
pub mod proto;
mod tensor;

#[cfg(test)]
mod tests;

pub use attribute::{
    attr_float, attr_floats, attr_graph, attr_int, attr_ints, attr_string, attr_tensor,
    attribute_value, find_attribute, make_attribute, set_attribute, AttributeValue,
};
pub use error::FormatError;
pub use graph::{
    consumers, declared_tensor, initializer, initializer_mut, make_node, make_value_info,
    node_label, producers, qualified_op, set_initializer, DeclaredTensor,
};
pub use model::{
    decode_model, encode_model, graph, graph_mut, is_default_domain, new_model, opset_version,
    set_opset_version, DEFAULT_IR_VERSION,
};
pub use tensor::{
    decode_tensor, decode_tensor_proto, element_type, encode_tensor, is_external, set_tensor_data,
    tensor_from_proto, tensor_shape, tensor_to_proto, DataLayout, NamedTensor,
};
