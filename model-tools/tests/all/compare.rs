//! `compare`: the library on the sample models, and the command's output and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

use inference::test_support::{identity_model, models_dir};
use inference::{BackendKind, ElementType};
use model_tools::compare::{CompareError, CompareOptions};

fn model(name: &str) -> PathBuf {
    models_dir().join(name)
}

fn digits() -> PathBuf {
    models_dir().join("digits.npz")
}

fn tract_only() -> CompareOptions {
    CompareOptions {
        input_key: Some("x_test".to_owned()),
        labels_key: Some("y_test".to_owned()),
        backends: vec![BackendKind::Tract],
        latency_runs: 5,
        ..CompareOptions::default()
    }
}

fn model_tools(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_model-tools"))
        .args(args)
        .current_dir(models_dir().join(".."))
        .output()
        .unwrap()
}

#[test]
fn a_model_compared_with_itself_is_identical() {
    let mlp = model("digits_mlp.onnx");
    let report = model_tools::compare(&mlp, &mlp, &digits(), &tract_only()).unwrap();
    assert_eq!(report.examples, 450);
    assert_eq!(report.outputs.len(), 2);
    for o in &report.outputs {
        assert_eq!(o.sqnr_db, f64::INFINITY, "{o:?}");
        assert_eq!((o.max_abs_error, o.mean_abs_error), (0.0, 0.0));
        assert!((o.cosine_similarity - 1.0).abs() < 1e-12, "{o:?}");
    }
    let a = report.accuracy.unwrap();
    assert_eq!(a.output, "logits");
    assert_eq!(a.delta_points, 0.0);
    assert!(a.reference > 0.95, "{a:?}");
    assert_eq!(report.size_ratio, 1.0);
    assert!(report.latency[0].reference.p50_ms.unwrap() > 0.0);
}

