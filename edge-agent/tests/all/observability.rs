//! `/metrics`, request ids and the OpenAPI document.

use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent};

#[tokio::test]
async fn metrics_count_requests_and_split_latency() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    for _ in 0..3 {
        assert_eq!(
            agent
                .infer("digits", None, &mlp_request(&digits(2)))
                .await
                .0,
            200
        );
    }
    let bad = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "INT8", "data": vec![0; 64]}]});
    assert_eq!(agent.infer("digits", None, &bad).await.0, 400);
    let text = agent.metrics_text().await;
    for needle in [
        r#"edge_agent_inference_requests_total{model="digits",version="1",outcome="success"} 3"#,
        r#"edge_agent_inference_requests_total{model="digits",version="1",outcome="invalid"} 1"#,
        r#"edge_agent_inference_queue_seconds_count{model="digits",version="1"} 3"#,
        r#"edge_agent_inference_compute_seconds_count{model="digits",version="1"} 3"#,
        r#"edge_agent_inference_batch_size_sum{model="digits",version="1"} 6"#,
        "edge_agent_loaded_models 1",
        "edge_agent_in_flight_requests",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_assigned() {
    let agent = Agent::start().await;
    let r = agent
        .client
        .get(format!("{}/v2/health/live", agent.url))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me");
    let r = agent
        .client
        .get(format!("{}/v2/health/live", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 16);
    let r = agent
        .client
        .get(format!("{}/no/such/route", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
}
