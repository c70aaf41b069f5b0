//! Typed tensors: one variant per ONNX element type the platform serves.

use std::fmt;

use half::f16;
use ndarray::{ArrayD, Axis, IxDyn};

use crate::error::Error;

/// Invokes `$m!(Variant, rust_type, "DISPLAY_NAME", onnx_code)` once per supported element type.
///
/// The ONNX codes are `TensorProto.DataType` values.
macro_rules! for_each_element_type {
    ($m:ident) => {
        $m!(F16, f16, "float16", 10);
        $m!(F32, f32, "float32", 1);
        $m!(F64, f64, "float64", 11);
        $m!(I8, i8, "int8", 3);
        $m!(I16, i16, "int16", 5);
        $m!(I32, i32, "int32", 6);
        $m!(I64, i64, "int64", 7);
        $m!(U8, u8, "uint8", 2);
        $m!(U16, u16, "uint16", 4);
        $m!(U32, u32, "uint32", 12);
        $m!(U64, u64, "uint64", 13);
        $m!(Bool, bool, "bool", 9);
        $m!(String, String, "string", 8);
    };
}

/// The element type of a tensor, named as ONNX names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementType {
    /// IEEE 754 half precision (`float16`).
    F16,
    /// IEEE 754 single precision (`float`).
    F32,
    /// IEEE 754 double precision (`double`).
    F64,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 8-bit integer.
    U8,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 64-bit integer.
    U64,
    /// Boolean.
    Bool,
    /// UTF-8 string.
    String,
}

impl ElementType {
    /// Every supported element type.
    pub const ALL: [ElementType; 13] = [
        Self::F16,
        Self::F32,
        Self::F64,
        Self::I8,
        Self::I16,
        Self::I32,
        Self::I64,
        Self::U8,
        Self::U16,
        Self::U32,
        Self::U64,
        Self::Bool,
        Self::String,
    ];

    /// The `TensorProto.DataType` code of this type.
    pub fn onnx_code(self) -> i32 {
        macro_rules! code {
            ($v:ident, $t:ty, $n:literal, $c:literal) => {
                if self == Self::$v {
                    return $c;
                }
            };
        }
        for_each_element_type!(code);
        unreachable!("every element type has a code")
    }

    /// The element type for a `TensorProto.DataType` code, if the platform supports it.
    pub fn from_onnx_code(code: i32) -> Option<Self> {
        macro_rules! from_code {
            ($v:ident, $t:ty, $n:literal, $c:literal) => {
                if code == $c {
                    return Some(Self::$v);
                }
            };
        }
        for_each_element_type!(from_code);
        None
    }

    /// The lowercase name, as numpy and ONNX spell it (`float32`, `int64`, `string`, ...).
    pub fn name(self) -> &'static str {
        macro_rules! name {
            ($v:ident, $t:ty, $n:literal, $c:literal) => {
                if self == Self::$v {
                    return $n;
                }
            };
        }
        for_each_element_type!(name);
        unreachable!("every element type has a name")
    }

    /// Size of one element in bytes; `None` for strings.
    pub fn byte_size(self) -> Option<usize> {
        match self {
            Self::String => None,
            Self::Bool | Self::I8 | Self::U8 => Some(1),
            Self::F16 | Self::I16 | Self::U16 => Some(2),
            Self::F32 | Self::I32 | Self::U32 => Some(4),
            Self::F64 | Self::I64 | Self::U64 => Some(8),
        }
    }
}

/// Names the ONNX element types the platform does not serve, for error messages.
pub fn onnx_type_name(code: i32) -> String {
    match ElementType::from_onnx_code(code) {
        Some(t) => t.name().to_owned(),
        None => match code {
            0 => "undefined".to_owned(),
            14 => "complex64".to_owned(),
            15 => "complex128".to_owned(),
            16 => "bfloat16".to_owned(),
            17..=20 => "float8".to_owned(),
            21 => "uint4".to_owned(),
            22 => "int4".to_owned(),
            23 => "float4e2m1".to_owned(),
            other => format!("data type {other}"),
        },
    }
}

