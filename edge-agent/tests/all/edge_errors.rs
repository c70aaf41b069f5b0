//! The HTTP edge's errors: one version rule on every route, JSON for every rejection, and
//! `500` bodies that hold no internal text.

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{Agent, ADMIN};

/// Sends the request with the admin token; returns status, `x-request-id` and the body,
/// which must be JSON.
async fn send(request: reqwest::RequestBuilder) -> (u16, String, Value) {
    let r = request.bearer_auth(ADMIN).send().await.unwrap();
    let status = r.status().as_u16();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let is_json = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
    let text = r.text().await.unwrap();
    assert!(is_json, "status {status}: not JSON: {text}");
    (status, id, serde_json::from_str(&text).unwrap())
}

fn method_of(verb: edge_agent::Verb) -> Method {
    match verb {
        edge_agent::Verb::Get => Method::GET,
        edge_agent::Verb::Put => Method::PUT,
        edge_agent::Verb::Post => Method::POST,
        edge_agent::Verb::Delete => Method::DELETE,
        edge_agent::Verb::Any => Method::GET,
    }
}

#[tokio::test]
async fn a_version_that_is_not_1_or_more_is_the_same_400_on_every_route() {
    let agent = Agent::start().await;
    agent.push("m", 1, "digits_mlp.onnx", json!({})).await;
    let versioned: Vec<_> = edge_agent::route_table()
        .into_iter()
        .filter(|(_, path)| path.contains("{version}"))
        .collect();
    assert!(versioned.len() >= 8, "{versioned:?}");
    for (verb, path) in versioned {
        for bad in ["0", "x", "-1"] {
            let url = format!(
                "{}{}",
                agent.url,
                path.replace("{model}", "m")
                    .replace("{name}", "f")
                    .replace("{version}", bad)
            );
            let request = agent
                .client
                .request(method_of(verb), url)
                .json(&json!({"inputs": []}));
            let (status, _, body) = send(request).await;
            assert_eq!(
                (status, body),
                (
                    400,
                    json!({"error": format!("version `{bad}` is not an integer of 1 or more")})
                ),
                "{verb:?} {path} with version {bad}"
            );
        }
    }
}

#[tokio::test]
async fn query_multipart_and_method_rejections_are_json_with_their_status() {
    let agent = Agent::start().await;
    let push = format!("{}/v1/models/m/versions/1", agent.url);
    let (status, _, body) = send(agent.client.put(format!("{push}?activate=maybe"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("activate"),
        "{body}"
    );
    let (status, _, body) = send(agent.client.put(format!("{push}?bogus=1"))).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = send(agent.client.put(&push).body("not multipart")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{body}"
    );
    let deploy = format!("{}/v1/functions/f", agent.url);
    let (status, _, body) = send(agent.client.put(&deploy).body("x")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = send(agent.client.patch(&push)).await;
    assert_eq!(status, 405, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

/// Makes the agent's blob directories unusable: the next write fails with an I/O error
/// naming a path under the data dir.
fn break_storage(agent: &Agent) {
    for dir in ["blobs", "function-blobs"] {
        let path = agent.data_dir.join(dir);
        std::fs::remove_dir_all(&path).unwrap();
        std::fs::write(&path, b"not a directory").unwrap();
    }
}

#[tokio::test]
async fn a_500_says_internal_error_and_the_request_id_and_nothing_internal() {
    let agent = Agent::start().await;
    break_storage(&agent);
    let form = || {
        Form::new().part(
            "model",
            Part::bytes(inference::test_support::model_bytes("digits_mlp.onnx"))
                .file_name("model.onnx"),
        )
    };
    let url = format!("{}/v1/models/m/versions/1", agent.url);
    let (status, id, body) = send(agent.client.put(&url).multipart(form())).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        json!({"error": format!("internal error (request id {id})")})
    );
    let request = agent
        .client
        .put(&url)
        .header("x-request-id", "trace-500")
        .multipart(form());
    let (status, id, body) = send(request).await;
    assert_eq!((status, id.as_str()), (500, "trace-500"));
    assert_eq!(
        body,
        json!({"error": "internal error (request id trace-500)"})
    );

    let spin = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;
    let form = Form::new().part(
        "wasm",
        Part::bytes(spin.as_bytes().to_vec()).file_name("f.wasm"),
    );
    let request = agent
        .client
        .put(format!("{}/v1/functions/f", agent.url))
        .multipart(form);
    let (status, id, body) = send(request).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        json!({"error": format!("internal error (request id {id})")})
    );
}
