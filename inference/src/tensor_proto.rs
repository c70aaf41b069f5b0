//! Reading ONNX `TensorProto` messages (the `.pb` files of the ONNX test suites) into tensors.

use half::f16;
use prost::Message;
use tract_onnx::pb;

use crate::error::Error;
use crate::tensor::{onnx_type_name, ElementType, Tensor};

/// A tensor read from a `TensorProto`, with the name it carries (possibly empty).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The `name` field of the message.
    pub name: String,
    /// The data.
    pub tensor: Tensor,
}

/// Decodes a serialized ONNX `TensorProto`.
///
/// Supports raw little-endian data and the typed repeated fields; external data is refused.
pub fn decode_tensor_proto(bytes: &[u8]) -> Result<NamedTensor, Error> {
    let proto = pb::TensorProto::decode(bytes)
        .map_err(|e| Error::InvalidTensor(format!("not a TensorProto: {e}")))?;
    let tensor = tensor_from_proto(&proto)?;
    Ok(NamedTensor {
        name: proto.name,
        tensor,
    })
}

fn tensor_from_proto(p: &pb::TensorProto) -> Result<Tensor, Error> {
    let ty = ElementType::from_onnx_code(p.data_type).ok_or_else(|| {
        Error::InvalidTensor(format!(
            "tensor `{}` has element type {}, which is not supported",
            p.name,
            onnx_type_name(p.data_type)
        ))
    })?;
    if p.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(Error::InvalidTensor(format!(
            "tensor `{}` keeps its data in an external file",
            p.name
        )));
    }
    let shape = p
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                Error::InvalidTensor(format!("tensor `{}` has negative dimension {d}", p.name))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::InvalidTensor(format!("tensor `{}` has too many elements", p.name))
        })?;

    if !p.raw_data.is_empty() || (count == 0 && ty != ElementType::String) {
        return from_raw(ty, &shape, &p.raw_data, &p.name);
    }
    macro_rules! typed {
        ($field:expr, $conv:expr) => {{
            let data: Vec<_> = $field.iter().map($conv).collect();
            Tensor::from_shape_vec(&shape, data)
        }};
    }
    match ty {
        ElementType::F32 => typed!(p.float_data, |&x| x),
        ElementType::F64 => typed!(p.double_data, |&x| x),
        ElementType::I64 => typed!(p.int64_data, |&x| x),
        ElementType::U64 => typed!(p.uint64_data, |&x| x),
        ElementType::U32 => typed!(p.uint64_data, |&x| x as u32),
        ElementType::I32 => typed!(p.int32_data, |&x| x),
        ElementType::I16 => typed!(p.int32_data, |&x| x as i16),
        ElementType::I8 => typed!(p.int32_data, |&x| x as i8),
        ElementType::U16 => typed!(p.int32_data, |&x| x as u16),
        ElementType::U8 => typed!(p.int32_data, |&x| x as u8),
        ElementType::Bool => typed!(p.int32_data, |&x| x != 0),
        ElementType::F16 => typed!(p.int32_data, |&x| f16::from_bits(x as u16)),
        ElementType::String => {
            let data = p
                .string_data
                .iter()
                .map(|s| String::from_utf8(s.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    Error::InvalidTensor(format!(
                        "tensor `{}` holds a string that is not UTF-8",
                        p.name
                    ))
                })?;
            Tensor::from_shape_vec(&shape, data)
        }
    }
}

fn from_raw(ty: ElementType, shape: &[usize], raw: &[u8], name: &str) -> Result<Tensor, Error> {
    if ty == ElementType::String {
        return Err(Error::InvalidTensor(format!(
            "string tensor `{name}` cannot use raw data"
        )));
    }
    Tensor::from_le_bytes(ty, shape, raw).map_err(|e| {
        Error::InvalidTensor(if name.is_empty() {
            e.to_string()
        } else {
            format!("`{name}`: {e}")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(p: &pb::TensorProto) -> Vec<u8> {
        p.encode_to_vec()
    }

    #[test]
    fn raw_and_typed_data_decode_alike() {
        let raw = pb::TensorProto {
            dims: vec![2, 2],
            data_type: 1,
            raw_data: [1.0f32, 2.0, 3.0, 4.0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            name: "x".into(),
            ..Default::default()
        };
        let typed = pb::TensorProto {
            dims: vec![2, 2],
            data_type: 1,
            float_data: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        };
        let a = decode_tensor_proto(&encode(&raw)).unwrap();
        let b = decode_tensor_proto(&encode(&typed)).unwrap();
        assert_eq!(a.name, "x");
        assert_eq!(a.tensor, b.tensor);
    }

    #[test]
    fn wrong_lengths_and_types_are_errors() {
        let short = pb::TensorProto {
            dims: vec![3],
            data_type: 7,
            raw_data: vec![0; 16],
            ..Default::default()
        };
        let err = decode_tensor_proto(&encode(&short))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid tensor: shape [3] of int64 needs 24 bytes, but 16 were given"
        );
        let bf16 = pb::TensorProto {
            dims: vec![1],
            data_type: 16,
            raw_data: vec![0; 2],
            ..Default::default()
        };
        assert!(decode_tensor_proto(&encode(&bf16))
            .unwrap_err()
            .to_string()
            .contains("bfloat16"));
        let negative = pb::TensorProto {
            dims: vec![-1],
            data_type: 1,
            ..Default::default()
        };
        assert!(decode_tensor_proto(&encode(&negative)).is_err());
        assert!(decode_tensor_proto(&[0xff, 0xff]).is_err());
    }
}
