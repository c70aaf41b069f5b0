//! Triton's Python HTTP client (`tritonclient.http`) works against the agent unchanged.

use inference::test_support::identity_model;
use inference::ElementType;
use serde_json::json;

use crate::support::{Agent, INFER};

#[tokio::test]
async fn tritons_python_client_works_unchanged() {
    let python = match std::env::var("EDGE_ML_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            let required = ["EDGE_ML_REQUIRE_ORT", "CI"]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
            assert!(
                !required,
                "EDGE_ML_PYTHON is not set; run scripts/test.sh, which installs tritonclient"
            );
            eprintln!("skipping tritons_python_client_works_unchanged: EDGE_ML_PYTHON is not set (scripts/test.sh sets it)");
            return;
        }
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
