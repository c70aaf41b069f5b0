//! The agent as a child process after a corpus of hostile requests, the ones that once killed
//! or hung it included: it is still running and still answers inference.

use std::time::Duration;

use inference::test_support::model_bytes;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{infer_digit, start, wait_ready, write_config};
use crate::support::{ADMIN, INFER};

/// Sends raw bytes on a fresh connection and reads whatever comes back until the server closes
/// it (bounded in time).
async fn raw(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    out
}

fn infer_request(addr: &str, body: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {INFER}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn the_agent_survives_a_corpus_of_hostile_requests() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = format!(
        "[[auth.tokens]]\nname = \"admin\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [[auth.tokens]]\nname = \"app\"\nrole = \"infer\"\nsha256 = \"{}\"\n",
        edge_agent::hash_token(ADMIN),
        edge_agent::hash_token(INFER)
    );
    let (config, url) = write_config(dir.path(), &tokens);
    let addr = url.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::new();
    let mut agent = start(&config).await;
    wait_ready(&client, &url).await;
    let push = |name: &str, bytes: Vec<u8>, config: Value| {
        let form = Form::new()
            .part("model", Part::bytes(bytes).file_name("model.onnx"))
            .text("config", config.to_string());
        client
            .put(format!("{url}/v1/models/{name}/versions/1"))
            .bearer_auth(ADMIN)
            .multipart(form)
            .send()
    };
    let r = push("digits", model_bytes("digits_mlp.onnx"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let mut answered = Vec::new();
    // 1. The 90-byte request that aborted the process (32 GB allocated before the check).
    let bodies = [
        r#"{"inputs":[{"name":"input","shape":[1000000000],"datatype":"FP32","data":[1]}]}"#.to_owned(),
        r#"{"inputs":[{"name":"input","shape":[9223372036854775807,2],"datatype":"FP32","data":[1]}]}"#.to_owned(),
        r#"{"inputs":[{"name":"input","shape":[1000000000],"datatype":"BYTES","data":["a"]}]}"#.to_owned(),
        format!(r#"{{"inputs":[{{"name":"input","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#, "[".repeat(5000), "]".repeat(5000)),
        r#"{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[1,"a",true]}]}"#.to_owned(),
        "\u{0}\u{1}garbage".to_owned(),
    ];
    for body in &bodies {
        let response = raw(&addr, &infer_request(&addr, body, "")).await;
        answered.push((body.chars().take(60).collect::<String>(), response));
    }
    // 2. Binary extension lies: header length past the body, sizes past the data.
    let header = r#"{"inputs":[{"name":"input","shape":[1000000000],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
    let body = format!("{header}12345678");
    for extra in [
        format!("Inference-Header-Content-Length: {}\r\n", header.len()),
        "Inference-Header-Content-Length: 18446744073709551615\r\n".to_owned(),
        "Inference-Header-Content-Length: -5\r\n".to_owned(),
    ] {
        let response = raw(&addr, &infer_request(&addr, &body, &extra)).await;
        answered.push((extra, response));
    }
    // 3. Framing abuse: a declared length far beyond the body, a huge chunk size, junk.
    for bytes in [
        format!("POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INFER}\r\nContent-Length: 99999999999\r\n\r\n{{}}").into_bytes(),
        format!("POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INFER}\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc\r\n").into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all".to_vec(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(100_000)).into_bytes(),
        format!("GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(1_000_000)).into_bytes(),
        b"GET /v2/models/%FF%FE/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
    ] {
        let response = raw(&addr, &bytes).await;
        answered.push((String::from_utf8_lossy(&bytes[..40.min(bytes.len())]).into_owned(), response));
    }
    // 4. Pushed configs whose numbers overflowed semaphores; a model that is not ONNX.
    for (name, bytes, config) in [
        (
            "a",
            model_bytes("digits_mlp.onnx"),
            json!({"max_concurrency": u64::MAX}),
        ),
        (
            "b",
            model_bytes("digits_mlp.onnx"),
            json!({"max_queue": u64::MAX, "batching": {}}),
        ),
        ("c", b"not a model".to_vec(), json!({})),
        (
            "d",
            model_bytes("digits_mlp.onnx")[..100].to_vec(),
            json!({}),
        ),
    ] {
        let r = push(name, bytes, config).await.unwrap();
        assert_eq!(r.status(), 400, "push {name}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    // 5. A truncated multipart upload.
    let boundary = "XyZ";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"; filename=\"m.onnx\"\r\n\r\n").into_bytes();
    body.extend_from_slice(&model_bytes("digits_mlp.onnx")[..500]);
    let request = [
        format!("PUT /v1/models/e/versions/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
        body,
    ]
    .concat();
    let response = raw(&addr, &request).await;
    answered.push(("truncated multipart".to_owned(), response));

    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent died during the corpus"
    );
    for (what, response) in &answered {
        let text = String::from_utf8_lossy(response);
        // Either a 4xx with a JSON body, or the connection closed by the server's framing
        // checks; never a 5xx.
        if let Some(status) = text.split(' ').nth(1) {
            assert!(status.starts_with('4'), "{what}: {text}");
            if !text.contains("content-length: 0") {
                assert!(text.contains("application/json"), "{what}: {text}");
            }
        }
    }
    let out = infer_digit(&client, &url, INFER).await;
    assert_eq!(out["outputs"][0]["shape"], json!([1, 10]), "{out}");
    assert!(agent.try_wait().unwrap().is_none());
    agent.kill().await.unwrap();
}
