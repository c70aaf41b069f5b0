//! Helpers for tests and benches across the workspace; not part of the serving API.
//!
//! They locate the committed sample models, decide whether ONNX Runtime tests run or skip, and
//! build tiny ONNX graphs without Python.

use std::path::PathBuf;

use crate::onnx::{self, proto as pb};
use crate::{Dim, ElementType};

mod skips;
pub use skips::skipped;

/// Set to require ONNX Runtime: its tests then fail instead of skipping. The README's test
/// command sets it; so does CI (`CI`).
pub const REQUIRE_ORT_ENV: &str = "EDGE_ML_REQUIRE_ORT";

/// The repository's `models/` folder.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("models")
}

/// The `x_<split>` rows (64 floats each) and `y_<split>` labels of `models/digits.npz`.
pub fn digits(split: &str) -> (Vec<f32>, Vec<i64>) {
    let file = std::fs::File::open(models_dir().join("digits.npz")).expect("models/digits.npz");
    let mut npz = ndarray_npy::NpzReader::new(file).expect("an .npz archive");
    let x: ndarray::ArrayD<f32> = npz.by_name(&format!("x_{split}")).expect("float32 x");
    let y: ndarray::ArrayD<i64> = npz.by_name(&format!("y_{split}")).expect("int64 y");
    (x.iter().copied().collect(), y.iter().copied().collect())
}

/// Reads a file from `models/`.
pub fn model_bytes(name: &str) -> Vec<u8> {
    let path = models_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn required() -> bool {
    [REQUIRE_ORT_ENV, "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty() && s != "0" && s != "false"))
}

/// The value of an environment variable that `scripts/env.sh` sets up, or `None` after
/// printing why `test` skips. Panics when the setup is required (`EDGE_ML_REQUIRE_ORT` or `CI`
/// set) but the variable is absent or, with `must_be_file`, not a file.
pub fn setup_var(var: &str, test: &str, must_be_file: bool) -> Option<String> {
    let why = match std::env::var(var) {
        Ok(v) if !must_be_file || std::path::Path::new(&v).is_file() => return Some(v),
        Ok(v) => format!("{var} = `{v}` is not a file"),
        Err(_) => format!("{var} is not set"),
    };
    if required() {
        panic!(
            "{test}: this test is required here but {why}; run scripts/test.sh, which sets it up"
        );
    }
    skipped(test, &why);
    None
}

/// The path of a program found on `PATH`, or `None` after printing why `test` skips. Panics
/// when the setup is required (`EDGE_ML_REQUIRE_ORT` or `CI` set) but the program is missing.
pub fn program(name: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_some() {
        return found;
    }
    if required() {
        panic!("{test}: this test is required here but `{name}` is not on PATH; run scripts/test.sh, which installs it");
    }
    skipped(test, &format!("`{name}` is not on PATH"));
    None
}

/// The ONNX Runtime library from `ORT_DYLIB_PATH`, or `None` after printing why the caller
/// skips; see [`setup_var`].
pub fn ort_library(test: &str) -> Option<PathBuf> {
    setup_var(crate::ORT_DYLIB_ENV, test, true).map(PathBuf::from)
}

/// A value info for a tensor of `ty` with the given dims (`None` for a symbolic `N`).
pub fn value_info(name: &str, ty: ElementType, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    let dims: Vec<Dim> = dims
        .iter()
        .map(|d| d.map_or_else(|| Dim::Symbolic("N".to_owned()), Dim::Fixed))
        .collect();
    onnx::make_value_info(name, ty, Some(&dims))
}

/// A node of `op` reading `inputs` and writing `outputs`.
pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    onnx::make_node(op, &format!("{op}_0"), inputs, outputs)
}

/// Serializes a model of one graph at opset 17.
pub fn model(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    initializers: Vec<pb::TensorProto>,
) -> Vec<u8> {
    let graph = pb::GraphProto {
        node: nodes,
        name: "test".to_owned(),
        initializer: initializers,
        input: inputs,
        output: outputs,
        ..Default::default()
    };
    onnx::encode_model(&onnx::new_model(graph, 17, "inference-tests"))
}

/// `y = Identity(x)` over a tensor of `ty` shaped `[N, 3]`.
pub fn identity_model(ty: ElementType) -> Vec<u8> {
    model(
        vec![node("Identity", &["x"], &["y"])],
        vec![value_info("x", ty, &[None, Some(3)])],
        vec![value_info("y", ty, &[None, Some(3)])],
        vec![],
    )
}

/// A float32 initializer.
pub fn f32_initializer(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    // Built field by field, so that tests can give dims the data does not fill.
    pb::TensorProto {
        dims: dims.to_vec(),
        data_type: ElementType::F32.onnx_code(),
        float_data: data.to_vec(),
        name: name.to_owned(),
        ..Default::default()
    }
}

/// `y = Add(x, w)` over float32[4], where the initializer `w` keeps its data in an external
/// file: `location` plus the other `external_data` entries given (`offset`, `length`).
pub fn external_data_model(location: &str, entries: &[(&str, &str)]) -> Vec<u8> {
    let mut w = pb::TensorProto {
        dims: vec![4],
        data_type: ElementType::F32.onnx_code(),
        name: "w".to_owned(),
        data_location: Some(pb::tensor_proto::DataLocation::External as i32),
        ..Default::default()
    };
    w.external_data = std::iter::once(("location", location))
        .chain(entries.iter().copied())
        .map(|(key, value)| pb::StringStringEntryProto {
            key: key.to_owned(),
            value: value.to_owned(),
        })
        .collect();
    model(
        vec![node("Add", &["x", "w"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(4)])],
        vec![value_info("y", ElementType::F32, &[Some(4)])],
        vec![w],
    )
}

/// The model `bytes` with one more operator set imported.
pub fn with_opset(bytes: &[u8], domain: &str, version: i64) -> Vec<u8> {
    let mut proto = onnx::decode_model(bytes).expect("an ONNX model");
    proto.opset_import.push(pb::OperatorSetIdProto {
        domain: domain.to_owned(),
        version,
    });
    onnx::encode_model(&proto)
}
