//! Tensors to and from `TensorProto`: every element type the platform serves, from `raw_data`
//! (row-major little-endian) or from the typed field `onnx.proto` assigns to the type.

use half::f16;
use prost::Message;

use super::error::FormatError;
use super::proto::{tensor_proto::DataLocation, TensorProto};
use crate::error::Error;
use crate::tensor::{onnx_type_name, Element, ElementType, Tensor};

/// Where [`tensor_to_proto`] puts the elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLayout {
    /// `raw_data`, row-major little-endian (one byte per bool): compact, what exporters write.
    /// Strings have no raw encoding and always go to `string_data`.
    Raw,
    /// The typed repeated field of the element type: `float_data`, `double_data`,
    /// `int64_data`, `uint64_data` (uint32, uint64), `string_data`, or `int32_data` (the
    /// smaller integers, bool, and float16 as its bits).
    Typed,
}

/// The element type a `TensorProto` declares, if the platform serves it.
pub fn element_type(t: &TensorProto) -> Option<ElementType> {
    ElementType::from_onnx_code(t.data_type)
}

/// Whether the tensor says its data lives in an external file (`data_location = EXTERNAL`, or
/// `external_data` entries).
pub fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty()
}

/// The tensor's dimensions, checked to be non-negative.
pub fn tensor_shape(t: &TensorProto) -> Result<Vec<usize>, FormatError> {
    t.dims
        .iter()
        .map(|&dim| {
            usize::try_from(dim).map_err(|_| FormatError::NegativeDim {
                tensor: t.name.clone(),
                dim,
            })
        })
        .collect()
}

/// Reads the tensor's data: `raw_data` when present, else the typed field of its element type.
///
/// Refused: element types the platform does not serve, external data, negative dimensions,
/// data that does not fill the shape, typed values that do not fit the element type, strings
/// in `raw_data` or not UTF-8.
pub fn tensor_from_proto(t: &TensorProto) -> Result<Tensor, FormatError> {
    let ty = element_type(t).ok_or_else(|| FormatError::UnsupportedElementType {
        tensor: t.name.clone(),
        type_name: onnx_type_name(t.data_type),
    })?;
    if is_external(t) {
        return Err(FormatError::ExternalData {
            tensor: t.name.clone(),
        });
    }
    let shape = tensor_shape(t)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| FormatError::TooManyElements {
            tensor: t.name.clone(),
        })?;
    if !t.raw_data.is_empty() || (count == 0 && ty != ElementType::String) {
        return from_raw(t, ty, shape);
    }
    let typed = Typed {
        t,
        shape: &shape,
        count,
        ty,
    };
    match ty {
        ElementType::F32 => typed.read("float_data", &t.float_data, Ok::<f32, i128>),
        ElementType::F64 => typed.read("double_data", &t.double_data, Ok::<f64, i128>),
        ElementType::I64 => typed.read("int64_data", &t.int64_data, Ok::<i64, i128>),
        ElementType::U64 => typed.read("uint64_data", &t.uint64_data, Ok::<u64, i128>),
        ElementType::U32 => typed.read("uint64_data", &t.uint64_data, narrow::<u64, u32>),
        ElementType::I32 => typed.read("int32_data", &t.int32_data, Ok::<i32, i128>),
        ElementType::I16 => typed.read("int32_data", &t.int32_data, narrow::<i32, i16>),
        ElementType::I8 => typed.read("int32_data", &t.int32_data, narrow::<i32, i8>),
        ElementType::U16 => typed.read("int32_data", &t.int32_data, narrow::<i32, u16>),
        ElementType::U8 => typed.read("int32_data", &t.int32_data, narrow::<i32, u8>),
        ElementType::Bool => typed.read("int32_data", &t.int32_data, |x: i32| Ok(x != 0)),
        ElementType::F16 => typed.read("int32_data", &t.int32_data, |x: i32| {
            narrow::<i32, u16>(x).map(f16::from_bits)
        }),
        ElementType::String => {
            let data = t
                .string_data
                .iter()
                .map(|s| String::from_utf8(s.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| FormatError::NotUtf8 {
                    what: format!("tensor `{}`", t.name),
                })?;
            typed.read("string_data", &data, Ok::<String, i128>)
        }
    }
}

/// A value of a wide typed field narrowed to the element type, or the value that does not fit.
fn narrow<S, T>(x: S) -> Result<T, i128>
where
    S: Copy + Into<i128>,
    T: TryFrom<S>,
{
    T::try_from(x).map_err(|_| x.into())
}

/// The context of reading one typed field.
struct Typed<'a> {
    t: &'a TensorProto,
    shape: &'a [usize],
    count: usize,
    ty: ElementType,
}

