//! `/v1/models`: push, list, activate, roll back, delete, and the uploads it refuses.

use inference::test_support::model_bytes;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent};

#[tokio::test]
async fn push_list_activate_rollback_delete() {
    let agent = Agent::start().await;
    let first = agent
        .push(
            "digits",
            1,
            "digits_mlp.onnx",
            json!({"description": "mlp"}),
        )
        .await;
    assert_eq!(
        first["active_version"], 1,
        "the first version activates itself"
    );
    assert_eq!(first["versions"][0]["sha256"].as_str().unwrap().len(), 64);
    let second = agent
        .push("digits", 2, "digits_mlp_int8.onnx", json!({}))
        .await;
    assert_eq!(second["active_version"], 2);

    let list: Value = agent.get_json("/v1/models").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["versions"].as_array().unwrap().len(), 2);

    let v1: Value = agent.get_json("/v1/models/digits/versions/1").await;
    assert_eq!(v1["active"], false);
    assert_eq!(v1["version"]["config"]["description"], "mlp");

    let r = agent
        .admin(Method::POST, "/v1/models/digits/versions/1/activate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, out) = agent.infer("digits", None, &mlp_request(&digits(1))).await;
    assert_eq!(out["model_version"], "1");

    let r: Value = agent
        .admin(Method::POST, "/v1/models/digits/rollback")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["active_version"], 2,
        "rollback returns to the version active before"
    );

    let r = agent
        .admin(Method::DELETE, "/v1/models/digits/versions/2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "the active version cannot be deleted");
    let r = agent
        .admin(Method::DELETE, "/v1/models/digits/versions/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = agent
        .infer("digits", Some(1), &mlp_request(&digits(1)))
        .await;
    assert_eq!(status, 404);
    let r = agent
        .admin(Method::DELETE, "/v1/models/digits")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = agent.get("/v1/models/digits").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("`digits`"));
    let blobs = std::fs::read_dir(agent.data_dir.join("blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "deleting every version removes the blobs");
}

#[tokio::test]
async fn refused_uploads_leave_the_repository_unchanged() {
    let agent = Agent::start().await;
    agent.push("m", 1, "digits_mlp.onnx", json!({})).await;
    let before: Value = agent.get_json("/v1/models").await;

    let good = model_bytes("digits_mlp.onnx");
    let corrupted = good[..good.len() / 2].to_vec();
    let r = agent.push_bytes("m", 2, corrupted, json!({})).await;
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("failed to load") && msg.contains("not a valid ONNX model"),
        "{msg}"
    );

    let form = Form::new()
        .part("model", Part::bytes(good.clone()))
        .text("sha256", "00".repeat(32));
    let r = agent
        .admin(Method::PUT, "/v1/models/m/versions/2")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("sha256 mismatch"));

    let r = agent.push_bytes("m", 1, good.clone(), json!({})).await;
    assert_eq!(r.status(), 409, "versions are immutable");
    let r = agent
        .push_bytes("m", 2, good.clone(), json!({"backend": "tensorflow"}))
        .await;
    assert_eq!(r.status(), 400);
    let r = agent
        .push_bytes("m", 2, good.clone(), json!({"max_concurrency": 0}))
        .await;
    assert_eq!(r.status(), 400);
    let r = agent
        .push_bytes("bad/name", 1, good.clone(), json!({}))
        .await;
    assert_eq!(r.status(), 404, "a slash is not part of a route");
    let r = agent.push_bytes("-bad", 1, good.clone(), json!({})).await;
    assert_eq!(r.status(), 400);
    let r = agent.push_bytes("m", 0, good.clone(), json!({})).await;
    assert_eq!(r.status(), 400);
    let r = agent
        .admin(Method::PUT, "/v1/models/m/versions/3")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a raw body is not a multipart upload");
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("multipart"));
    let r = agent
        .push_bytes("m", 3, vec![0u8; 5 << 20], json!({}))
        .await;
    assert_eq!(r.status(), 413);

    let after: Value = agent.get_json("/v1/models").await;
    assert_eq!(before, after);
    let blobs = std::fs::read_dir(agent.data_dir.join("blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1);
}

#[tokio::test]
async fn a_model_on_ort_is_served_or_refused_clearly() {
    let agent = Agent::start().await;
    let r = agent
        .push_bytes(
            "cnn",
            1,
            model_bytes("digits_cnn.onnx"),
            json!({"backend": "ort"}),
        )
        .await;
    match inference::test_support::ort_library("a_model_on_ort_is_served_or_refused_clearly") {
        Some(_) => {
            assert_eq!(r.status(), 201);
            let meta: Value = agent.get_json("/v2/models/cnn").await;
            assert_eq!(meta["platform"], "onnxruntime_onnx");
        }
        None => {
            assert_eq!(r.status(), 400);
            let msg = r.json::<Value>().await.unwrap()["error"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(msg.contains("ONNX Runtime"), "{msg}");
        }
    }
}

#[tokio::test]
async fn the_model_dir_is_served_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("shipped").join("3");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("model.onnx"), model_bytes("digits_mlp.onnx")).unwrap();
    std::fs::write(
        dir.path().join("shipped").join("config.toml"),
        "max_concurrency = 1\n",
    )
    .unwrap();
    let model_dir = dir.path().to_path_buf();
    let agent = Agent::start_with(move |c| c.model_dir = Some(model_dir)).await;
    let summary: Value = agent.get_json("/v1/models/shipped").await;
    assert_eq!(summary["source"], "model_dir");
    assert_eq!(summary["active_version"], 3);
    assert_eq!(summary["versions"][0]["config"]["max_concurrency"], 1);
    let (status, _) = agent.infer("shipped", None, &mlp_request(&digits(1))).await;
    assert_eq!(status, 200);
    let r = agent
        .admin(Method::DELETE, "/v1/models/shipped")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("read-only"));
}
