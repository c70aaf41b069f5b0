//! The tests' python: the full ONNX checker and python onnxruntime on a written model (the
//! tests' venv has onnx and onnxruntime; `EDGE_ML_PYTHON`, set by scripts/env.sh).

use std::process::Command;

use inference::test_support::{self, models_dir};

/// Python onnxruntime and the full ONNX checker on a written model: the checker must pass and
/// the model must run; returns python's test-split accuracy.
pub fn python_check(test: &str, bytes: &[u8]) -> Option<f64> {
    let python = test_support::setup_var("EDGE_ML_PYTHON", test, true)?;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quantized.onnx");
    std::fs::write(&path, bytes).unwrap();
    let script = r#"
import json, sys
import numpy as np, onnx, onnxruntime as ort
path, data = sys.argv[1], sys.argv[2]
onnx.checker.check_model(onnx.load(path), full_check=True)
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
d = np.load(data)
x, y = d["x_test"], d["y_test"]
inp = sess.get_inputs()[0]
if len(inp.shape) == 4:
    x = x.reshape(-1, 1, 8, 8)
out = sess.run(None, {inp.name: x})[0]
print(json.dumps({"accuracy": float((out.argmax(1) == y).mean())}))
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .arg(models_dir().join("digits.npz"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{test}: python failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(report["accuracy"].as_f64().unwrap())
}

/// The full checker and an onnxruntime session on a model without digits semantics.
pub fn python_check_runs(test: &str, bytes: &[u8]) {
    let Some(python) = test_support::setup_var("EDGE_ML_PYTHON", test, true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, bytes).unwrap();
    let script = "import sys, onnx, onnxruntime as ort\n\
                  onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)\n\
                  ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
