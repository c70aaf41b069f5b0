//! The `model-tools` command as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

use inference::test_support::{models_dir, ort_library};

fn model_tools(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_model-tools"))
        .args(args)
        .current_dir(models_dir().join(".."))
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn eval_reports_the_mlp_accuracy_and_latency_on_tract() {
    let out = model_tools(&["eval", "models/digits_mlp.onnx", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["examples"], 450);
    assert!(report["accuracy"].as_f64().unwrap() >= 0.95, "{report}");
    assert!(report["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn eval_feeds_the_cnn_rows_reshaped_to_its_input() {
    let out = model_tools(&[
        "eval",
        "models/digits_cnn.onnx",
        "--batch-size",
        "32",
        "--limit",
        "100",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("100 examples"), "{stdout}");
    assert!(stdout.contains("per call of 32"), "{stdout}");
}

#[test]
fn eval_agrees_across_backends() {
    let Some(lib) = ort_library("eval_agrees_across_backends") else {
        return;
    };
    let lib = lib.to_string_lossy().into_owned();
    let accuracy = |backend: &[&str]| {
        let mut args = vec!["eval", "models/digits_mlp_int8.onnx", "--json"];
        args.extend(backend);
        let out = model_tools(&args);
        assert!(out.status.success(), "{}", text(&out).1);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["correct"]
            .as_u64()
            .unwrap()
    };
    let tract = accuracy(&[]);
    let ort = accuracy(&["--backend", "ort", "--ort-library", &lib]);
    assert!(
        tract.abs_diff(ort) <= 2,
        "tract {tract} vs ort {ort} correct of 450"
    );
}

#[test]
fn inspect_prints_json_metadata() {
    let out = model_tools(&["inspect", "models/digits_cnn.onnx", "--json"]);
    assert!(out.status.success());
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        meta["inputs"][0]["shape"],
        serde_json::json!(["N", 1, 8, 8])
    );
    assert_eq!(meta["inputs"][0]["element_type"], "float32");
    assert_eq!(meta["opsets"][0]["version"], 17);
}

#[test]
fn failures_exit_1_with_the_cause_and_usage_errors_exit_2() {
    let missing_ort = Command::new(env!("CARGO_BIN_EXE_model-tools"))
        .args(["eval", "models/digits_mlp.onnx", "--backend", "ort"])
        .current_dir(models_dir().join(".."))
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert_eq!(missing_ort.status.code(), Some(1));
    let (_, stderr) = text(&missing_ort);
    assert!(
        stderr.starts_with("model-tools: failed to load"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken: PathBuf = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"\x08\x07garbage").unwrap();
    let out = model_tools(&["inspect", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("not a valid ONNX model"),
        "{}",
        text(&out).1
    );

    let out = model_tools(&["eval", "models/digits_mlp.onnx", "--backend", "tensorflow"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("[possible values: tract, ort, auto, auto-ort]"),
        "{}",
        text(&out).1
    );
}
