//! Triton's Python HTTP client (`tritonclient.http`) works against the agent unchanged.

use inference::test_support::identity_model;
use inference::ElementType;
use serde_json::json;

use crate::support::{Agent, INFER};

#[tokio::test]
async fn tritons_python_client_works_unchanged() {
    let Some(python) = inference::test_support::setup_var(
        "EDGE_ML_PYTHON",
        "tritons_python_client_works_unchanged",
        true,
    ) else {
        return;
    };
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let r = agent
        .push_bytes("words", 1, identity_model(ElementType::String), json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/triton_client.py");
    let host = agent.url.trim_start_matches("http://").to_owned();
    let out = tokio::process::Command::new(python)
        .args([script, &host, INFER, "digits", "words"])
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tritonclient failed:\n{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}
