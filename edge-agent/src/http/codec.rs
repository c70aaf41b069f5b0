//! Open Inference Protocol v2 tensors: JSON `data` arrays and Triton's binary tensor extension,
//! to and from [`inference::Tensor`].

use inference::half::f16;
use inference::{ElementType, Tensor};
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::flat::FlatData;

/// The OIP datatype name of an element type.
pub fn datatype(ty: ElementType) -> &'static str {
    match ty {
        ElementType::Bool => "BOOL",
        ElementType::U8 => "UINT8",
        ElementType::U16 => "UINT16",
        ElementType::U32 => "UINT32",
        ElementType::U64 => "UINT64",
        ElementType::I8 => "INT8",
        ElementType::I16 => "INT16",
        ElementType::I32 => "INT32",
        ElementType::I64 => "INT64",
        ElementType::F16 => "FP16",
        ElementType::F32 => "FP32",
        ElementType::F64 => "FP64",
        ElementType::String => "BYTES",
    }
}

/// The element type of an OIP datatype name.
pub fn element_type(datatype: &str) -> Option<ElementType> {
    ElementType::ALL
        .into_iter()
        .find(|t| self::datatype(*t) == datatype)
}

/// An input tensor of an infer request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    /// Input name.
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// OIP datatype.
    pub datatype: String,
    /// `binary_data_size` and others.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Row-major data (nested arrays are flattened while parsing); absent for binary inputs.
    pub data: Option<FlatData>,
}

/// An output an infer request asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOutput {
    /// Output name.
    pub name: String,
    /// `binary_data` and others.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// An infer request header. Tensors are strict (an unknown field in an input or a requested
/// output is refused), the top level is lenient: KServe's Python client sends `model_name`, and
/// other clients add their own fields, so unknown top-level fields are collected in
/// [`InferRequestBody::unknown_fields`] and skipped without being held.
#[derive(Debug, Default)]
pub struct InferRequestBody {
    /// Echoed in the response.
    pub id: Option<String>,
    /// The model the client means; checked against the path (`null` is absent).
    pub model_name: Option<String>,
    /// The version the client means; checked against the path (`null` and `""` are absent).
    pub model_version: Option<String>,
    /// Request parameters, e.g. `binary_data_output`.
    pub parameters: Map<String, Value>,
    /// Inputs.
    pub inputs: Vec<RequestInput>,
    /// Outputs to return; all when absent.
    pub outputs: Option<Vec<RequestOutput>>,
    /// The names of the top-level fields this agent does not know, in body order.
    pub unknown_fields: Vec<String>,
}

impl<'de> Deserialize<'de> for InferRequestBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Body;
        impl<'de> Visitor<'de> for Body {
            type Value = InferRequestBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an infer request object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut body = InferRequestBody::default();
                let mut inputs = None;
                let mut seen = Vec::<&'static str>::new();
                while let Some(key) = map.next_key::<String>()? {
                    let known = match key.as_str() {
                        "id" => "id",
                        "model_name" => "model_name",
                        "model_version" => "model_version",
                        "parameters" => "parameters",
                        "inputs" => "inputs",
                        "outputs" => "outputs",
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            body.unknown_fields.push(key);
                            continue;
                        }
                    };
                    if seen.contains(&known) {
                        return Err(de::Error::duplicate_field(known));
                    }
                    seen.push(known);
                    match known {
                        "id" => body.id = map.next_value()?,
                        "model_name" => body.model_name = map.next_value()?,
                        "model_version" => {
                            body.model_version = map
                                .next_value::<Option<String>>()?
                                .filter(|v| !v.is_empty())
                        }
                        "parameters" => {
                            body.parameters = map.next_value::<Option<_>>()?.unwrap_or_default()
                        }
                        "inputs" => inputs = Some(map.next_value()?),
                        _ => body.outputs = map.next_value()?,
                    }
                }
                body.inputs = inputs.ok_or_else(|| de::Error::missing_field("inputs"))?;
                Ok(body)
            }
        }
        deserializer.deserialize_map(Body)
    }
}

