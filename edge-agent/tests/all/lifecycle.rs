//! Restart, overload and shutdown.

use inference::test_support::{f32_initializer, model, node, value_info};
use inference::ElementType;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent};

/// Ten 384×384 MatMuls: slow enough (milliseconds) to fill a queue.
fn slow_model() -> Vec<u8> {
    let n = 384;
    let w: Vec<f32> = (0..n * n).map(|i| ((i % 7) as f32 - 3.0) * 1e-3).collect();
    let mut nodes = Vec::new();
    let mut prev = "x".to_owned();
    for i in 0..10 {
        let out = if i == 9 {
            "y".to_owned()
        } else {
            format!("h{i}")
        };
        let mut nd = node("MatMul", &[&prev, "w"], &[&out]);
        nd.name = format!("mm{i}");
        nodes.push(nd);
        prev = out;
    }
    model(
        nodes,
        vec![value_info("x", ElementType::F32, &[None, Some(n)])],
        vec![value_info("y", ElementType::F32, &[None, Some(n)])],
        vec![f32_initializer("w", &[n as i64, n as i64], &w)],
    )
}

fn slow_request(rows: usize) -> Value {
    json!({"inputs": [{"name": "x", "shape": [rows, 384], "datatype": "FP32", "data": vec![0.5f32; rows * 384]}]})
}

#[tokio::test]
async fn a_restart_keeps_every_model_and_its_active_version() {
    let agent = Agent::start().await;
    agent.push("a", 1, "digits_mlp.onnx", json!({})).await;
    agent.push("a", 2, "digits_mlp_int8.onnx", json!({})).await;
    agent
        .push("b", 1, "digits_cnn.onnx", json!({"max_concurrency": 1}))
        .await;
    agent
        .admin(Method::POST, "/v1/models/a/versions/1/activate")
        .send()
        .await
        .unwrap();
    let before: Value = agent.get_json("/v1/models").await;

    let agent = agent.restart().await;
    let after: Value = agent.get_json("/v1/models").await;
    assert_eq!(before, after);
    assert_eq!(after[0]["active_version"], 1);
    let (status, out) = agent.infer("a", None, &mlp_request(&digits(1))).await;
    assert_eq!((status, out["model_version"].as_str().unwrap()), (200, "1"));
    // Rollback history survives too.
    let r: Value = agent
        .admin(Method::POST, "/v1/models/a/rollback")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["active_version"], 2);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let agent = Agent::start().await;
    let r = agent
        .push_bytes(
            "slow",
            1,
            slow_model(),
            json!({"max_concurrency": 1, "max_queue": 1}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let request = slow_request(64);
    let calls = (0..12).map(|_| {
        let agent = &agent;
        let request = &request;
        async move {
            agent
                .client
                .post(format!("{}/v2/models/slow/infer", agent.url))
                .bearer_auth(crate::support::INFER)
                .json(request)
                .send()
                .await
                .unwrap()
        }
    });
    let responses = futures::future::join_all(calls).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let busy: Vec<_> = responses.iter().filter(|r| r.status() == 503).collect();
    assert!(ok >= 2, "{ok} succeeded");
    assert!(!busy.is_empty(), "no 503 from 12 calls on a queue of 1");
    assert_eq!(ok + busy.len(), 12);
    assert_eq!(busy[0].headers()["retry-after"], "1");
    // Other models are unaffected, and the slow one recovers.
    agent.push("fast", 1, "digits_mlp.onnx", json!({})).await;
    assert_eq!(
        agent.infer("fast", None, &mlp_request(&digits(1))).await.0,
        200
    );
    assert_eq!(agent.infer("slow", None, &slow_request(1)).await.0, 200);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let agent = Agent::start().await;
    agent.push_bytes("slow", 1, slow_model(), json!({})).await;
    let in_flight = agent.spawn_infer("slow", slow_request(256));
    agent.wait_for_in_flight(1).await;
    let base = agent.url.clone();
    agent.stop().await;
    let finished = in_flight.await.unwrap();
    assert_eq!(finished.status(), 200, "the in-flight request finished");
    assert!(
        reqwest::get(format!("{base}/v2/health/live"))
            .await
            .is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn a_hot_swap_lets_in_flight_requests_finish_on_the_old_version() {
    let agent = Agent::start().await;
    // Two versions with the same bytes: one blob on disk, two loaded models.
    assert_eq!(
        agent
            .push_bytes("swap", 1, slow_model(), json!({}))
            .await
            .status(),
        201
    );
    let r = agent
        .admin(Method::PUT, "/v1/models/swap/versions/2?activate=false")
        .multipart(
            reqwest::multipart::Form::new()
                .part("model", reqwest::multipart::Part::bytes(slow_model())),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        std::fs::read_dir(agent.data_dir.join("blobs"))
            .unwrap()
            .count(),
        1
    );

    let old = agent.spawn_infer("swap", slow_request(256));
    agent.wait_for_pending("swap", 1).await;
    let r = agent
        .admin(Method::POST, "/v1/models/swap/versions/2/activate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, new) = agent.infer("swap", None, &slow_request(1)).await;
    assert_eq!((status, new["model_version"].as_str().unwrap()), (200, "2"));
    let old: Value = old.await.unwrap().json().await.unwrap();
    assert_eq!(
        old["model_version"], "1",
        "the in-flight request stayed on v1"
    );
    let metrics = agent.metrics_text().await;
    for version in [1, 2] {
        let series = format!(
            "edge_agent_inference_pending_requests{{model=\"swap\",version=\"{version}\"}} 0\n"
        );
        assert!(
            metrics.contains(&series),
            "v{version} still pending:\n{metrics}"
        );
    }
}
