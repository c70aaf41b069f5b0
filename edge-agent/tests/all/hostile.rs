//! Hostile requests against a running agent (issue: a 90-byte request killed it): each gets a
//! clear JSON error, and the agent keeps serving.

use inference::test_support::model_bytes;
use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent, ADMIN};

/// The agent still answers a real inference correctly.
pub async fn assert_serving(agent: &Agent) {
    let (status, out) = agent.infer("digits", None, &mlp_request(&digits(1))).await;
    assert_eq!(status, 200, "{out}");
}

#[tokio::test]
async fn shapes_larger_than_the_data_get_400_without_allocating() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    for shape in [
        json!([1_000_000_000u64]),
        json!([i64::MAX, 2]),
        json!([i64::MAX, i64::MAX]),
        json!([0, i64::MAX, i64::MAX]),
    ] {
        let body =
            json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": [1]}]});
        let (status, out) = agent.infer("digits", None, &body).await;
        assert_eq!(status, 400, "{shape}: {out}");
        assert!(out["error"].as_str().unwrap().contains("input"), "{out}");
    }
    assert_serving(&agent).await;
}

#[tokio::test]
async fn model_configs_with_huge_numbers_are_refused_by_key() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    for (config, key) in [
        (json!({"max_concurrency": u64::MAX}), "max_concurrency"),
        (json!({"max_queue": u64::MAX}), "max_queue"),
        (json!({"intra_op_threads": u64::MAX}), "intra_op_threads"),
        (
            json!({"batching": {"max_batch_size": u64::MAX}}),
            "batching.max_batch_size",
        ),
        (
            json!({"batching": {"preferred_batch_sizes": [0]}}),
            "batching.preferred_batch_sizes",
        ),
    ] {
        let r = agent
            .push_bytes("other", 1, model_bytes("digits_mlp.onnx"), config.clone())
            .await;
        assert_eq!(r.status(), 400, "{config}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(key),
            "{config}: {body}"
        );
    }
    let r = agent.get("/v1/models/other").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_serving(&agent).await;
}

#[tokio::test]
async fn a_request_over_the_memory_budget_gets_413_and_others_still_run() {
    let agent = Agent::start_with(|c| {
        c.limits.max_inflight_request_bytes = 1 << 20;
    })
    .await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    // 64 KiB of JSON counts 24 times: more than the whole 1 MiB budget.
    let rows = vec![vec![0.5f32; 64]; 200];
    let (status, out) = agent.infer("digits", None, &mlp_request(&rows)).await;
    assert_eq!(status, 413, "{out}");
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("limits.max_inflight_request_bytes"),
        "{out}"
    );
    assert_serving(&agent).await;
}

#[tokio::test]
async fn every_client_error_is_json() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    // A path that percent-decodes to invalid UTF-8, a method the route does not serve, a
    // version that is not a number, an unknown route.
    let cases = [
        (reqwest::Method::GET, "/v2/models/%FF%FE/ready", 400),
        (reqwest::Method::DELETE, "/v2/models/digits/infer", 405),
        (
            reqwest::Method::GET,
            "/v2/models/digits/versions/x/ready",
            400,
        ),
        (reqwest::Method::GET, "/no/such/route", 404),
    ];
    for (method, path, expected) in cases {
        let r = agent
            .client
            .request(method.clone(), format!("{}{path}", agent.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{method} {path}");
        let ct = r.headers()[reqwest::header::CONTENT_TYPE].clone();
        assert_eq!(ct, "application/json", "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    assert_serving(&agent).await;
}

#[tokio::test]
async fn blobs_left_by_an_interrupted_push_are_collected_at_start() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    // What a kill -9 between the blob's rename and the SQLite insert leaves: a complete blob
    // that no version refers to, and a temp file.
    let blobs = agent.data_dir.join("blobs");
    let orphan = blobs.join("ab".repeat(32));
    std::fs::write(&orphan, vec![7u8; 4096]).unwrap();
    std::fs::write(blobs.join(".tmp-cd-42"), b"partial").unwrap();
    let kept: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.len() == 64 && *n != *orphan.file_name().unwrap())
        .collect();
    assert_eq!(kept.len(), 1);
    let agent = agent.restart().await;
    assert!(!orphan.exists(), "the orphaned blob must be removed");
    assert!(!blobs.join(".tmp-cd-42").exists());
    assert!(blobs.join(&kept[0]).exists(), "the referenced blob stays");
    assert_serving(&agent).await;
}

/// A valid multipart push body: the model part and a config part.
fn multipart_body(boundary: &str, model: &[u8], config: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"; filename=\"m.onnx\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(model);
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"config\"\r\n\r\n{config}\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    body
}

/// How a fuzz case mangles a valid upload.
#[derive(Debug, Clone)]
enum Mangle {
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
    Insert(usize, Vec<u8>),
    ManyParts(usize),
    WrongBoundary,
}

fn mangle() -> impl proptest::strategy::Strategy<Value = Mangle> {
    use proptest::prelude::*;
    prop_oneof![
        any::<usize>().prop_map(Mangle::Truncate),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(Mangle::Flip),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, b)| Mangle::Insert(at, b)),
        (1usize..2000).prop_map(Mangle::ManyParts),
        Just(Mangle::WrongBoundary),
    ]
}

#[test]
fn mangled_multipart_uploads_get_4xx_and_never_5xx() {
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent = rt.block_on(async {
        let agent = Agent::start().await;
        agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
        agent
    });
    let model = model_bytes("digits_mlp.onnx");
    let boundary = "fuzzBoundary7";
    let valid = multipart_body(boundary, &model, r#"{"max_queue": 8}"#);
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&mangle(), |m| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let mut body = valid.clone();
            let mut content_type = format!("multipart/form-data; boundary={boundary}");
            match &m {
                Mangle::Truncate(at) => body.truncate(at % body.len()),
                Mangle::Flip(flips) => {
                    for (at, b) in flips {
                        let i = at % body.len();
                        body[i] ^= b | 1;
                    }
                }
                Mangle::Insert(at, bytes) => {
                    let i = at % body.len();
                    body.splice(i..i, bytes.iter().copied());
                }
                Mangle::ManyParts(n) => {
                    let mut parts = Vec::new();
                    for i in 0..*n {
                        parts.extend_from_slice(
                            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"x{i}\"\r\n\r\nv\r\n")
                                .as_bytes(),
                        );
                    }
                    parts.extend_from_slice(&body);
                    body = parts;
                }
                Mangle::WrongBoundary => content_type = "multipart/form-data; boundary=other".into(),
            }
            let status = rt.block_on(async {
                agent
                    .admin(reqwest::Method::PUT, &format!("/v1/models/fuzz/versions/{case}"))
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
            assert!(
                status.is_client_error() || status == 201,
                "{m:?}: got {status}"
            );
            Ok(())
        })
        .unwrap();
    rt.block_on(assert_serving(&agent));
}
