//! `model-tools bench` as a user runs it.

use std::process::{Command, Output};

use inference::test_support::{models_dir, ort_library};
use serde_json::Value;

fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_model-tools"))
        .arg("bench")
        .args(args)
        .current_dir(models_dir().join(".."))
        .output()
        .unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The table rows of `backend`: (batch, the rest of the line).
fn rows<'a>(stdout: &'a str, backend: &str) -> Vec<(&'a str, Vec<&'a str>)> {
    stdout
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(backend))
        .map(|l| {
            let mut cols = l.split_whitespace().skip(1);
            (cols.next().unwrap(), cols.collect())
        })
        .collect()
}

#[test]
fn bench_measures_both_backends_at_each_batch() {
    let Some(lib) = ort_library("bench_measures_both_backends_at_each_batch") else {
        return;
    };
    let lib = lib.to_string_lossy().into_owned();
    let common = [
        "models/digits_mlp.onnx",
        "--batch",
        "1,4",
        "--iterations",
        "5",
        "--warm-up",
        "1",
        "--ort-library",
        &lib,
    ];
    let (code, stdout, stderr) = bench(&common);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for backend in ["tract", "ort"] {
        let rows = rows(&stdout, backend);
        assert_eq!(rows.len(), 2, "{stdout}");
        for ((batch, cols), want) in rows.iter().zip(["1", "4"]) {
            assert_eq!(*batch, want, "{stdout}");
            let numbers: Vec<f64> = cols.iter().map(|c| c.parse().unwrap()).collect();
            assert_eq!(numbers.len(), 4, "p50, p99, mean, samples/s: {stdout}");
            assert!(numbers.iter().all(|n| *n > 0.0), "{stdout}");
            assert!(numbers[0] <= numbers[1], "p50 <= p99: {stdout}");
        }
    }

    let mut args = common.to_vec();
    args.push("--json");
    let (code, stdout, stderr) = bench(&args);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["iterations"], 5);
    assert_eq!(report["warm_up"], 1);
    let got: Vec<(String, u64)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["iterations"], 5, "{r}");
            assert!(r["latency"]["p50_ms"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["throughput_per_s"].as_f64().unwrap() > 0.0, "{r}");
            (
                r["backend"].as_str().unwrap().to_owned(),
                r["batch"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [("tract", 1), ("tract", 4), ("ort", 1), ("ort", 4)]
        .map(|(b, n)| (b.to_owned(), n))
        .to_vec();
    assert_eq!(got, want);
}

#[test]
fn a_backend_that_cannot_load_is_reported_and_the_others_run() {
    let missing = "/nonexistent/libonnxruntime.so";
    let (code, stdout, stderr) = bench(&[
        "models/digits_cnn.onnx",
        "--batch",
        "2",
        "--iterations",
        "3",
        "--ort-library",
        missing,
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(rows(&stdout, "tract").len(), 1, "{stdout}");
    let ort = rows(&stdout, "ort");
    assert_eq!(ort.len(), 1, "{stdout}");
    assert_eq!(ort[0].0, "-", "{stdout}");
    assert_eq!(ort[0].1[0], "failed:", "{stdout}");
    assert!(ort[0].1.join(" ").contains(missing), "{stdout}");

    let (code, stdout, stderr) = bench(&[
        "models/digits_cnn.onnx",
        "--backend",
        "ort",
        "--iterations",
        "3",
        "--ort-library",
        missing,
    ]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stderr.contains("no backend could run `models/digits_cnn.onnx`"),
        "{stderr}"
    );
}

#[test]
fn a_batch_the_model_cannot_take_is_a_row_with_the_reason() {
    // The CNN takes any batch; a shape fixed at 1 takes only batch 1.
    let (code, stdout, stderr) = bench(&[
        "models/digits_cnn.onnx",
        "--backend",
        "tract",
        "--batch",
        "1,2",
        "--iterations",
        "2",
        "--shape",
        "input=1,1,8,8",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["ok"], true, "{report}");
    assert_eq!(rows[1]["ok"], false, "{report}");
    let error = rows[1]["error"].as_str().unwrap();
    assert!(
        error.contains("fixes its first dim at 1") && error.contains("--batch 1"),
        "{error}"
    );
}
