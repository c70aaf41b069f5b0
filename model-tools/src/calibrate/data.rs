//! [`CalibrationData`]: the inputs a model is calibrated on, sample by sample.

use std::fs::File;
use std::path::Path;

use inference::half::f16;
use inference::ndarray::{ArrayD, Axis};
use inference::{Dim, ElementType, Tensor, TensorInfo};
use ndarray_npy::{NpzReader, ReadNpyError, ReadNpzError};

use super::collect::CollectError;

/// One array per model input, samples along the first axis; a rank-0 array is a constant
/// input, fed unchanged with every batch.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationData {
    inputs: Vec<(String, Tensor)>,
    samples: usize,
}

impl CalibrationData {
    /// Calibration inputs from tensors named after the model's inputs. Every tensor of rank
    /// 1 or more holds one sample per row, and they must agree on the number of rows.
    pub fn new(inputs: Vec<(String, Tensor)>) -> Result<Self, CollectError> {
        let counts: Vec<(String, usize)> = inputs
            .iter()
            .filter(|(_, t)| !t.shape().is_empty())
            .map(|(n, t)| (n.clone(), t.shape()[0]))
            .collect();
        let samples = counts.first().map_or(1, |(_, n)| *n);
        if counts.iter().any(|(_, n)| *n != samples) {
            return Err(CollectError::SampleCounts {
                counts: counts
                    .iter()
                    .map(|(name, n)| format!("`{name}` {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Self { inputs, samples })
    }

    /// Reads the inputs of a model from an `.npz` file: one array per input, named after
    /// it, or, for a model of one input, the array `input_key` (e.g. `x_train` of
    /// `models/digits.npz`). Each array must have the input's element type (float32 data
    /// also feeds a float16 input) and hold samples along its first axis, each shaped as the
    /// input without its batch axis; rows whose length matches a fully fixed sample shape are
    /// reshaped to it (64-pixel rows feed a `[N, 1, 8, 8]` CNN).
    pub fn from_npz(
        path: impl AsRef<Path>,
        model_inputs: &[TensorInfo],
        input_key: Option<&str>,
    ) -> Result<Self, CollectError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| CollectError::DataOpen {
            path: path.to_path_buf(),
            source,
        })?;
        let read_err = |array: &str| {
            let (path, array) = (path.to_path_buf(), array.to_owned());
            move |source| CollectError::DataRead {
                path,
                array,
                source,
            }
        };
        let mut npz = NpzReader::new(file).map_err(read_err("(archive)"))?;
        let available = npz.names().map_err(read_err("(archive)"))?;
        let mut inputs = Vec::with_capacity(model_inputs.len());
        for info in model_inputs {
            let array = match input_key {
                Some(key) if model_inputs.len() == 1 => key,
                Some(key) => {
                    return Err(CollectError::InputKeyNeedsOneInput {
                        key: key.to_owned(),
                        inputs: model_inputs.iter().map(|i| i.name.clone()).collect(),
                    })
                }
                None => info.name.as_str(),
            };
            if !available.iter().any(|a| a == array) {
                return Err(CollectError::MissingArray {
                    path: path.to_path_buf(),
                    array: array.to_owned(),
                    input: info.name.clone(),
                    available: available.clone(),
                    single_input: model_inputs.len() == 1,
                });
            }
            let tensor = read_as(&mut npz, array, info.element_type).map_err(|e| match e {
                ReadNpzError::Npy(ReadNpyError::WrongDescriptor(found)) => CollectError::DataType {
                    path: path.to_path_buf(),
                    array: array.to_owned(),
                    input: info.name.clone(),
                    found: numpy_type_name(&found.to_string()),
                    expected: info.element_type,
                },
                other => read_err(array)(other),
            })?;
            let Some(tensor) = tensor else {
                return Err(CollectError::StringInput {
                    input: info.name.clone(),
                });
            };
            let tensor = fit_to_input(tensor, info, path, array)?;
            inputs.push((info.name.clone(), tensor));
        }
        Self::new(inputs)
    }

    /// Samples (rows of the batched inputs).
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// The inputs, by name.
    pub fn inputs(&self) -> &[(String, Tensor)] {
        &self.inputs
    }

    /// Samples `start..end` of every batched input, and the constant inputs.
    pub(crate) fn batch(&self, start: usize, end: usize) -> Vec<(String, Tensor)> {
        self.inputs
            .iter()
            .map(|(n, t)| {
                let t = if t.shape().is_empty() {
                    t.clone()
                } else {
                    slice_rows(t, start, end)
                };
                (n.clone(), t)
            })
            .collect()
    }
}

/// Reads `array` as the element type `ty` (float32 for a float16 input, converted); `None`
/// for string inputs, which `.npz` arrays cannot feed here.
fn read_as<R: std::io::Read + std::io::Seek>(
    npz: &mut NpzReader<R>,
    array: &str,
    ty: ElementType,
) -> Result<Option<Tensor>, ReadNpzError> {
    Ok(Some(match ty {
        ElementType::F16 => {
            let a: ArrayD<f32> = npz.by_name(array)?;
            Tensor::F16(a.mapv(f16::from_f32))
        }
        ElementType::F32 => Tensor::F32(npz.by_name(array)?),
        ElementType::F64 => Tensor::F64(npz.by_name(array)?),
        ElementType::I8 => Tensor::I8(npz.by_name(array)?),
        ElementType::I16 => Tensor::I16(npz.by_name(array)?),
        ElementType::I32 => Tensor::I32(npz.by_name(array)?),
        ElementType::I64 => Tensor::I64(npz.by_name(array)?),
        ElementType::U8 => Tensor::U8(npz.by_name(array)?),
        ElementType::U16 => Tensor::U16(npz.by_name(array)?),
        ElementType::U32 => Tensor::U32(npz.by_name(array)?),
        ElementType::U64 => Tensor::U64(npz.by_name(array)?),
        ElementType::Bool => Tensor::Bool(npz.by_name(array)?),
        ElementType::String => return Ok(None),
    }))
}

/// numpy's name for a `.npy` descriptor such as `'<f8'`.
fn numpy_type_name(descriptor: &str) -> String {
    let d = descriptor.trim_matches(|c| c == '\'' || c == '"');
    let name = match d.trim_start_matches(['<', '>', '|', '=']) {
        "f2" | "e" => "float16",
        "f4" | "f" => "float32",
        "f8" | "d" => "float64",
        "i1" | "b" => "int8",
        "i2" | "h" => "int16",
        "i4" | "i" => "int32",
        "i8" | "q" | "l" => "int64",
        "u1" | "B" => "uint8",
        "u2" | "H" => "uint16",
        "u4" | "I" => "uint32",
        "u8" | "Q" | "L" => "uint64",
        "b1" | "?" => "bool",
        _ => return d.to_owned(),
    };
    name.to_owned()
}

/// Checks an array against the input it feeds, reshaping rows to a fully fixed sample shape.
fn fit_to_input(
    tensor: Tensor,
    info: &TensorInfo,
    path: &Path,
    array: &str,
) -> Result<Tensor, CollectError> {
    let Some(dims) = &info.shape else {
        return Ok(tensor);
    };
    let shape = tensor.shape().to_vec();
    let mismatch = || CollectError::DataShape {
        path: path.to_path_buf(),
        array: array.to_owned(),
        input: info.name.clone(),
        found: shape.clone(),
        expected: format!(
            "[samples, {}]",
            dims.iter()
                .skip(1)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if dims.is_empty() {
        return if shape.is_empty() {
            Ok(tensor)
        } else {
            Err(CollectError::DataShape {
                path: path.to_path_buf(),
                array: array.to_owned(),
                input: info.name.clone(),
                found: shape.clone(),
                expected: "a scalar (a rank-0 array, fed with every batch)".to_owned(),
            })
        };
    }
    if shape.is_empty() {
        return Err(mismatch());
    }
    let sample = &dims[1..];
    let fits = shape.len() == dims.len()
        && sample
            .iter()
            .zip(&shape[1..])
            .all(|(d, &n)| !matches!(d, Dim::Fixed(f) if *f != n));
    if fits {
        return Ok(tensor);
    }
    let fixed: Option<Vec<usize>> = sample
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            _ => None,
        })
        .collect();
    match fixed {
        Some(sample)
            if sample.iter().product::<usize>() == shape[1..].iter().product::<usize>() =>
        {
            let mut target = vec![shape[0]];
            target.extend(sample);
            tensor.reshape(&target).map_err(|_| mismatch())
        }
        _ => Err(mismatch()),
    }
}

/// Rows `start..end` of a tensor of rank 1 or more.
fn slice_rows(t: &Tensor, start: usize, end: usize) -> Tensor {
    fn rows<T: Clone>(a: &ArrayD<T>, start: usize, end: usize) -> ArrayD<T> {
        a.slice_axis(Axis(0), (start..end).into()).to_owned()
    }
    match t {
        Tensor::F16(a) => Tensor::F16(rows(a, start, end)),
        Tensor::F32(a) => Tensor::F32(rows(a, start, end)),
        Tensor::F64(a) => Tensor::F64(rows(a, start, end)),
        Tensor::I8(a) => Tensor::I8(rows(a, start, end)),
        Tensor::I16(a) => Tensor::I16(rows(a, start, end)),
        Tensor::I32(a) => Tensor::I32(rows(a, start, end)),
        Tensor::I64(a) => Tensor::I64(rows(a, start, end)),
        Tensor::U8(a) => Tensor::U8(rows(a, start, end)),
        Tensor::U16(a) => Tensor::U16(rows(a, start, end)),
        Tensor::U32(a) => Tensor::U32(rows(a, start, end)),
        Tensor::U64(a) => Tensor::U64(rows(a, start, end)),
        Tensor::Bool(a) => Tensor::Bool(rows(a, start, end)),
        Tensor::String(a) => Tensor::String(rows(a, start, end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, dims: Vec<Dim>) -> TensorInfo {
        TensorInfo {
            name: name.to_owned(),
            element_type: ElementType::F32,
            shape: Some(dims),
        }
    }

    #[test]
    fn numpy_descriptors_get_numpy_names() {
        assert_eq!(numpy_type_name("'<f8'"), "float64");
        assert_eq!(numpy_type_name("|u1"), "uint8");
        assert_eq!(numpy_type_name("<c16"), "<c16");
    }

    #[test]
    fn rows_are_reshaped_to_a_fixed_sample_shape_or_refused() {
        let n = Dim::Symbolic("N".into());
        let cnn = info(
            "input",
            vec![n.clone(), Dim::Fixed(1), Dim::Fixed(8), Dim::Fixed(8)],
        );
        let rows = Tensor::from_shape_vec(&[3, 64], vec![0.5f32; 192]).unwrap();
        let fitted = fit_to_input(rows.clone(), &cnn, Path::new("d.npz"), "x").unwrap();
        assert_eq!(fitted.shape(), &[3, 1, 8, 8]);
        let odd = Tensor::from_shape_vec(&[3, 63], vec![0.5f32; 189]).unwrap();
        let err = fit_to_input(odd, &cnn, Path::new("d.npz"), "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[3, 63]") && err.contains("[samples, 1, 8, 8]"),
            "{err}"
        );
        let mlp = info("input", vec![n, Dim::Fixed(64)]);
        assert_eq!(
            fit_to_input(rows, &mlp, Path::new("d.npz"), "x")
                .unwrap()
                .shape(),
            &[3, 64]
        );
    }

    #[test]
    fn batches_slice_rows_and_repeat_constants() {
        let x = Tensor::from_shape_vec(&[4, 2], (0..8).map(|v| v as f32).collect()).unwrap();
        let k = Tensor::from_shape_vec(&[], vec![7i64]).unwrap();
        let data = CalibrationData::new(vec![("x".into(), x), ("k".into(), k.clone())]).unwrap();
        assert_eq!(data.samples(), 4);
        let b = data.batch(1, 3);
        assert_eq!(
            b[0].1.as_array::<f32>().unwrap().as_slice().unwrap(),
            &[2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(b[1].1, k);
        let err = CalibrationData::new(vec![
            (
                "a".into(),
                Tensor::from_shape_vec(&[2], vec![0f32; 2]).unwrap(),
            ),
            (
                "b".into(),
                Tensor::from_shape_vec(&[0], Vec::<f32>::new()).unwrap(),
            ),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("`a` 2, `b` 0"), "{err}");
    }
}
