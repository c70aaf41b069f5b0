//! The real-model test set and the ONNX wheel's model cases, as written by
//! `tests/real_models/generate.py` to `$EDGE_ML_REAL_MODELS` (set by `scripts/env.sh`).
//!
//! Each case is a folder in the ONNX backend-test layout: `model.onnx` and
//! `test_data_set_<i>/{input,output}_<j>.pb`. [`Index`] reads the manifest, [`read_data_sets`]
//! the tensors, and [`evaluate`] loads a model on one backend and compares its outputs with the
//! reference (python onnxruntime's for the real models, the wheel's for the ONNX cases).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inference::onnx::decode_tensor_proto;
use inference::{LoadOptions, Model, Tensor};
use serde::Deserialize;

/// The environment variable that holds the generator's output folder.
pub const ENV: &str = "EDGE_ML_REAL_MODELS";

/// `index.json`: the manifest of the real models and the ONNX wheel's model cases.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// The third-party models taken from PyPI wheels.
    pub models: Vec<RealModel>,
    /// The model cases that the `onnx` wheel ships.
    pub onnx_cases: Vec<OnnxCase>,
}

/// One third-party model, where it came from, and what the test feeds it.
#[derive(Debug, Clone, Deserialize)]
pub struct RealModel {
    /// A short name, e.g. `ppocrv4-det`.
    pub name: String,
    /// The case folder, relative to the generator's output folder.
    pub dir: String,
    /// The wheel it comes from, `distribution==version`.
    pub package: String,
    /// The model's path inside the wheel.
    pub path_in_wheel: String,
    /// What it works on, e.g. `audio (voice activity)`.
    pub modality: String,
    /// Which dims are dynamic, in words.
    pub dynamic: String,
    /// Input names, in the order of the `input_<j>.pb` files.
    pub inputs: Vec<String>,
    /// Output names, in the order of the `output_<j>.pb` files.
    pub outputs: Vec<String>,
    /// Each data set's input shapes.
    pub shapes: Vec<BTreeMap<String, Vec<usize>>>,
    /// Relative tolerance against the reference.
    pub rtol: f64,
    /// Absolute tolerance against the reference.
    pub atol: f64,
}

/// One model case of the `onnx` wheel (`onnx/backend/test/data/<suite>`).
#[derive(Debug, Clone, Deserialize)]
pub struct OnnxCase {
    /// `simple`, `pytorch-converted`, `pytorch-operator` or `light`.
    pub suite: String,
    /// The case's name, e.g. `test_operator_index`.
    pub name: String,
    /// The case folder, relative to the generator's output folder.
    pub dir: String,
    /// Relative tolerance against the reference.
    pub rtol: f64,
    /// Absolute tolerance against the reference.
    pub atol: f64,
}

impl Index {
    /// Reads `<root>/index.json`.
    pub fn read(root: &Path) -> Result<Self, String> {
        let path = root.join("index.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
    }
}

/// One `test_data_set_<i>`: named inputs and the expected named outputs.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// `(input name, tensor)`, in the model's input order.
    pub inputs: Vec<(String, Tensor)>,
    /// `(output name, expected tensor)`, in the model's output order.
    pub expected: Vec<(String, Tensor)>,
}

/// How a case went on one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Loaded, and every output of every data set is within tolerance.
    Passed,
    /// Loaded, but a run failed or an output is out of tolerance.
    Failed,
    /// The backend refused the model (or the case's data could not be read).
    Unsupported,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Why it was not [`Verdict::Passed`] (the first line of the error), or empty.
    pub why: String,
    /// The largest |got - expected| over every float output of every data set that ran, when
    /// the outputs could be compared.
    pub max_abs_error: Option<f64>,
}

impl Outcome {
    fn new(verdict: Verdict, why: impl Into<String>) -> Self {
        Self {
            verdict,
            why: why.into(),
            max_abs_error: None,
        }
    }

    /// Whether the backend loaded the model.
    pub fn loaded(&self) -> bool {
        self.verdict != Verdict::Unsupported
    }
}