impl Typed<'_> {
    fn read<S: Clone, T: Element>(
        &self,
        field: &'static str,
        data: &[S],
        convert: impl Fn(S) -> Result<T, i128>,
    ) -> Result<Tensor, FormatError> {
        let length = || FormatError::TypedDataLength {
            tensor: self.t.name.clone(),
            shape: self.shape.to_vec(),
            field,
            expected: self.count,
            given: data.len(),
        };
        if data.len() != self.count {
            return Err(length());
        }
        let values = data
            .iter()
            .map(|x| {
                convert(x.clone()).map_err(|value| FormatError::ValueOutOfRange {
                    tensor: self.t.name.clone(),
                    field,
                    value,
                    element_type: self.ty,
                })
            })
            .collect::<Result<Vec<T>, _>>()?;
        Tensor::from_shape_vec(self.shape, values).map_err(|_| length())
    }
}

fn from_raw(t: &TensorProto, ty: ElementType, shape: Vec<usize>) -> Result<Tensor, FormatError> {
    if ty == ElementType::String {
        return Err(FormatError::StringRawData {
            tensor: t.name.clone(),
        });
    }
    let length = |shape: Vec<usize>| FormatError::RawDataLength {
        tensor: t.name.clone(),
        shape,
        element_type: ty,
        given: t.raw_data.len(),
    };
    let needed = shape
        .iter()
        .try_fold(ty.byte_size().unwrap_or(0), |a, &d| a.checked_mul(d));
    if needed != Some(t.raw_data.len()) {
        return Err(length(shape));
    }
    Tensor::from_le_bytes(ty, &shape, &t.raw_data).map_err(|_| length(shape.clone()))
}

/// A `TensorProto` named `name` holding `tensor`, its data laid out as `layout` says.
pub fn tensor_to_proto(name: &str, tensor: &Tensor, layout: DataLayout) -> TensorProto {
    let mut t = TensorProto {
        name: name.to_owned(),
        ..Default::default()
    };
    set_tensor_data(&mut t, tensor, layout);
    t
}

/// Replaces the type, dimensions and data of `t` with `tensor`'s, keeping its name and doc
/// string; any previous data (raw, typed or external) is cleared.
pub fn set_tensor_data(t: &mut TensorProto, tensor: &Tensor, layout: DataLayout) {
    t.data_type = tensor.element_type().onnx_code();
    t.dims = tensor.shape().iter().map(|&d| d as i64).collect();
    t.segment = None;
    t.data_location = None;
    t.external_data.clear();
    t.raw_data.clear();
    t.float_data.clear();
    t.double_data.clear();
    t.int32_data.clear();
    t.int64_data.clear();
    t.uint64_data.clear();
    t.string_data.clear();
    if layout == DataLayout::Raw {
        if let Some(bytes) = tensor.to_le_bytes() {
            t.raw_data = bytes;
            return;
        }
    }
    match tensor {
        Tensor::F32(a) => t.float_data = a.iter().copied().collect(),
        Tensor::F64(a) => t.double_data = a.iter().copied().collect(),
        Tensor::I64(a) => t.int64_data = a.iter().copied().collect(),
        Tensor::U64(a) => t.uint64_data = a.iter().copied().collect(),
        Tensor::U32(a) => t.uint64_data = a.iter().map(|&x| u64::from(x)).collect(),
        Tensor::I32(a) => t.int32_data = a.iter().copied().collect(),
        Tensor::I16(a) => t.int32_data = a.iter().map(|&x| i32::from(x)).collect(),
        Tensor::I8(a) => t.int32_data = a.iter().map(|&x| i32::from(x)).collect(),
        Tensor::U16(a) => t.int32_data = a.iter().map(|&x| i32::from(x)).collect(),
        Tensor::U8(a) => t.int32_data = a.iter().map(|&x| i32::from(x)).collect(),
        Tensor::Bool(a) => t.int32_data = a.iter().map(|&x| i32::from(x)).collect(),
        Tensor::F16(a) => t.int32_data = a.iter().map(|x| i32::from(x.to_bits())).collect(),
        Tensor::String(a) => t.string_data = a.iter().map(|s| s.as_bytes().to_vec()).collect(),
    }
}

/// Decodes a serialized `TensorProto` message (the `.pb` files of the ONNX test suites).
pub fn decode_tensor(bytes: &[u8]) -> Result<TensorProto, FormatError> {
    TensorProto::decode(bytes).map_err(|source| FormatError::Decode {
        message: "TensorProto",
        source,
    })
}

/// Serializes a `TensorProto` message.
pub fn encode_tensor(t: &TensorProto) -> Vec<u8> {
    t.encode_to_vec()
}

/// A tensor read from a `TensorProto`, with the name it carries (possibly empty).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The `name` field of the message.
    pub name: String,
    /// The data.
    pub tensor: Tensor,
}

/// Decodes a serialized ONNX `TensorProto` into a tensor: [`decode_tensor`] then
/// [`tensor_from_proto`], failing as [`Error::InvalidTensor`].
pub fn decode_tensor_proto(bytes: &[u8]) -> Result<NamedTensor, Error> {
    let invalid = |e: FormatError| Error::InvalidTensor(e.to_string());
    let proto = decode_tensor(bytes).map_err(invalid)?;
    let tensor = tensor_from_proto(&proto).map_err(invalid)?;
    Ok(NamedTensor {
        name: proto.name,
        tensor,
    })
}
