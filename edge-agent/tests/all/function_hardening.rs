//! Edge functions against careless or hostile admins and guests, over HTTP: flooding stdout,
//! refused deploys that must leave nothing behind, manifests with extreme numbers, truncated
//! uploads, and errors that must say "function".

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Agent, ADMIN, INFER};

async fn deploy(agent: &Agent, name: &str, wasm: &str, manifest: &str) -> (u16, Value) {
    agent.deploy(name, wasm.as_bytes().to_vec(), manifest).await
}

/// The error message of a JSON error body.
fn error(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {body}"))
}

const START: &str = r#"(module (func (export "_start")))"#;

/// Writes 100 MiB of `x` to stdout in 64 KiB writes (ignoring errors), then exits cleanly.
const FLOOD: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start") (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $again
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 1600))))))"#;

#[tokio::test]
async fn a_guest_flooding_stdout_gets_502_naming_the_limit_not_a_truncated_200() {
    let agent = Agent::start_with(|c| c.functions.max_stdout_bytes = 1 << 20).await;
    let (status, body) = deploy(&agent, "flood", FLOOD, r#"{"timeout_ms": 20000}"#).await;
    assert_eq!(status, 201, "{body}");
    let r = agent
        .client
        .get(format!("{}/fn/flood", agent.url))
        .bearer_auth(INFER)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error(&body),
        "function `flood` wrote more than 1048576 bytes to stdout (functions.max_stdout_bytes)"
    );
    let metrics = agent.metrics_text().await;
    assert!(
        metrics.contains(
            r#"edge_agent_function_invocations_total{function="flood",outcome="output_too_large"} 1"#
        ),
        "{metrics}"
    );
    assert_eq!(
        agent.get("/v2/health/ready").send().await.unwrap().status(),
        200
    );
}

