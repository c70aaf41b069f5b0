//! The agent serves the real-model test set (third-party models from PyPI wheels, written by
//! `tests/real_models/generate.py` to `$EDGE_ML_REAL_MODELS`) from a `--model-dir` on the
//! default `auto` backend, and both official Python v2 clients, Triton's `tritonclient.http`
//! and KServe's `InferenceRESTClient`, get python onnxruntime's outputs on every model and
//! data set (`tests/real_model_clients.py`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Agent, INFER};

/// The names and case folders of the real models in `<cases>/index.json`.
fn real_models(cases: &Path) -> Vec<(String, PathBuf)> {
    let path = cases.join("index.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let index: Value = serde_json::from_str(&text).unwrap();
    index["models"]
        .as_array()
        .expect("index.json has `models`")
        .iter()
        .map(|m| {
            let name = m["name"].as_str().expect("a model's `name`").to_owned();
            let dir = cases.join(m["dir"].as_str().expect("a model's `dir`"));
            (name, dir)
        })
        .collect()
}

/// A model dir `<name>/1/model.onnx` (symlinks to the cases) without any `config.toml`, so
/// every model is on the default `auto` backend.
fn model_dir(models: &[(String, PathBuf)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, case) in models {
        let version = dir.path().join(name).join("1");
        std::fs::create_dir_all(&version).unwrap();
        let model = case.join("model.onnx");
        assert!(model.is_file(), "{} is missing", model.display());
        std::os::unix::fs::symlink(&model, version.join("model.onnx")).unwrap();
    }
    dir
}

#[tokio::test]
async fn both_python_clients_match_onnxruntime_on_every_real_model() {
    let test = "both_python_clients_match_onnxruntime_on_every_real_model";
    let Some(cases) = inference::test_support::setup_var("EDGE_ML_REAL_MODELS", test, false) else {
        return;
    };
    let Some(python) = inference::test_support::setup_var("EDGE_ML_PYTHON", test, true) else {
        return;
    };
    let Some(ort) = inference::test_support::ort_library(test) else {
        return;
    };
    let cases = PathBuf::from(cases);
    let models = real_models(&cases);
    assert!(models.len() >= 6, "only {} real models", models.len());
    let dir = model_dir(&models);
    let model_dir = dir.path().to_path_buf();
    let agent = Agent::start_with(move |c| {
        c.model_dir = Some(model_dir);
        c.ort_library = Some(ort);
        // The detection models' binary inputs are a few MB.
        c.limits.max_request_bytes = 64 << 20;
    })
    .await;

    let ready = agent.get("/v2/health/ready").send().await.unwrap();
    let status = ready.status();
    assert_eq!(status, 200, "{}", ready.text().await.unwrap());

    let script = format!("{}/tests/real_model_clients.py", env!("CARGO_MANIFEST_DIR"));
    let host = agent.url.trim_start_matches("http://").to_owned();
    let out = tokio::process::Command::new(python)
        .args([script.as_str(), &host, INFER])
        .arg(&cases)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(stdout.trim_end().ends_with("ok"), "{text}");
    for (name, _) in &models {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        assert!(
            line.contains("triton ok") && line.contains("kserve ok"),
            "{line}"
        );
    }
}