/// An output tensor of an infer response.
#[derive(Debug, Serialize)]
pub struct ResponseOutput {
    /// Output name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// OIP datatype.
    pub datatype: &'static str,
    /// `binary_data_size` when the data follows the JSON.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// Row-major data, unless binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// An infer response header.
#[derive(Debug, Serialize)]
pub struct InferResponseBody {
    /// The model.
    pub model_name: String,
    /// The version that computed it.
    pub model_version: String,
    /// The request's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Response parameters.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// Outputs.
    pub outputs: Vec<ResponseOutput>,
}

/// The element count of a shape, refusing negative dimensions and overflow.
pub fn element_count(name: &str, shape: &[i64]) -> Result<(Vec<usize>, usize), String> {
    let dims = shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| format!("input `{name}`: shape {shape:?} has a negative dimension"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("input `{name}`: shape {shape:?} is too large"))?;
    Ok((dims, count))
}

/// Decodes flattened JSON `data` into a tensor of the declared datatype and shape. The element
/// count is compared with the data before anything of the shape's size is allocated.
pub fn tensor_from_json(
    name: &str,
    ty: ElementType,
    shape: &[usize],
    count: usize,
    data: FlatData,
) -> Result<Tensor, String> {
    if data.len() != count {
        return Err(format!(
            "input `{name}`: shape {shape:?} needs {count} elements, but data has {}",
            data.len()
        ));
    }
    let bad = |i: usize, v: &dyn std::fmt::Display| {
        format!(
            "input `{name}`: element {i} ({v}) is not a valid {}",
            datatype(ty)
        )
    };
    let wrong_kind = |data: &FlatData| {
        format!(
            "input `{name}`: data holds {}, and element 0 is not a valid {}",
            data.kind(),
            datatype(ty)
        )
    };
    macro_rules! ints {
        ($t:ty) => {{
            let nums = match data {
                FlatData::Numbers(n) => n,
                FlatData::Empty => Vec::new(),
                other => return Err(wrong_kind(&other)),
            };
            let data = nums
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .and_then(|x| <$t>::try_from(x).ok())
                        .or_else(|| v.as_u64().and_then(|x| <$t>::try_from(x).ok()))
                        .ok_or_else(|| bad(i, v))
                })
                .collect::<Result<Vec<$t>, _>>()?;
            Tensor::from_shape_vec(shape, data)
        }};
    }
    macro_rules! floats {
        ($conv:expr) => {{
            let nums = match data {
                FlatData::Numbers(n) => n,
                FlatData::Empty => Vec::new(),
                other => return Err(wrong_kind(&other)),
            };
            let data: Vec<_> = nums.iter().map(|v| $conv(v.as_f64())).collect();
            Tensor::from_shape_vec(shape, data)
        }};
    }
    let tensor = match ty {
        ElementType::I8 => ints!(i8),
        ElementType::I16 => ints!(i16),
        ElementType::I32 => ints!(i32),
        ElementType::I64 => ints!(i64),
        ElementType::U8 => ints!(u8),
        ElementType::U16 => ints!(u16),
        ElementType::U32 => ints!(u32),
        ElementType::U64 => ints!(u64),
        ElementType::F16 => floats!(f16::from_f64),
        ElementType::F32 => floats!(|x: f64| x as f32),
        ElementType::F64 => floats!(|x: f64| x),
        ElementType::Bool => match data {
            FlatData::Bools(b) => Tensor::from_shape_vec(shape, b),
            FlatData::Empty => Tensor::from_shape_vec(shape, Vec::<bool>::new()),
            other => return Err(wrong_kind(&other)),
        },
        ElementType::String => match data {
            FlatData::Strings(s) => Tensor::from_shape_vec(shape, s),
            FlatData::Empty => Tensor::from_shape_vec(shape, Vec::<String>::new()),
            other => return Err(wrong_kind(&other)),
        },
    };
    tensor.map_err(|e| format!("input `{name}`: {e}"))
}

