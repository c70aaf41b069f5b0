//! The ONNX protobuf message types (`ModelProto`, `GraphProto`, `NodeProto`, `TensorProto`,
//! `AttributeProto`, ...), generated from `onnx.proto` by prost and shared with tract, so that a
//! model decoded here is the very value the tract backend plans from.
//!
//! Fields follow `onnx.proto` one to one; enumerations are stored as `i32` and named by the
//! nested enums ([`tensor_proto::DataType`], [`tensor_proto::DataLocation`],
//! [`attribute_proto::AttributeType`]). Use the functions of [`crate::onnx`] to decode,
//! encode and read them rather than these fields where one exists.
//!
//! The schema is the one tract ships: fields it does not know (newer additions, or sequence,
//! map and optional types in `TypeProto`) are dropped on decoding, and so are missing from a
//! model written back.
//!
//! A build without the `tract` feature compiles the same generated code from a copy
//! (`proto_generated.rs`), so the types are identical in every build.

#[cfg(feature = "tract")]
pub use tract_onnx::pb::*;

#[cfg(not(feature = "tract"))]
#[allow(
    clippy::all,
    missing_docs,
    reason = "prost's generated code, kept verbatim"
)]
mod generated {
    include!("proto_generated.rs");
}
#[cfg(not(feature = "tract"))]
pub use generated::*;