/// Serialized as its lowercase name, e.g. `"float32"`.
impl serde::Serialize for ElementType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense tensor of one of the supported element types, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    /// `float16` data.
    F16(ArrayD<f16>),
    /// `float32` data.
    F32(ArrayD<f32>),
    /// `float64` data.
    F64(ArrayD<f64>),
    /// `int8` data.
    I8(ArrayD<i8>),
    /// `int16` data.
    I16(ArrayD<i16>),
    /// `int32` data.
    I32(ArrayD<i32>),
    /// `int64` data.
    I64(ArrayD<i64>),
    /// `uint8` data.
    U8(ArrayD<u8>),
    /// `uint16` data.
    U16(ArrayD<u16>),
    /// `uint32` data.
    U32(ArrayD<u32>),
    /// `uint64` data.
    U64(ArrayD<u64>),
    /// `bool` data.
    Bool(ArrayD<bool>),
    /// `string` data.
    String(ArrayD<String>),
}

/// Applies `$body` to the array inside any variant of a [`Tensor`], binding it to `$a`.
macro_rules! with_array {
    ($tensor:expr, $a:ident => $body:expr) => {
        match $tensor {
            $crate::tensor::Tensor::F16($a) => $body,
            $crate::tensor::Tensor::F32($a) => $body,
            $crate::tensor::Tensor::F64($a) => $body,
            $crate::tensor::Tensor::I8($a) => $body,
            $crate::tensor::Tensor::I16($a) => $body,
            $crate::tensor::Tensor::I32($a) => $body,
            $crate::tensor::Tensor::I64($a) => $body,
            $crate::tensor::Tensor::U8($a) => $body,
            $crate::tensor::Tensor::U16($a) => $body,
            $crate::tensor::Tensor::U32($a) => $body,
            $crate::tensor::Tensor::U64($a) => $body,
            $crate::tensor::Tensor::Bool($a) => $body,
            $crate::tensor::Tensor::String($a) => $body,
        }
    };
}
// Only the tract backend converts through it.
#[cfg_attr(not(feature = "tract"), allow(unused_imports))]
pub(crate) use with_array;

impl Tensor {
    /// The element type.
    pub fn element_type(&self) -> ElementType {
        macro_rules! ty {
            ($v:ident, $t:ty, $n:literal, $c:literal) => {
                if let Self::$v(_) = self {
                    return ElementType::$v;
                }
            };
        }
        for_each_element_type!(ty);
        unreachable!("every variant has an element type")
    }

    /// The shape, one entry per axis.
    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_array!(self, a => a.len())
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the element data takes in memory (string bytes for string tensors).
    pub fn byte_len(&self) -> usize {
        match self {
            Self::String(a) => a.iter().map(String::len).sum(),
            other => other.len() * other.element_type().byte_size().unwrap_or(0),
        }
    }

    /// Builds a tensor from a shape and row-major data.
    pub fn from_shape_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Self, Error> {
        let given = data.len();
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .map(T::into_tensor)
            .map_err(|_| Error::DataLength {
                shape: shape.to_vec(),
                expected: shape.iter().product(),
                given,
            })
    }

    /// Borrows the array if the tensor holds `T`.
    pub fn as_array<T: Element>(&self) -> Option<&ArrayD<T>> {
        T::array_ref(self)
    }

    /// Takes the array if the tensor holds `T`, or gives the tensor back.
    pub fn into_array<T: Element>(self) -> Result<ArrayD<T>, Tensor> {
        T::from_tensor(self)
    }

    /// Returns the same data with a new shape of the same element count.
    pub fn reshape(self, shape: &[usize]) -> Result<Self, Error> {
        let expected: usize = shape.iter().product();
        let given = self.len();
        if expected != given {
            return Err(Error::DataLength {
                shape: shape.to_vec(),
                expected,
                given,
            });
        }
        macro_rules! re {
            ($v:ident, $t:ty, $n:literal, $c:literal) => {
                if let Self::$v(a) = self {
                    let data: Vec<$t> = a.into_iter().collect();
                    return Self::from_shape_vec(shape, data);
                }
            };
        }
        for_each_element_type!(re);
        unreachable!("every variant is handled")
    }
}