/// Encodes a tensor as a flat JSON array. Non-finite floats become `null`, as JSON has no NaN.
pub fn tensor_to_json(t: &Tensor) -> Value {
    fn num(x: f64) -> Value {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
    let items: Vec<Value> = match t {
        Tensor::F16(a) => a.iter().map(|x| num(x.to_f64())).collect(),
        Tensor::F32(a) => a.iter().map(|&x| num(x as f64)).collect(),
        Tensor::F64(a) => a.iter().map(|&x| num(x)).collect(),
        Tensor::I8(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::I16(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::I32(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::I64(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::U8(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::U16(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::U32(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::U64(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::Bool(a) => a.iter().map(|&x| x.into()).collect(),
        Tensor::String(a) => a.iter().map(|x| Value::String(x.clone())).collect(),
    };
    Value::Array(items)
}

/// Decodes binary tensor data (little-endian; BYTES as 4-byte length-prefixed elements).
pub fn tensor_from_binary(
    name: &str,
    ty: ElementType,
    shape: &[usize],
    count: usize,
    raw: &[u8],
) -> Result<Tensor, String> {
    if ty != ElementType::String {
        return Tensor::from_le_bytes(ty, shape, raw)
            .map_err(|e| format!("input `{name}`: binary_data_size is {}, but {e}", raw.len()));
    }
    if count > raw.len() / 4 {
        return Err(format!(
            "input `{name}`: shape {shape:?} needs {count} BYTES elements, but {} bytes hold at most {}",
            raw.len(),
            raw.len() / 4
        ));
    }
    let mut items = Vec::with_capacity(count);
    let mut rest = raw;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| format!("input `{name}`: truncated BYTES length prefix"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(format!(
                "input `{name}`: BYTES element of {len} bytes runs past the data"
            ));
        }
        let s = std::str::from_utf8(&tail[..len])
            .map_err(|_| format!("input `{name}`: BYTES element {} is not UTF-8", items.len()))?;
        items.push(s.to_owned());
        rest = &tail[len..];
    }
    if items.len() != count {
        return Err(format!(
            "input `{name}`: shape {shape:?} needs {count} BYTES elements, but the data holds {}",
            items.len()
        ));
    }
    Tensor::from_shape_vec(shape, items).map_err(|e| format!("input `{name}`: {e}"))
}

/// Encodes a tensor in the binary tensor format.
pub fn tensor_to_binary(t: &Tensor) -> Vec<u8> {
    match t {
        Tensor::String(a) => a
            .iter()
            .flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes()))
            .collect(),
        fixed => fixed
            .to_le_bytes()
            .expect("fixed-size elements have a byte encoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(v: Value) -> FlatData {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn json_round_trips_every_type_and_checks_counts() {
        for ty in ElementType::ALL {
            let data = match ty {
                ElementType::Bool => serde_json::json!([[true, false], [false, true]]),
                ElementType::String => serde_json::json!(["a", "b", "c", "d"]),
                _ => serde_json::json!([1, 2, 3, 4]),
            };
            let t = tensor_from_json("x", ty, &[2, 2], 4, flat(data)).unwrap();
            assert_eq!(t.element_type(), ty);
            let back = tensor_from_json("x", ty, &[2, 2], 4, flat(tensor_to_json(&t))).unwrap();
            assert_eq!(back, t);
            let bin = tensor_from_binary("x", ty, &[2, 2], 4, &tensor_to_binary(&t)).unwrap();
            assert_eq!(bin, t, "{ty}");
        }
        let err = tensor_from_json(
            "x",
            ElementType::U8,
            &[2],
            2,
            flat(serde_json::json!([1, 300])),
        )
        .unwrap_err();
        assert!(
            err.contains("element 1 (300) is not a valid UINT8"),
            "{err}"
        );
        let err = tensor_from_json(
            "x",
            ElementType::F32,
            &[3],
            3,
            flat(serde_json::json!([1, 2])),
        )
        .unwrap_err();
        assert!(err.contains("needs 3 elements"), "{err}");
    }

    #[test]
    fn binary_lengths_are_checked() {
        assert!(tensor_from_binary("x", ElementType::F32, &[2], 2, &[0; 7]).is_err());
        assert!(
            tensor_from_binary("x", ElementType::String, &[1], 1, &[5, 0, 0, 0, b'a']).is_err()
        );
        assert!(tensor_from_binary("x", ElementType::String, &[1], 1, &[1, 0]).is_err());
        assert!(element_count("x", &[-1, 2]).is_err());
        assert!(element_count("x", &[i64::MAX, i64::MAX]).is_err());
    }
}
