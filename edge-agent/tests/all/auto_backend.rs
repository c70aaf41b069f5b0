//! The default backend of a pushed model, `auto`: tract when tract loads the model, else ONNX
//! Runtime, with tract's reason shown in `/v1/models/{m}`; `auto-ort` the other way round.

use ::inference::test_support::{model, model_bytes, node, ort_library, value_info};
use ::inference::ElementType;
use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent};

/// `y = Det(x)` over float32[2, 2]: ONNX Runtime runs it; tract has no `Det`.
fn det_model() -> Vec<u8> {
    model(
        vec![node("Det", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(2), Some(2)])],
        vec![value_info("y", ElementType::F32, &[])],
        vec![],
    )
}

#[tokio::test]
async fn auto_serves_on_ort_what_tract_refuses_and_shows_why() {
    if ort_library("auto_serves_on_ort_what_tract_refuses_and_shows_why").is_none() {
        return;
    }
    let agent = Agent::start().await;
    let r = agent.push_bytes("det", 1, det_model(), json!({})).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");

    let summary = agent.get_json("/v1/models/det").await;
    let version = &summary["versions"][0];
    assert_eq!(version["config"]["backend"], "auto", "{summary}");
    assert_eq!(version["backend"], "ort", "{summary}");
    assert_eq!(version["fallback"]["from"], "tract", "{summary}");
    let reason = version["fallback"]["reason"].as_str().unwrap();
    assert!(reason.contains("tract backend cannot load"), "{reason}");
    assert!(reason.contains("Det"), "{reason}");
    let one = agent.get_json("/v1/models/det/versions/1").await;
    assert_eq!(one["version"]["fallback"], version["fallback"], "{one}");

    let meta = agent.get_json("/v2/models/det").await;
    assert_eq!(meta["platform"], "onnxruntime_onnx", "{meta}");
    let request = json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]});
    let (status, out) = agent.infer("det", None, &request).await;
    assert_eq!(status, 200, "{out}");
    let det = out["outputs"][0]["data"][0].as_f64().unwrap();
    assert!((det + 2.0).abs() < 1e-5, "{out}");
}

#[tokio::test]
async fn auto_keeps_on_tract_what_tract_loads_and_auto_ort_prefers_ort() {
    if ort_library("auto_keeps_on_tract_what_tract_loads_and_auto_ort_prefers_ort").is_none() {
        return;
    }
    let agent = Agent::start().await;
    agent.push("mlp", 1, "digits_mlp.onnx", json!({})).await;
    let summary = agent.get_json("/v1/models/mlp").await;
    let version = &summary["versions"][0];
    assert_eq!(version["config"]["backend"], "auto", "{summary}");
    assert_eq!(version["backend"], "tract", "{summary}");
    assert_eq!(version["fallback"], Value::Null, "{summary}");
    assert_eq!(
        agent.get_json("/v2/models/mlp").await["platform"],
        "tract_onnx"
    );

    agent
        .push("mlp", 2, "digits_mlp.onnx", json!({"backend": "auto-ort"}))
        .await;
    let summary = agent.get_json("/v1/models/mlp").await;
    let version = &summary["versions"][1];
    assert_eq!(version["config"]["backend"], "auto-ort", "{summary}");
    assert_eq!(version["backend"], "ort", "{summary}");
    assert_eq!(version["fallback"], Value::Null, "{summary}");
    let (status, out) = agent.infer("mlp", Some(2), &mlp_request(&digits(1))).await;
    assert_eq!(status, 200, "{out}");
}

#[tokio::test]
async fn a_backend_the_agent_does_not_know_is_refused_with_the_accepted_names() {
    let agent = Agent::start().await;
    let r = agent
        .push_bytes(
            "m",
            1,
            model_bytes("digits_mlp.onnx"),
            json!({"backend": "tvm"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in ["`tvm`", "`tract`", "`ort`", "`auto`", "`auto-ort`"] {
        assert!(msg.contains(name), "{msg}");
    }
}