impl Tensor {
    /// Joins tensors of one element type along the first axis; their other axes must agree.
    /// Used to merge requests into one batch.
    pub fn concat_rows(parts: &[Tensor]) -> Result<Tensor, Error> {
        let first = parts
            .first()
            .ok_or(Error::Batch("nothing to concatenate".to_owned()))?;
        let tail = first.shape().get(1..).unwrap_or_default();
        if first.shape().is_empty() {
            return Err(Error::Batch("a scalar has no batch axis".to_owned()));
        }
        for p in parts {
            if p.element_type() != first.element_type()
                || p.shape().get(1..).unwrap_or_default() != tail
                || p.shape().is_empty()
            {
                return Err(Error::Batch(format!(
                    "cannot batch {} with {}",
                    crate::describe(first),
                    crate::describe(p)
                )));
            }
        }
        macro_rules! cat {
            ($v:ident, $t:ty, $n:literal, $c:literal) => {
                if let Tensor::$v(_) = first {
                    let views: Vec<_> = parts
                        .iter()
                        .map(|p| p.as_array::<$t>().expect("element types checked").view())
                        .collect();
                    let joined = ndarray::concatenate(Axis(0), &views)
                        .map_err(|e| Error::Batch(e.to_string()))?;
                    return Ok(Tensor::$v(joined));
                }
            };
        }
        for_each_element_type!(cat);
        unreachable!("every variant is handled")
    }

    /// Splits along the first axis into pieces of the given row counts, which must add up to
    /// the first dimension. The inverse of [`Tensor::concat_rows`].
    pub fn split_rows(&self, rows: &[usize]) -> Result<Vec<Tensor>, Error> {
        let total: usize = rows.iter().sum();
        if self.shape().first() != Some(&total) {
            return Err(Error::Batch(format!(
                "cannot split {} into {total} rows",
                crate::describe(self)
            )));
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(rows.len());
        for &n in rows {
            let range = (start..start + n).into();
            out.push(with_array!(self, a => Tensor::from(a.slice_axis(Axis(0), range).to_owned())));
            start += n;
        }
        Ok(out)
    }
}

impl Tensor {
    /// Decodes row-major little-endian element bytes (one byte per bool), as ONNX `raw_data`
    /// and Triton's binary tensors store them. Strings have no fixed-size encoding and are
    /// refused.
    pub fn from_le_bytes(ty: ElementType, shape: &[usize], raw: &[u8]) -> Result<Tensor, Error> {
        let size = ty.byte_size().ok_or(Error::Batch(
            "string tensors have no little-endian byte encoding".to_owned(),
        ))?;
        let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count.and_then(|c| c.checked_mul(size)) != Some(raw.len()) {
            return Err(Error::ByteLength {
                shape: shape.to_vec(),
                element_type: ty,
                given: raw.len(),
            });
        }
        macro_rules! le {
            ($t:ty, $n:literal) => {
                Tensor::from_shape_vec(
                    shape,
                    raw.chunks_exact($n)
                        .map(|c| {
                            <$t>::from_le_bytes(c.try_into().expect("chunk has the element size"))
                        })
                        .collect::<Vec<$t>>(),
                )
            };
        }
        match ty {
            ElementType::F16 => le!(f16, 2),
            ElementType::F32 => le!(f32, 4),
            ElementType::F64 => le!(f64, 8),
            ElementType::I8 => le!(i8, 1),
            ElementType::I16 => le!(i16, 2),
            ElementType::I32 => le!(i32, 4),
            ElementType::I64 => le!(i64, 8),
            ElementType::U8 => le!(u8, 1),
            ElementType::U16 => le!(u16, 2),
            ElementType::U32 => le!(u32, 4),
            ElementType::U64 => le!(u64, 8),
            ElementType::Bool => {
                Tensor::from_shape_vec(shape, raw.iter().map(|&b| b != 0).collect())
            }
            ElementType::String => unreachable!("strings have no byte size"),
        }
    }

    /// Encodes the elements as row-major little-endian bytes (one byte per bool); `None` for
    /// strings. The inverse of [`Tensor::from_le_bytes`].
    pub fn to_le_bytes(&self) -> Option<Vec<u8>> {
        macro_rules! le {
            ($a:expr) => {
                $a.iter().flat_map(|x| x.to_le_bytes()).collect()
            };
        }
        Some(match self {
            Tensor::F16(a) => le!(a),
            Tensor::F32(a) => le!(a),
            Tensor::F64(a) => le!(a),
            Tensor::I8(a) => le!(a),
            Tensor::I16(a) => le!(a),
            Tensor::I32(a) => le!(a),
            Tensor::I64(a) => le!(a),
            Tensor::U8(a) => a.iter().copied().collect(),
            Tensor::U16(a) => le!(a),
            Tensor::U32(a) => le!(a),
            Tensor::U64(a) => le!(a),
            Tensor::Bool(a) => a.iter().map(|&b| u8::from(b)).collect(),
            Tensor::String(_) => return None,
        })
    }
}

/// A Rust type that is the element of one [`Tensor`] variant.
pub trait Element: Clone + Sized + 'static {
    /// The element type this Rust type stands for.
    const TYPE: ElementType;
    /// Wraps an array in the matching variant.
    fn into_tensor(array: ArrayD<Self>) -> Tensor;
    /// Borrows the array if the variant matches.
    fn array_ref(tensor: &Tensor) -> Option<&ArrayD<Self>>;
    /// Unwraps the array if the variant matches.
    fn from_tensor(tensor: Tensor) -> Result<ArrayD<Self>, Tensor>;
}