/// In its own process: ONNX Runtime's library is loaded once per process, so another test
/// that loaded the real one would make this path unused.
#[test]
fn a_backend_that_cannot_load_is_reported_not_fatal() {
    let out = model_tools(&[
        "compare",
        "models/digits_mlp.onnx",
        "models/digits_mlp_int8.onnx",
        "--data",
        "models/digits.npz",
        "--input-key",
        "x_test",
        "--backend",
        "tract,ort",
        "--ort-library",
        "/nonexistent/libonnxruntime.so",
        "--latency-runs",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["reference"]["backend"], "tract", "{json}");
    let ort = &json["latency"][1];
    assert_eq!(ort["backend"], "ort", "{json}");
    assert_eq!(
        ort["candidate"]["p50_ms"],
        serde_json::Value::Null,
        "{json}"
    );
    let why = ort["candidate"]["error"].as_str().unwrap();
    assert!(why.contains("/nonexistent/libonnxruntime.so"), "{why}");
}

#[test]
fn the_command_prints_a_table_and_json_with_finite_sqnr_for_int8() {
    let args = [
        "compare",
        "models/digits_mlp.onnx",
        "models/digits_mlp_int8.onnx",
        "--data",
        "models/digits.npz",
        "--input-key",
        "x_test",
        "--labels",
        "y_test",
        "--backend",
        "tract",
        "--latency-runs",
        "5",
    ];
    let out = model_tools(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in ["SQNR dB", "logits", "accuracy   reference", "latency p50"] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }

    let out = model_tools(&[&args[..], &["--json"]].concat());
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sqnr = json["outputs"][0]["sqnr_db"].as_f64().unwrap();
    assert!(sqnr.is_finite() && sqnr > 10.0, "{json}");
    assert!(json["size_ratio"].as_f64().unwrap() < 0.5, "{json}");
    assert_eq!(json["gate_failures"], serde_json::json!([]));

    // Identical models: SQNR is written "inf".
    let same = [
        "compare",
        "models/digits_mlp.onnx",
        "models/digits_mlp.onnx",
        "--data",
        "models/digits.npz",
        "--input-key",
        "x_test",
        "--backend",
        "tract",
        "--latency-runs",
        "1",
        "--json",
    ];
    let out = model_tools(&same);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outputs"][0]["sqnr_db"], "inf", "{json}");
    assert_eq!(json["accuracy"], serde_json::Value::Null);
}

#[test]
fn gates_fail_with_exit_3_and_say_why() {
    let base = [
        "compare",
        "models/digits_mlp.onnx",
        "models/digits_mlp_int8.onnx",
        "--data",
        "models/digits.npz",
        "--input-key",
        "x_test",
        "--labels",
        "y_test",
        "--backend",
        "tract",
        "--latency-runs",
        "1",
        "--json",
    ];
    let out = model_tools(&base);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sqnr = json["outputs"][0]["sqnr_db"].as_f64().unwrap();
    let drop = -json["accuracy"]["delta_points"].as_f64().unwrap();

    let run = |extra: &[String]| {
        let mut args: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        args.extend_from_slice(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        model_tools(&args)
    };
    let passing = run(&[
        format!("--min-sqnr={}", sqnr - 1.0),
        format!("--max-accuracy-drop={}", drop + 0.5),
    ]);
    assert_eq!(
        passing.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&passing.stderr)
    );

    let low_sqnr = run(&[format!("--min-sqnr={}", sqnr + 1.0)]);
    assert_eq!(low_sqnr.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&low_sqnr.stderr);
    assert!(
        stderr.contains("gate failed: output `logits` has SQNR"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&low_sqnr.stdout).unwrap();
    assert!(!json["gate_failures"].as_array().unwrap().is_empty());

    let accuracy = run(&[format!("--max-accuracy-drop={}", drop - 0.1)]);
    assert_eq!(accuracy.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&accuracy.stderr);
    assert!(
        stderr.contains("gate failed: accuracy went from"),
        "{stderr}"
    );

    // The accuracy gate without labels is a usage mistake, not a gate failure.
    let no_labels = model_tools(&[
        "compare",
        "models/digits_mlp.onnx",
        "models/digits_mlp_int8.onnx",
        "--data",
        "models/digits.npz",
        "--input-key",
        "x_test",
        "--max-accuracy-drop",
        "1",
    ]);
    assert_eq!(no_labels.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_labels.stderr).contains("needs --labels"));

    let help = model_tools(&["compare", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("3  a gate failed"), "{help}");
}

#[test]
fn malformed_models_and_missing_arrays_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"\x08\x07garbage").unwrap();
    let mlp = model("digits_mlp.onnx");
    let err = model_tools::compare(&mlp, &broken, &digits(), &tract_only()).unwrap_err();
    assert!(matches!(err, CompareError::Model { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("broken.onnx") && text.contains("not a valid ONNX model"),
        "{text}"
    );

    let missing_input = CompareOptions {
        input_key: None,
        ..tract_only()
    };
    let err = model_tools::compare(&mlp, &mlp, &digits(), &missing_input).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no array `input`")
            && text.contains("--input-key")
            && text.contains("`x_test`"),
        "{text}"
    );

    let wrong_key = CompareOptions {
        input_key: Some("x_validation".to_owned()),
        ..tract_only()
    };
    let text = model_tools::compare(&mlp, &mlp, &digits(), &wrong_key)
        .unwrap_err()
        .to_string();
    assert!(text.contains("no array `x_validation`"), "{text}");

    let wrong_labels = CompareOptions {
        labels_key: Some("labels".to_owned()),
        ..tract_only()
    };
    let text = model_tools::compare(&mlp, &mlp, &digits(), &wrong_labels)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("no labels array `labels`") && text.contains("`y_test`"),
        "{text}"
    );

    let not_npz = model_tools::compare(&mlp, &mlp, &broken, &tract_only())
        .unwrap_err()
        .to_string();
    assert!(not_npz.contains("not an .npz archive"), "{not_npz}");

    let identity = dir.path().join("identity.onnx");
    std::fs::write(&identity, identity_model(ElementType::F32)).unwrap();
    let other = model_tools::compare(&mlp, &identity, &digits(), &tract_only()).unwrap_err();
    assert!(matches!(other, CompareError::Mismatch(_)), "{other}");
    assert!(other.to_string().contains("no input `input`"), "{other}");
}