/// The first line of an error message, at most 200 characters.
pub fn first_line(s: impl ToString) -> String {
    let s = s.to_string();
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// Reads every `test_data_set_<i>` of `case_dir`, in order, naming input `j` `inputs[j]` and
/// output `j` `outputs[j]`.
pub fn read_data_sets(
    case_dir: &Path,
    inputs: &[String],
    outputs: &[String],
) -> Result<Vec<DataSet>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(case_dir)
        .map_err(|e| format!("reading {}: {e}", case_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let read = |dir: &Path, prefix: &str, names: &[String]| {
        names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let path = dir.join(format!("{prefix}_{j}.pb"));
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                let tensor = decode_tensor_proto(&bytes).map_err(first_line)?.tensor;
                Ok((name.clone(), tensor))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    dirs.iter()
        .map(|dir| {
            Ok(DataSet {
                inputs: read(dir, "input", inputs)?,
                expected: read(dir, "output", outputs)?,
            })
        })
        .collect()
}

fn floats(t: &Tensor) -> Option<Vec<f64>> {
    match t {
        Tensor::F16(a) => Some(a.iter().map(|x| x.to_f64()).collect()),
        Tensor::F32(a) => Some(a.iter().map(|&x| f64::from(x)).collect()),
        Tensor::F64(a) => Some(a.iter().copied().collect()),
        _ => None,
    }
}

/// Compares `got` with `want` as `numpy.testing.assert_allclose` does (|got - want| <= atol +
/// rtol * |want|, NaN equals NaN, infinities must match; other element types must be equal).
/// Returns the largest absolute difference (0 for equal non-float tensors), or why they differ
/// with that difference when known.
pub fn compare(
    got: &Tensor,
    want: &Tensor,
    rtol: f64,
    atol: f64,
) -> Result<f64, (String, Option<f64>)> {
    if got.element_type() != want.element_type() || got.shape() != want.shape() {
        let why = format!(
            "expected {}, got {}",
            inference::describe(want),
            inference::describe(got)
        );
        return Err((why, None));
    }
    let (Some(g), Some(w)) = (floats(got), floats(want)) else {
        return if got == want {
            Ok(0.0)
        } else {
            Err(("values differ".to_owned(), None))
        };
    };
    let same = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a == b;
    let max = g
        .iter()
        .zip(&w)
        .filter(|(a, b)| !same(**a, **b))
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    let close = |a: f64, b: f64| {
        same(a, b) || (a.is_finite() && b.is_finite() && (a - b).abs() <= atol + rtol * b.abs())
    };
    match g.iter().zip(&w).position(|(a, b)| !close(*a, *b)) {
        Some(i) => Err((
            format!("element {i}: expected {}, got {}", w[i], g[i]),
            Some(max),
        )),
        None => Ok(max),
    }
}

/// Loads `model_bytes` with `options`, runs every data set, and compares the outputs with the
/// expected ones. Never panics on a model or engine problem: a panic inside a run becomes
/// [`Verdict::Failed`].
pub fn evaluate(
    model_bytes: Vec<u8>,
    sets: &[DataSet],
    options: &LoadOptions,
    rtol: f64,
    atol: f64,
) -> Outcome {
    let model = match Model::load(model_bytes, options) {
        Ok(m) => m,
        Err(e) => return Outcome::new(Verdict::Unsupported, first_line(e)),
    };
    check(&model, sets, rtol, atol)
}

/// Runs every data set on a loaded model and compares the outputs with the expected ones; see
/// [`evaluate`].
pub fn check(model: &Model, sets: &[DataSet], rtol: f64, atol: f64) -> Outcome {
    let mut max_abs_error: Option<f64> = None;
    let mut failure: Option<String> = None;
    for (i, set) in sets.iter().enumerate() {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            model.run(set.inputs.iter().map(|(n, t)| (n.clone(), t.clone())))
        }));
        let outputs = match run {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(e)) => {
                return Outcome {
                    max_abs_error,
                    ..Outcome::new(Verdict::Failed, format!("data set {i}: {}", first_line(e)))
                }
            }
            Err(_) => {
                return Outcome {
                    max_abs_error,
                    ..Outcome::new(Verdict::Failed, format!("data set {i}: the run panicked"))
                }
            }
        };
        for (name, want) in &set.expected {
            let Some(got) = outputs.get(name) else {
                failure.get_or_insert_with(|| format!("data set {i}: no output `{name}`"));
                continue;
            };
            let err = match compare(got, want, rtol, atol) {
                Ok(err) => Some(err),
                Err((why, err)) => {
                    failure.get_or_insert_with(|| format!("data set {i}, output `{name}`: {why}"));
                    err
                }
            };
            if let Some(err) = err {
                max_abs_error = Some(max_abs_error.map_or(err, |m| m.max(err)));
            }
        }
    }
    match failure {
        Some(why) => Outcome {
            max_abs_error,
            ..Outcome::new(Verdict::Failed, why)
        },
        None => Outcome {
            max_abs_error,
            ..Outcome::new(Verdict::Passed, "")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inference::ndarray::ArrayD;

    fn f32s(v: &[f32]) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(vec![v.len()], v.to_vec()).unwrap())
    }

    #[test]
    fn compare_reports_the_largest_difference_within_and_beyond_tolerance() {
        let want = f32s(&[1.0, 2.0, f32::NAN]);
        assert_eq!(compare(&want, &want, 0.0, 0.0), Ok(0.0));
        let near = f32s(&[1.0005, 2.0, f32::NAN]);
        let err = compare(&near, &want, 0.0, 1e-3).unwrap();
        assert!((err - 0.0005).abs() < 1e-6, "{err}");
        let (why, err) = compare(&near, &want, 0.0, 1e-4).unwrap_err();
        assert!(why.starts_with("element 0"), "{why}");
        assert!((err.unwrap() - 0.0005).abs() < 1e-6);
        let (why, err) = compare(&f32s(&[1.0]), &want, 0.0, 1.0).unwrap_err();
        assert!(why.contains("expected"), "{why}");
        assert_eq!(err, None);
    }
}
