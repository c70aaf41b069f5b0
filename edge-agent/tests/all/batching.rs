//! Dynamic batching: concurrent calls merge into batches and each gets its own answer.

use inference::test_support::model_bytes;
use inference::{LoadOptions, Model, Tensor};
use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent};

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains("model=\"batched\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn concurrent_calls_are_merged_and_split_back() {
    let agent = Agent::start().await;
    agent
        .push(
            "batched",
            1,
            "digits_mlp.onnx",
            json!({"max_concurrency": 1, "batching": {"max_batch_size": 16, "max_queue_delay_us": 20000}}),
        )
        .await;
    let model = Model::load(model_bytes("digits_mlp.onnx"), &LoadOptions::default()).unwrap();
    let rows = digits(48);
    let calls = rows.iter().enumerate().map(|(i, row)| {
        let agent = &agent;
        let mut request = mlp_request(std::slice::from_ref(row));
        request["id"] = json!(i.to_string());
        // Every third call asks for one output only, so batches mix output selections.
        if i % 3 == 0 {
            request["outputs"] = json!([{"name": "probabilities"}]);
        }
        async move { agent.infer("batched", None, &request).await }
    });
    let results = futures::future::join_all(calls).await;
    for (i, (status, out)) in results.into_iter().enumerate() {
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["id"], i.to_string());
        let alone = model
            .run([(
                "input",
                Tensor::from_shape_vec(&[1, 64], rows[i].clone()).unwrap(),
            )])
            .unwrap();
        let outputs = out["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), if i % 3 == 0 { 1 } else { 2 });
        for o in outputs {
            let want = alone
                .get(o["name"].as_str().unwrap())
                .unwrap()
                .as_array::<f32>()
                .unwrap();
            assert_eq!(o["shape"], json!([1, 10]));
            for (g, w) in o["data"].as_array().unwrap().iter().zip(want.iter()) {
                let g = g.as_f64().unwrap() as f32;
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "call {i}: {g} vs {w}"
                );
            }
        }
    }
    let text = agent.metrics_text().await;
    let rows_computed = metric(&text, "edge_agent_inference_batch_size_sum");
    let batches = metric(&text, "edge_agent_inference_batch_size_count");
    assert_eq!(rows_computed, 48.0);
    assert!(
        batches < 48.0,
        "48 concurrent calls ran in {batches} batches: nothing merged"
    );
}

#[tokio::test]
async fn a_bad_call_in_a_batch_fails_alone() {
    let agent = Agent::start().await;
    agent
        .push(
            "batched",
            1,
            "digits_mlp.onnx",
            json!({"batching": {"max_batch_size": 8, "max_queue_delay_us": 20000}}),
        )
        .await;
    let good = mlp_request(&digits(1));
    let bad = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]}],
                     "outputs": [{"name": "nope"}]});
    let (a, b, c) = tokio::join!(
        agent.infer("batched", None, &good),
        agent.infer("batched", None, &bad),
        agent.infer("batched", None, &good)
    );
    assert_eq!(a.0, 200);
    assert_eq!(c.0, 200);
    assert_eq!(b.0, 400, "{}", b.1);
    assert!(b.1["error"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn batching_needs_a_batch_axis() {
    let agent = Agent::start().await;
    let fixed = inference::test_support::model(
        vec![inference::test_support::node("Relu", &["x"], &["y"])],
        vec![inference::test_support::value_info(
            "x",
            inference::ElementType::F32,
            &[Some(2)],
        )],
        vec![inference::test_support::value_info(
            "y",
            inference::ElementType::F32,
            &[Some(2)],
        )],
        vec![],
    );
    let r = agent
        .push_bytes("fixed", 1, fixed, json!({"batching": {}}))
        .await;
    assert_eq!(r.status(), 400);
    let msg: Value = r.json().await.unwrap();
    assert!(
        msg["error"]
            .as_str()
            .unwrap()
            .contains("variable first (batch) axis"),
        "{msg}"
    );
}
