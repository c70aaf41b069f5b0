//! An agent built without edge functions (`--no-default-features --features ort`, the
//! ONNX-Runtime-only build of the README's "Shipped binary"): models are served as in every
//! build, the function routes answer 501 saying why, unknown paths 404, and a config with a
//! `[functions]` section still starts. `scripts/test.sh` runs this file in that build; in a
//! build with functions it is empty.
#![cfg(not(feature = "functions"))]

#[allow(
    dead_code,
    reason = "the shared support module has helpers this file does not use"
)]
#[path = "all/support.rs"]
mod support;

use inference::test_support::ort_library;
use serde_json::{json, Value};
use support::{digits, mlp_request, Agent, ADMIN};

/// Sends `method path` with the admin token: status and JSON body.
async fn call(agent: &Agent, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = agent
        .client
        .request(method, format!("{}{path}", agent.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn models_are_served_and_function_routes_say_they_are_not_built() {
    if ort_library("models_are_served_and_function_routes_say_they_are_not_built").is_none() {
        return;
    }
    // A [functions] section is accepted (one config serves every build) and ignored.
    let agent = Agent::start_with(|c| c.functions.max_queue = 8).await;

    // `ort` by name: the test build links tract too (the dev-dependency on `inference`), so
    // `auto` would pick tract here, where the shipped ORT-only agent has only ONNX Runtime.
    agent
        .push("digits", 1, "digits_mlp.onnx", json!({"backend": "ort"}))
        .await;
    let summary = agent.get_json("/v1/models/digits").await;
    assert_eq!(summary["versions"][0]["backend"], "ort", "{summary}");
    let (status, out) = agent.infer("digits", None, &mlp_request(&digits(1))).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["outputs"][0]["shape"], json!([1, 10]), "{out}");

    use reqwest::Method;
    for (method, path) in [
        (Method::GET, "/v1/functions"),
        (Method::GET, "/v1/functions/hello"),
        (Method::PUT, "/v1/functions/hello"),
        (Method::DELETE, "/v1/functions/hello"),
        (Method::POST, "/v1/functions/hello/rollback"),
        (Method::POST, "/fn/hello"),
        (Method::GET, "/fn/hello/some/path"),
    ] {
        let (status, body) = call(&agent, method.clone(), path).await;
        assert_eq!(status, 501, "{method} {path}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("built without edge functions"),
            "{method} {path}: {body}"
        );
    }
    let (status, body) = call(&agent, Method::GET, "/no/such/route").await;
    assert_eq!(status, 404, "{body}");
    agent.stop().await;
}