fn cache_files(agent: &Agent) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(agent.data_dir.join("wasm-cache")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_refused_deploy_leaves_no_artifact_and_no_metric_series() {
    let agent = Agent::start().await;
    // 17 pages (1.06 MiB) of initial memory under a 1 MiB manifest: refused after compiling.
    let big = r#"(module (memory 17) (func (export "_start")))"#;
    let (status, body) = deploy(&agent, "refused", big, r#"{"memory_mib": 1}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(error(&body).contains("`memory_mib` (1 MiB)"), "{body}");
    assert_eq!(cache_files(&agent), Vec::<String>::new());
    let metrics = agent.metrics_text().await;
    assert!(!metrics.contains("refused"), "{metrics}");

    // The same module deployed within its memory keeps its artifact when another deploy of
    // it is refused.
    let (status, body) = deploy(&agent, "roomy", big, r#"{"memory_mib": 2}"#).await;
    assert_eq!(status, 201, "{body}");
    let cached = cache_files(&agent);
    assert_eq!(cached.len(), 1, "{cached:?}");
    let (status, body) = deploy(&agent, "refused", big, r#"{"memory_mib": 1}"#).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(cache_files(&agent), cached);
    let metrics = agent.metrics_text().await;
    assert!(!metrics.contains("refused"), "{metrics}");
    assert!(
        metrics.contains(
            r#"edge_agent_function_cold_starts_total{function="roomy",source="compiled"} 1"#
        ),
        "{metrics}"
    );
    let r = agent.get("/fn/roomy").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Sends `method path` with the admin token and returns status and JSON body.
async fn admin(agent: &Agent, method: Method, path: &str) -> (u16, Value) {
    let r = agent.admin(method, path).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn function_management_errors_say_function() {
    let agent = Agent::start().await;
    let missing = [
        (Method::GET, "/v1/functions/nope", 404),
        (Method::DELETE, "/v1/functions/nope", 404),
        (Method::DELETE, "/v1/functions/nope/versions/1", 404),
        (Method::POST, "/v1/functions/nope/versions/1/activate", 404),
        (Method::POST, "/v1/functions/nope/rollback", 404),
    ];
    for (method, path, status) in missing {
        let (got, body) = admin(&agent, method.clone(), path).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_eq!(error(&body), "function `nope` not found", "{method} {path}");
    }
    let (status, body) = deploy(&agent, "one", START, "{}").await;
    assert_eq!(status, 201, "{body}");
    let present = [
        (
            Method::DELETE,
            "/v1/functions/one/versions/9",
            404,
            "function `one` has no version 9",
        ),
        (
            Method::POST,
            "/v1/functions/one/versions/9/activate",
            404,
            "function `one` has no version 9",
        ),
        (
            Method::POST,
            "/v1/functions/one/rollback",
            409,
            "function `one` has no earlier active version",
        ),
        (
            Method::DELETE,
            "/v1/functions/one/versions/1",
            409,
            "delete the function",
        ),
    ];
    for (method, path, status, says) in present {
        let (got, body) = admin(&agent, method.clone(), path).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        let text = error(&body);
        assert!(text.contains(says), "{method} {path}: {text}");
        assert!(!text.contains("model"), "{method} {path}: {text}");
    }
    let (status, body) = deploy(&agent, "-bad", START, "{}").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error(&body).starts_with("invalid function name `-bad`"),
        "{body}"
    );
}

#[tokio::test]
async fn extreme_manifest_numbers_get_400_naming_the_key() {
    let agent = Agent::start().await;
    let extremes = [
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "0",
        "1e400",
        "1.5",
        "\"8\"",
        "null",
    ];
    for key in ["memory_mib", "timeout_ms", "fuel", "max_instances"] {
        for value in extremes {
            if key == "fuel" && value == "18446744073709551615" {
                continue; // a valid fuel
            }
            if key == "fuel" && value == "null" {
                continue; // no fuel: unmetered
            }
            let manifest = format!(r#"{{"{key}": {value}}}"#);
            let (status, body) = deploy(&agent, "extreme", START, &manifest).await;
            assert_eq!(status, 400, "{manifest}: {body}");
            assert!(
                error(&body).contains(&format!("`{key}`")),
                "{manifest}: {body}"
            );
        }
    }
    for version in ["0", "-1", "18446744073709551616"] {
        let manifest = format!(r#"{{"models": [{{"name": "digits", "version": {version}}}]}}"#);
        let (status, body) = deploy(&agent, "extreme", START, &manifest).await;
        assert_eq!(status, 400, "{manifest}: {body}");
        assert!(error(&body).contains("version"), "{manifest}: {body}");
    }
    let (status, body) = deploy(
        &agent,
        "extreme",
        START,
        r#"{"fuel": 18446744073709551615}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(agent.get("/fn/extreme").send().await.unwrap().status(), 200);
    assert_eq!(
        agent.get("/v2/health/ready").send().await.unwrap().status(),
        200
    );
}

/// A multipart body with one part `name` of 64 KiB, and its boundary.
fn multipart(part: &str, filename: &str) -> (Vec<u8>, &'static str) {
    let boundary = "hardening-boundary-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'z', 64 << 10));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, boundary)
}

/// Sends a `PUT path` whose multipart body is cut in the middle: the head declares the full
/// length, half the body follows, then the client stops writing. Returns the raw response.
async fn truncated_put(agent: &Agent, path: &str, part: &str) -> String {
    let (body, boundary) = multipart(part, "upload.bin");
    let addr = agent.url.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut response),
    );
    let _ = read.await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_truncated_multipart_upload_gets_400_json_for_functions_and_models() {
    let agent = Agent::start().await;
    for (path, part) in [
        ("/v1/functions/cut", "wasm"),
        ("/v1/models/cut/versions/1", "model"),
    ] {
        let response = truncated_put(&agent, path, part).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let body: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {response}"));
        assert!(error(&body).contains("multipart upload"), "{path}: {body}");
    }
    // A body that ends early but whose length is what the head declared is a 400 as well.
    let (body, boundary) = multipart("wasm", "f.wasm");
    let r = agent
        .admin(Method::PUT, "/v1/functions/cut")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body[..body.len() / 2].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(error(&body).contains("multipart"), "{body}");
    assert_eq!(
        agent.get("/v2/health/ready").send().await.unwrap().status(),
        200
    );
}
