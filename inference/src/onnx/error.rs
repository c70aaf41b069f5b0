//! The error type of the ONNX format layer.

use crate::tensor::ElementType;

/// What is wrong with ONNX protobuf bytes or with a message decoded from them.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not a protobuf message of the expected kind.
    #[error("not a valid {message}: protobuf decoding failed ({source})")]
    Decode {
        /// The message expected, e.g. `ModelProto`.
        message: &'static str,
        /// prost's error.
        #[source]
        source: prost::DecodeError,
    },
    /// A `ModelProto` without a graph.
    #[error("the model has no graph")]
    NoGraph,
    /// A tensor of an element type the platform does not serve (bfloat16, complex, float8, ...).
    #[error("tensor `{tensor}` has element type {type_name}, which is not supported")]
    UnsupportedElementType {
        /// The tensor's name.
        tensor: String,
        /// The ONNX name of its type.
        type_name: String,
    },
    /// A tensor that keeps its data in an external file; resolve it first (the model loader
    /// does, from a directory the caller names).
    #[error("tensor `{tensor}` keeps its data in an external file")]
    ExternalData {
        /// The tensor's name.
        tensor: String,
    },
    /// A negative dimension.
    #[error("tensor `{tensor}` has negative dimension {dim}")]
    NegativeDim {
        /// The tensor's name.
        tensor: String,
        /// The dimension.
        dim: i64,
    },
    /// Dimensions whose product overflows `usize`.
    #[error("tensor `{tensor}` has too many elements")]
    TooManyElements {
        /// The tensor's name.
        tensor: String,
    },
    /// `raw_data` of the wrong length for the shape and type.
    #[error("{}shape {shape:?} of {element_type} needs {} bytes, but {given} were given", prefix(tensor), needed_bytes(shape, *element_type))]
    RawDataLength {
        /// The tensor's name (possibly empty).
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Its element type.
        element_type: ElementType,
        /// The length of `raw_data`.
        given: usize,
    },
    /// A typed data field (`float_data`, `int32_data`, ...) of the wrong length for the shape.
    #[error(
        "{}shape {shape:?} holds {expected} elements, but `{field}` has {given}",
        prefix(tensor)
    )]
    TypedDataLength {
        /// The tensor's name (possibly empty).
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The field read.
        field: &'static str,
        /// Elements the shape holds.
        expected: usize,
        /// Elements the field holds.
        given: usize,
    },
    /// A value of a typed data field that does not fit the element type (e.g. 300 in the
    /// `int32_data` of a uint8 tensor).
    #[error(
        "{}value {value} in `{field}` does not fit {element_type}",
        prefix(tensor)
    )]
    ValueOutOfRange {
        /// The tensor's name (possibly empty).
        tensor: String,
        /// The field read.
        field: &'static str,
        /// The value.
        value: i128,
        /// The element type.
        element_type: ElementType,
    },
    /// A string tensor given as `raw_data`, which has no encoding for strings.
    #[error("string tensor `{tensor}` cannot use raw data")]
    StringRawData {
        /// The tensor's name.
        tensor: String,
    },
    /// A string that is not UTF-8, in a tensor or an attribute.
    #[error("{what} holds a string that is not UTF-8")]
    NotUtf8 {
        /// Which tensor or attribute, e.g. ``tensor `names` ``.
        what: String,
    },
    /// An attribute of another type than the one asked for.
    #[error("{node}: attribute `{attribute}` is of type {found}, expected {expected}")]
    AttributeType {
        /// The node, as [`super::node_label`] names it.
        node: String,
        /// The attribute's name.
        attribute: String,
        /// The type asked for.
        expected: &'static str,
        /// The type the attribute declares.
        found: String,
    },
    /// An attribute type this layer does not read (sparse tensors, type protos).
    #[error("attribute `{attribute}` is of type {type_name}, which is not supported")]
    UnsupportedAttribute {
        /// The attribute's name.
        attribute: String,
        /// Its declared type.
        type_name: String,
    },
}

fn prefix(tensor: &str) -> String {
    if tensor.is_empty() {
        String::new()
    } else {
        format!("`{tensor}`: ")
    }
}

fn needed_bytes(shape: &[usize], ty: ElementType) -> String {
    shape
        .iter()
        .try_fold(ty.byte_size().unwrap_or(0), |a, &d| a.checked_mul(d))
        .map_or_else(|| "more than usize::MAX".to_owned(), |n| n.to_string())
}
