//! `convert fp16` on the sample models, checked by the real onnx checker, python onnxruntime,
//! ONNX Runtime through `inference`, and tract.

use std::path::{Path, PathBuf};
use std::process::Command;

use inference::test_support::{model_bytes, models_dir, ort_library, setup_var};
use inference::{BackendKind, ElementType, LoadOptions, Model};
use model_tools::compare::CompareOptions;
use model_tools::{compare, convert_fp16, Fp16Options};

/// Checks a model with `onnx.checker.check_model(full_check=True)` and classifies the test
/// digits with python onnxruntime; prints the accuracy of it and of the reference model, and
/// its io types.
const CHECK_AND_CLASSIFY: &str = r#"
import json, sys
import numpy as np, onnx, onnxruntime as ort
path, ref_path, npz = sys.argv[1:4]
onnx.checker.check_model(path, full_check=True)
d = np.load(npz)
x, y = d["x_test"], d["y_test"]
def classify(p):
    s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    shape = [len(x)] + [int(v) for v in i.shape[1:]]
    dtype = np.float16 if i.type == "tensor(float16)" else np.float32
    out = s.run(None, {i.name: x.reshape(shape).astype(dtype)})[0]
    return float((out.argmax(axis=1) == y).mean()), i.type, s.get_outputs()[0].type
acc, it, ot = classify(path)
ref, _, _ = classify(ref_path)
print(json.dumps({"accuracy": acc, "reference": ref, "input_type": it, "output_type": ot}))
"#;

/// The variants tested: float16 io or float32 io, with the default block list (compute in
/// float32 where ONNX Runtime's CPU provider has no float16 kernel) or without (float16
/// compute everywhere).
const VARIANTS: [(&str, bool, bool); 3] = [
    ("fp16", false, true),
    ("fp16io32", true, true),
    ("fp16all", false, false),
];

fn converted(dir: &Path, name: &str, variant: (&str, bool, bool)) -> PathBuf {
    let (suffix, keep_io_types, default_block_list) = variant;
    let options = Fp16Options {
        keep_io_types,
        default_block_list,
        ..Fp16Options::default()
    };
    let (bytes, report) = convert_fp16(&model_bytes(name), &options).unwrap();
    let ratio = report.output_bytes as f64 / report.input_bytes as f64;
    // Weights halve; the graph itself (names, nodes, Casts) does not, which on the 6 KB CNN
    // (72 conv weights) is a third of the file.
    assert!((0.45..0.7).contains(&ratio), "{name}: size ratio {ratio}");
    let path = dir.join(name.replace(".onnx", &format!("_{suffix}.onnx")));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn fp16_models_pass_the_onnx_checker_and_keep_their_accuracy_in_python_onnxruntime() {
    let test = "fp16_models_pass_the_onnx_checker_and_keep_their_accuracy_in_python_onnxruntime";
    let Some(python) = setup_var("EDGE_ML_PYTHON", test, true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["digits_mlp.onnx", "digits_cnn.onnx"] {
        for variant in VARIANTS {
            let keep_io_types = variant.1;
            let path = converted(dir.path(), name, variant);
            let out = Command::new(&python)
                .args(["-c", CHECK_AND_CLASSIFY])
                .arg(&path)
                .arg(models_dir().join(name))
                .arg(models_dir().join("digits.npz"))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {stderr}", path.display());
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let io = if keep_io_types {
                "tensor(float)"
            } else {
                "tensor(float16)"
            };
            assert_eq!(r["input_type"], io, "{name}: {r}");
            assert_eq!(r["output_type"], io, "{name}: {r}");
            let (acc, reference) = (
                r["accuracy"].as_f64().unwrap(),
                r["reference"].as_f64().unwrap(),
            );
            assert!(
                (acc - reference).abs() * 100.0 <= 0.5,
                "{name}: float16 accuracy {acc} vs float32 {reference}"
            );
        }
    }
}

#[test]
fn fp16_models_run_in_onnx_runtime_through_inference() {
    let Some(lib) = ort_library("fp16_models_run_in_onnx_runtime_through_inference") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["digits_mlp.onnx", "digits_cnn.onnx"] {
        for variant in VARIANTS {
            let keep_io_types = variant.1;
            let path = converted(dir.path(), name, variant);
            let options = LoadOptions::new(BackendKind::Ort).with_ort_library(&lib);
            let model = Model::load_file(&path, &options).unwrap();
            let io = if keep_io_types {
                ElementType::F32
            } else {
                ElementType::F16
            };
            assert_eq!(model.metadata().inputs[0].element_type, io);
            assert_eq!(model.metadata().outputs[0].element_type, io);
            let report = compare(
                &models_dir().join(name),
                &path,
                &models_dir().join("digits.npz"),
                &CompareOptions {
                    input_key: Some("x_test".to_owned()),
                    labels_key: Some("y_test".to_owned()),
                    backends: vec![BackendKind::Ort],
                    ort_library: Some(lib.clone()),
                    latency_runs: 5,
                    ..CompareOptions::default()
                },
            )
            .unwrap();
            assert_eq!(report.candidate.backend, BackendKind::Ort);
            let accuracy = report.accuracy.unwrap();
            assert!(accuracy.delta_points.abs() <= 0.5, "{name}: {accuracy:?}");
            for output in &report.outputs {
                // float16 keeps about 3 decimal digits: some 60 dB; 40 dB is a loud failure.
                assert!(
                    output.sqnr_db.is_finite() && output.sqnr_db > 40.0,
                    "{name} {}: {output:?}",
                    output.name
                );
            }
        }
    }
}

#[test]
fn the_command_writes_the_model_and_reports_what_stayed_float32() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("mlp_fp16.onnx");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_model-tools"))
            .args(args)
            .current_dir(models_dir().join(".."))
            .output()
            .unwrap()
    };
    let out_str = out_path.to_str().unwrap();
    let out = run(&[
        "convert",
        "fp16",
        "models/digits_mlp.onnx",
        out_str,
        "--keep-io-types",
        "--block-ops",
        "Relu,Softmax",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 nodes kept"), "{stdout}");
    assert!(stdout.contains("(Relu) (block-ops)"), "{stdout}");
    assert!(stdout.contains("(Gemm) (default-block-list)"), "{stdout}");
    let model = Model::inspect(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(model.inputs[0].element_type, ElementType::F32);

    let out = run(&[
        "convert",
        "fp16",
        "models/digits_mlp.onnx",
        out_str,
        "--json",
    ]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tensors_converted"], 4, "{report}");
    let model = Model::inspect(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(model.inputs[0].element_type, ElementType::F16);

    let help = String::from_utf8_lossy(&run(&["convert", "fp16", "--help"]).stdout).into_owned();
    assert!(help.contains("Default block list"), "{help}");

    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"\x08\x07garbage").unwrap();
    let out = run(&["convert", "fp16", broken.to_str().unwrap(), out_str]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to convert") && stderr.contains("not a valid ModelProto"),
        "{stderr}"
    );
}
