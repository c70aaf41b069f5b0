//! Triton's Python HTTP client (`tritonclient.http`) and KServe's Python v2 REST client
//! (`kserve.InferenceRESTClient`) work against the agent unchanged, on every model it serves
//! here: `digits` (FP32) and `words` (BYTES).

use inference::test_support::identity_model;
use inference::ElementType;
use serde_json::json;

use crate::support::{Agent, INFER};

/// Runs `tests/{script}` with the tests' Python against an agent serving `digits` and `words`;
/// the script prints `ok` when every check passes.
async fn run_client(test: &str, script: &str) {
    let Some(python) = inference::test_support::setup_var("EDGE_ML_PYTHON", test, true) else {
        return;
    };
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let r = agent
        .push_bytes("words", 1, identity_model(ElementType::String), json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let script = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let host = agent.url.trim_start_matches("http://").to_owned();
    let out = tokio::process::Command::new(python)
        .args([script.as_str(), &host, INFER, "digits", "words"])
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}

#[tokio::test]
async fn tritons_python_client_works_unchanged() {
    run_client("tritons_python_client_works_unchanged", "triton_client.py").await;
}

#[tokio::test]
async fn kserves_python_client_works_unchanged() {
    run_client("kserves_python_client_works_unchanged", "kserve_client.py").await;
}
