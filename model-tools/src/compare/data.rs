//! The arrays a comparison feeds: read from an `.npz` whatever their numeric type, sliced into
//! batches and converted to the element type each model declares.

use std::fs::File;
use std::path::Path;

use inference::half::f16;
use inference::ndarray::{IxDyn, OwnedRepr};
use inference::{ElementType, Tensor};
use ndarray_npy::NpzReader;

/// A numeric array: its shape (first axis: examples) and its values widened to `f64`, which
/// holds every float32, float16 and integer up to 2^53 exactly.
#[derive(Debug, Clone)]
pub(crate) struct Array {
    pub(crate) shape: Vec<usize>,
    pub(crate) values: Vec<f64>,
}

impl Array {
    /// Examples: the length of the first axis (1 for a scalar).
    pub(crate) fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Values per example.
    pub(crate) fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Examples `start..start + n` as a tensor of `ty` shaped `[n, example...]`.
    pub(crate) fn batch(
        &self,
        start: usize,
        n: usize,
        example: &[usize],
        ty: ElementType,
    ) -> Option<Tensor> {
        let row = self.row_len();
        let values = &self.values[start * row..(start + n) * row];
        let mut shape = vec![n];
        shape.extend(example);
        from_f64(ty, &shape, values)
    }
}

/// An `.npz` archive, open for reading arrays by name.
pub(crate) struct Npz {
    reader: NpzReader<File>,
    /// The names of its arrays.
    pub(crate) names: Vec<String>,
}

impl Npz {
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("cannot open it ({e})"))?;
        let mut reader =
            NpzReader::new(file).map_err(|e| format!("it is not an .npz archive ({e})"))?;
        let names = reader
            .names()
            .map_err(|e| format!("cannot list its arrays ({e})"))?;
        Ok(Self { reader, names })
    }

    /// The names of its arrays, for messages.
    pub(crate) fn listing(&self) -> String {
        let mut names: Vec<String> = self.names.iter().map(|n| format!("`{n}`")).collect();
        names.sort();
        if names.is_empty() {
            "it holds no arrays".to_owned()
        } else {
            format!("it holds {}", names.join(", "))
        }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Reads array `name` of any numeric or bool dtype.
    #[allow(
        clippy::unnecessary_cast,
        reason = "one macro widens every dtype, float64 included"
    )]
    pub(crate) fn read(&mut self, name: &str) -> Result<Array, String> {
        macro_rules! attempt {
            ($($t:ty),*) => {$(
                if let Ok(a) = self.reader.by_name::<OwnedRepr<$t>, IxDyn>(name) {
                    return Ok(Array {
                        shape: a.shape().to_vec(),
                        values: a.iter().map(|&x| x as f64).collect(),
                    });
                }
            )*};
        }
        attempt!(f32, f64, i64, i32, i16, i8, u64, u32, u16, u8);
        if let Ok(a) = self.reader.by_name::<OwnedRepr<bool>, IxDyn>(name) {
            return Ok(Array {
                shape: a.shape().to_vec(),
                values: a.iter().map(|&x| f64::from(u8::from(x))).collect(),
            });
        }
        Err(format!(
            "array `{name}` is not a numeric array (float, int or bool)"
        ))
    }
}

/// A tensor of `ty` holding `values` (rounded for integer types); `None` for types that do not
/// hold numbers (strings).
pub(crate) fn from_f64(ty: ElementType, shape: &[usize], values: &[f64]) -> Option<Tensor> {
    macro_rules! build {
        ($map:expr) => {
            Tensor::from_shape_vec(shape, values.iter().map($map).collect::<Vec<_>>()).ok()
        };
    }
    match ty {
        ElementType::F32 => build!(|&x| x as f32),
        ElementType::F64 => build!(|&x| x),
        ElementType::F16 => build!(|&x| f16::from_f64(x)),
        ElementType::I64 => build!(|&x| x.round() as i64),
        ElementType::I32 => build!(|&x| x.round() as i32),
        ElementType::I16 => build!(|&x| x.round() as i16),
        ElementType::I8 => build!(|&x| x.round() as i8),
        ElementType::U64 => build!(|&x| x.round() as u64),
        ElementType::U32 => build!(|&x| x.round() as u32),
        ElementType::U16 => build!(|&x| x.round() as u16),
        ElementType::U8 => build!(|&x| x.round() as u8),
        ElementType::Bool => build!(|&x| x != 0.0),
        ElementType::String => None,
    }
}

/// The values of a numeric tensor as `f64`; `None` for strings.
pub(crate) fn to_f64(t: &Tensor) -> Option<Vec<f64>> {
    Some(match t {
        Tensor::F16(a) => a.iter().map(|x| x.to_f64()).collect(),
        Tensor::F32(a) => a.iter().map(|&x| f64::from(x)).collect(),
        Tensor::F64(a) => a.iter().copied().collect(),
        Tensor::I8(a) => a.iter().map(|&x| f64::from(x)).collect(),
        Tensor::I16(a) => a.iter().map(|&x| f64::from(x)).collect(),
        Tensor::I32(a) => a.iter().map(|&x| f64::from(x)).collect(),
        Tensor::I64(a) => a.iter().map(|&x| x as f64).collect(),
        Tensor::U8(a) => a.iter().map(|&x| f64::from(x)).collect(),
        Tensor::U16(a) => a.iter().map(|&x| f64::from(x)).collect(),
        Tensor::U32(a) => a.iter().map(|&x| f64::from(x)).collect(),
        Tensor::U64(a) => a.iter().map(|&x| x as f64).collect(),
        Tensor::Bool(a) => a.iter().map(|&x| f64::from(u8::from(x))).collect(),
        Tensor::String(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_convert_to_the_declared_type() {
        let a = Array {
            shape: vec![3, 2],
            values: vec![0.0, 1.5, 2.0, 3.0, 4.0, 5.0],
        };
        assert_eq!((a.rows(), a.row_len()), (3, 2));
        let t = a.batch(1, 2, &[2], ElementType::F16).unwrap();
        assert_eq!(t.shape(), [2, 2]);
        assert_eq!(to_f64(&t).unwrap(), [2.0, 3.0, 4.0, 5.0]);
        let t = a.batch(0, 1, &[1, 2], ElementType::I64).unwrap();
        assert_eq!(t.shape(), [1, 1, 2]);
        assert_eq!(to_f64(&t).unwrap(), [0.0, 2.0]);
        assert!(a.batch(0, 1, &[2], ElementType::String).is_none());
    }

    #[test]
    fn reads_digits_whatever_the_dtype() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits.npz");
        let mut npz = Npz::open(&path).unwrap();
        assert!(npz.has("x_test") && npz.has("y_test"));
        let x = npz.read("x_test").unwrap();
        assert_eq!(x.shape, [450, 64]);
        let y = npz.read("y_test").unwrap();
        assert_eq!(y.shape, [450]);
        assert!(y.values.iter().all(|v| (0.0..10.0).contains(v)));
        assert!(npz.listing().contains("`x_train`"), "{}", npz.listing());
        let err = Npz::open(Path::new("/nonexistent.npz")).err().unwrap();
        assert!(err.contains("cannot open"), "{err}");
    }
}