macro_rules! impl_element {
    ($v:ident, $t:ty, $n:literal, $c:literal) => {
        impl Element for $t {
            const TYPE: ElementType = ElementType::$v;
            fn into_tensor(array: ArrayD<Self>) -> Tensor {
                Tensor::$v(array)
            }
            fn array_ref(tensor: &Tensor) -> Option<&ArrayD<Self>> {
                match tensor {
                    Tensor::$v(a) => Some(a),
                    _ => None,
                }
            }
            fn from_tensor(tensor: Tensor) -> Result<ArrayD<Self>, Tensor> {
                match tensor {
                    Tensor::$v(a) => Ok(a),
                    other => Err(other),
                }
            }
        }

        impl From<ArrayD<$t>> for Tensor {
            fn from(array: ArrayD<$t>) -> Self {
                Tensor::$v(array)
            }
        }
    };
}
for_each_element_type!(impl_element);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_for_every_type() {
        for t in ElementType::ALL {
            assert_eq!(ElementType::from_onnx_code(t.onnx_code()), Some(t));
        }
        assert_eq!(
            ElementType::from_onnx_code(16),
            None,
            "bfloat16 is not served"
        );
        assert_eq!(onnx_type_name(16), "bfloat16");
    }

    #[test]
    fn shape_and_length_are_checked() {
        let t = Tensor::from_shape_vec(&[2, 3], vec![1.0f32; 6]).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.element_type(), ElementType::F32);
        assert_eq!(t.byte_len(), 24);
        let err = Tensor::from_shape_vec(&[2, 3], vec![1i64; 5]).unwrap_err();
        assert!(err.to_string().contains("6"), "{err}");
        let r = t.reshape(&[3, 2]).unwrap();
        assert_eq!(r.shape(), &[3, 2]);
        assert!(r.reshape(&[4]).is_err());
    }

    #[test]
    fn rows_concatenate_and_split_back() {
        let a = Tensor::from_shape_vec(&[1, 2], vec![1i32, 2]).unwrap();
        let b = Tensor::from_shape_vec(&[2, 2], vec![3i32, 4, 5, 6]).unwrap();
        let ab = Tensor::concat_rows(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(ab.shape(), &[3, 2]);
        assert_eq!(ab.split_rows(&[1, 2]).unwrap(), vec![a.clone(), b]);
        let c = Tensor::from_shape_vec(&[1, 3], vec![1i32, 2, 3]).unwrap();
        assert!(Tensor::concat_rows(&[a.clone(), c]).is_err());
        let f = Tensor::from_shape_vec(&[1, 2], vec![1.0f32, 2.0]).unwrap();
        assert!(Tensor::concat_rows(&[a.clone(), f]).is_err());
        assert!(ab.split_rows(&[1, 1]).is_err());
    }

    #[test]
    fn little_endian_bytes_round_trip_every_fixed_size_type() {
        for ty in ElementType::ALL {
            let Some(size) = ty.byte_size() else { continue };
            let raw: Vec<u8> = (0..6 * size as u8).map(|b| b % 2).collect();
            let t = Tensor::from_le_bytes(ty, &[2, 3], &raw).unwrap();
            assert_eq!(t.element_type(), ty);
            assert_eq!(t.to_le_bytes().unwrap(), raw, "{ty}");
            assert!(Tensor::from_le_bytes(ty, &[2, 3], &raw[1..]).is_err());
        }
        assert!(Tensor::from_le_bytes(ElementType::String, &[1], &[]).is_err());
    }

    #[test]
    fn typed_access_matches_the_variant() {
        let t = Tensor::from_shape_vec(&[2], vec!["a".to_owned(), "bc".to_owned()]).unwrap();
        assert_eq!(t.byte_len(), 3);
        assert!(t.as_array::<f32>().is_none());
        assert_eq!(t.as_array::<String>().unwrap()[[1]], "bc");
        let back = t.into_array::<i8>().unwrap_err();
        assert_eq!(back.element_type(), ElementType::String);
    }
}
