//! Edge functions over HTTP: the example guests of `functions/` (built during the test run) and
//! hand-written hostile WAT guests, deployed to a running agent and called with a real client.

use reqwest::Method;
use serde_json::{json, Value};

use crate::guests::{guest, wat};
use crate::support::{digits, Agent, INFER};

async fn deploy(agent: &Agent, name: &str, wasm: Vec<u8>, manifest: Value) -> (u16, Value) {
    agent.deploy(name, wasm, &manifest.to_string()).await
}

async fn deploy_ok(agent: &Agent, name: &str, wasm: Vec<u8>, manifest: Value) -> Value {
    let (status, body) = deploy(agent, name, wasm, manifest).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Calls `path` with the infer token: status, headers and body text.
async fn call(
    agent: &Agent,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let r = agent
        .client
        .request(method, format!("{}{path}", agent.url))
        .bearer_auth(INFER)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

async fn get_text(agent: &Agent, path: &str) -> (u16, String) {
    let (s, _, b) = call(agent, Method::GET, path, Vec::new()).await;
    (s, b)
}

#[tokio::test]
async fn hello_answers_with_wagi_semantics_on_its_path_and_routes() {
    let Some(wasm) = guest("hello") else { return };
    let agent = Agent::start().await;
    let summary = deploy_ok(
        &agent,
        "hello",
        wasm.clone(),
        json!({"env": {"GREETING": "hi"}, "routes": [{"prefix": "/greet", "methods": ["GET"]}]}),
    )
    .await;
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    assert_eq!(summary["active_version"], 1);
    assert_eq!(summary["versions"][0]["sha256"], sha);

    let (status, headers, body) = call(
        &agent,
        Method::POST,
        "/fn/hello/a/b?name=edge",
        b"12345".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "hi, edge! (POST /a/b, 5 bytes)\n");
    assert_eq!(headers["x-powered-by"], "edge-fn");
    assert_eq!(headers["x-function"], "hello/1");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(headers.contains_key("x-request-id"));

    assert_eq!(
        get_text(&agent, "/greet/x?name=route").await,
        (200, "hi, route! (GET /x, 0 bytes)\n".into())
    );
    let (status, _, _) = call(&agent, Method::POST, "/greet/x", Vec::new()).await;
    assert_eq!(status, 404, "the route takes GET only");
    let greet = json!({"routes": [{"prefix": "/greet/"}]});
    let (status, body) = deploy(&agent, "other", wasm.clone(), greet).await;
    assert_eq!(status, 409, "{body}");
    let api = json!({"routes": [{"prefix": "/v2/models"}]});
    let (status, body) = deploy(&agent, "other", wasm.clone(), api).await;
    assert_eq!(status, 400, "{body}");
    let r = agent
        .client
        .get(format!("{}/fn/hello", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = agent
        .client
        .get(format!("{}/greet", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(get_text(&agent, "/fn/nope").await.0, 404);

    let listed = agent.get_json("/v1/functions").await;
    assert_eq!(listed[0]["name"], "hello");
    let metrics = agent.metrics_text().await;
    assert!(
        metrics
            .contains(r#"edge_agent_function_invocations_total{function="hello",outcome="ok"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("edge_agent_function_instantiate_seconds_count{function=\"hello\"} 2"));
    assert!(metrics.contains(
        r#"edge_agent_function_cold_starts_total{function="hello",source="compiled"} 1"#
    ));
}

#[tokio::test]
async fn classify_digits_runs_the_model_through_wasi_nn_like_oip_infer() {
    let Some(wasm) = guest("classify-digits") else {
        return;
    };
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    deploy_ok(
        &agent,
        "classify-digits",
        wasm,
        json!({"models": [{"name": "digits"}], "memory_mib": 32}),
    )
    .await;
    for pixels in digits(8) {
        let (status, _, body) = call(
            &agent,
            Method::POST,
            "/fn/classify-digits",
            json!({ "pixels": pixels }).to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let top3 = body["top3"].as_array().unwrap();
        assert_eq!(top3.len(), 3);
        let (_, infer) = agent
            .infer(
                "digits",
                None,
                &json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": pixels}]}),
            )
            .await;
        let logits: Vec<f64> = infer["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "logits")
            .unwrap()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let argmax = (0..10)
            .max_by(|a, b| logits[*a].total_cmp(&logits[*b]))
            .unwrap();
        assert_eq!(top3[0]["digit"], argmax, "{body}");
        let p = top3[0]["probability"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0);
    }
    let (status, _, body) = call(&agent, Method::POST, "/fn/classify-digits", b"[]".to_vec()).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn runaway_guests_get_the_right_status_and_the_agent_keeps_serving() {
    let (Some(limits), Some(hello)) = (guest("limits"), guest("hello")) else {
        return;
    };
    let agent = Agent::start().await;
    agent.push("secret", 1, "digits_mlp.onnx", json!({})).await;
    deploy_ok(&agent, "hello", hello, json!({})).await;
    deploy_ok(
        &agent,
        "limits",
        limits,
        json!({"timeout_ms": 300, "memory_mib": 16}),
    )
    .await;
    let cases = [
        ("loop", 504, &["deadline"][..]),
        ("memory", 500, &["memory limit of 16 MiB"]),
        // The wasm call stack or the shadow stack in linear memory, whichever runs out first.
        ("recursion", 500, &["stack", "out of bounds"]),
        ("panic", 500, &["gave up on purpose"]),
        ("model", 403, &["Not Found"]),
    ];
    for (hit, status, says) in cases {
        let (got, headers, body) = call(
            &agent,
            Method::GET,
            &format!("/fn/limits?hit={hit}"),
            Vec::new(),
        )
        .await;
        assert_eq!(got, status, "{hit}: {body}");
        assert!(says.iter().any(|s| body.contains(s)), "{hit}: {body}");
        assert!(
            headers["content-type"].to_str().unwrap().contains("json"),
            "{hit}: {headers:?}"
        );
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(error["error"].is_string(), "{hit}: {body}");
        assert_eq!(
            get_text(&agent, "/fn/limits").await,
            (200, "within limits\n".into())
        );
        assert_eq!(get_text(&agent, "/fn/hello").await.0, 200);
        assert_eq!(get_text(&agent, "/v2/health/ready").await.0, 200);
    }
    // No preopens and no host environment: only the CGI variables and what the manifest grants.
    let (status, body) = get_text(&agent, "/fn/limits/x?hit=escape").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("file: denied"), "{body}");
    let env = body.lines().nth(1).unwrap().strip_prefix("env: ").unwrap();
    let mut names: Vec<&str> = env.split(',').collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "CONTENT_LENGTH",
            "CONTENT_TYPE",
            "GATEWAY_INTERFACE",
            "HTTP_ACCEPT",
            "HTTP_HOST",
            "PATH_INFO",
            "QUERY_STRING",
            "REQUEST_METHOD",
            "SCRIPT_NAME",
            "SERVER_NAME",
            "SERVER_PROTOCOL",
            "SERVER_SOFTWARE",
            "X_REQUEST_ID"
        ],
        "{body}"
    );
    let metrics = agent.metrics_text().await;
    for outcome in ["timeout", "memory", "trap"] {
        assert!(
            metrics.contains(&format!(
                "edge_agent_function_invocations_total{{function=\"limits\",outcome=\"{outcome}\"}}"
            )),
            "{outcome}: {metrics}"
        );
    }
}

#[tokio::test]
async fn hostile_modules_are_refused_at_deploy_or_get_error_codes() {
    let agent = Agent::start().await;
    let (status, body) = deploy(&agent, "bad", b"\0asm\x01\0\0\0garbage".to_vec(), json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not parse"),
        "{body}"
    );
    let forbidden = r#"(module (import "env" "open_socket" (func)) (func (export "_start")))"#;
    let (status, body) = deploy(&agent, "bad", forbidden.into(), json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`env::open_socket`"),
        "{body}"
    );
    let (status, body) = deploy(&agent, "bad", b"(module)".to_vec(), json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("_start"), "{body}");
    let big = r#"(module (memory 17) (func (export "_start")))"#;
    let (status, body) = deploy(&agent, "bad", big.into(), json!({"memory_mib": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`memory_mib` (1 MiB)"),
        "{body}"
    );
    let params = r#"(module (func (export "_start") (param i32)))"#;
    let (status, body) = deploy(&agent, "bad", params.into(), json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("params (i32)"),
        "{body}"
    );
    let (status, body) = deploy(
        &agent,
        "bad",
        b"(module (func (export \"_start\")))".to_vec(),
        json!({"memory_mib": 100000}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        agent
            .get("/v1/functions/bad")
            .send()
            .await
            .unwrap()
            .status()
            == 404
    );

    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    agent.push("digits", 2, "digits_mlp.onnx", json!({})).await;
    agent.push("secret", 1, "digits_mlp.onnx", json!({})).await;
    deploy_ok(
        &agent,
        "nn-hostile",
        wat("nn_hostile.wat").into_bytes(),
        json!({"models": [{"name": "digits", "version": 1}]}),
    )
    .await;
    let expected = wat("nn_hostile.expected");
    for _ in 0..2 {
        let (status, body) = get_text(&agent, "/fn/nn-hostile").await;
        assert_eq!(
            (status, body.as_str()),
            (200, expected.trim_start()),
            "nn_errno per call"
        );
    }
    let spin = r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#;
    deploy_ok(&agent, "spin", spin.into(), json!({"timeout_ms": 50})).await;
    assert_eq!(get_text(&agent, "/fn/spin").await.0, 504);
    let fuel = json!({"timeout_ms": 5000, "fuel": 100000});
    deploy_ok(&agent, "spin", spin.into(), fuel).await;
    let (status, body) = get_text(&agent, "/fn/spin").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("fuel"), "{body}");
    assert_eq!(
        get_text(&agent, "/fn/nn-hostile").await.1,
        expected.trim_start()
    );
}

async fn said(agent: &Agent) -> String {
    get_text(agent, "/fn/hello?name=x").await.1
}

#[tokio::test]
async fn versions_activate_roll_back_and_delete() {
    let Some(wasm) = guest("hello") else { return };
    let agent = Agent::start().await;
    for greeting in ["one", "two"] {
        deploy_ok(
            &agent,
            "hello",
            wasm.clone(),
            json!({"env": {"GREETING": greeting}}),
        )
        .await;
    }
    assert!(said(&agent).await.starts_with("two,"));
    let r = agent
        .admin(Method::POST, "/v1/functions/hello/rollback")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(said(&agent).await.starts_with("one,"));
    let r = agent
        .admin(Method::POST, "/v1/functions/hello/versions/2/activate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(said(&agent).await.starts_with("two,"));
    let r = agent
        .admin(Method::DELETE, "/v1/functions/hello/versions/2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "the active version cannot go");
    let r = agent
        .admin(Method::DELETE, "/v1/functions/hello/versions/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let summary = agent.get_json("/v1/functions/hello").await;
    assert_eq!(summary["versions"].as_array().unwrap().len(), 1);
    let r = agent.get("/v1/functions/hello").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = agent
        .admin(Method::PUT, "/v1/functions/hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "deploy needs multipart");
    let r = agent
        .client
        .put(format!("{}/v1/functions/hello", agent.url))
        .bearer_auth(INFER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "deploy needs admin");
    let r = agent
        .admin(Method::DELETE, "/v1/functions/hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get_text(&agent, "/fn/hello").await.0, 404);
}

#[tokio::test]
async fn route_conflicts_are_checked_on_activate_and_rollback_and_across_hosts() {
    let start = b"(module (func (export \"_start\")))".to_vec();
    let agent = Agent::start().await;
    let hosted = json!({"routes": [{"prefix": "/x", "host": "Edge.Local"}]});
    deploy_ok(&agent, "a", start.clone(), hosted).await;
    // No host takes every host, so it overlaps; hosts compare case-insensitively.
    for route in [
        json!({"prefix": "/x/"}),
        json!({"prefix": "/x", "host": "edge.local"}),
    ] {
        let (status, body) = deploy(&agent, "b", start.clone(), json!({"routes": [route]})).await;
        assert_eq!(status, 409, "{body}");
    }
    let other_host = json!({"routes": [{"prefix": "/x", "host": "other.local"}]});
    deploy_ok(&agent, "b", start.clone(), other_host).await;

    // c/1 serves /y, c/2 does not; then d takes /y.
    deploy_ok(
        &agent,
        "c",
        start.clone(),
        json!({"routes": [{"prefix": "/y"}]}),
    )
    .await;
    deploy_ok(&agent, "c", start.clone(), json!({})).await;
    deploy_ok(
        &agent,
        "d",
        start.clone(),
        json!({"routes": [{"prefix": "/y"}]}),
    )
    .await;
    for path in [
        "/v1/functions/c/rollback",
        "/v1/functions/c/versions/1/activate",
    ] {
        let r = agent.admin(Method::POST, path).send().await.unwrap();
        assert_eq!(r.status(), 409, "{path}");
    }
    let summary = agent.get_json("/v1/functions/c").await;
    assert_eq!(summary["active_version"], 2);
    let r = agent
        .admin(Method::DELETE, "/v1/functions/d")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = agent
        .admin(Method::POST, "/v1/functions/c/rollback")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(agent.get_json("/v1/functions/c").await["active_version"], 1);
}

#[tokio::test]
async fn a_module_over_max_wasm_bytes_gets_413_naming_the_limit() {
    let agent = Agent::start_with(|c| c.functions.max_wasm_bytes = 4096).await;
    let (status, body) = deploy(&agent, "big", vec![0u8; 8192], json!({})).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("functions.max_wasm_bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn artifacts_are_reused_after_a_restart() {
    let Some(wasm) = guest("hello") else { return };
    let agent = Agent::start().await;
    deploy_ok(&agent, "hello", wasm, json!({})).await;
    let agent = agent.restart().await;
    let cached: Vec<_> = std::fs::read_dir(agent.data_dir.join("wasm-cache"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(get_text(&agent, "/fn/hello").await.0, 200);
    let metrics = agent.metrics_text().await;
    assert!(
        metrics.contains(
            r#"edge_agent_function_cold_starts_total{function="hello",source="artifact"} 1"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"source="compiled""#), "{metrics}");
}

#[tokio::test]
async fn a_tampered_artifact_is_recompiled_not_loaded() {
    let Some(wasm) = guest("hello") else { return };
    let agent = Agent::start().await;
    deploy_ok(&agent, "hello", wasm, json!({})).await;
    let cache = agent.data_dir.join("wasm-cache");
    let artifact = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("an artifact");
    // Another module's artifact, from the same engine: loadable, but not what was written.
    let (status, _) = deploy(
        &agent,
        "other",
        b"(module (func (export \"_start\")))".to_vec(),
        json!({}),
    )
    .await;
    assert_eq!(status, 201);
    let other = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm") && *p != artifact)
        .expect("the other artifact");
    std::fs::copy(&other, &artifact).unwrap();
    let agent = agent.restart().await;
    let (status, body) = get_text(&agent, "/fn/hello?name=x").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("x!"), "{body}");
    let metrics = agent.metrics_text().await;
    assert!(
        metrics.contains(
            r#"edge_agent_function_cold_starts_total{function="hello",source="compiled"} 1"#
        ),
        "{metrics}"
    );
    assert_ne!(
        std::fs::read(&artifact).unwrap(),
        std::fs::read(&other).unwrap()
    );
}

#[tokio::test]
async fn a_busy_function_gets_503_while_the_agent_serves_others() {
    let Some(limits) = guest("limits") else {
        return;
    };
    let agent = Agent::start().await;
    deploy_ok(
        &agent,
        "limits",
        limits,
        // No queue: a second call is refused at once (function_queue.rs tests the queue).
        json!({"timeout_ms": 1500, "max_instances": 1, "max_queue": 0}),
    )
    .await;
    let request = agent
        .client
        .get(format!("{}/fn/limits?hit=loop", agent.url))
        .bearer_auth(INFER)
        .send();
    let slow = tokio::spawn(request);
    let mut busy = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (status, headers, _) = call(&agent, Method::GET, "/fn/limits", Vec::new()).await;
        if status == 503 {
            busy = Some(headers);
            break;
        }
    }
    let headers = busy.expect("a second call while the first runs gets 503");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(get_text(&agent, "/v2/health/ready").await.0, 200);
    assert_eq!(slow.await.unwrap().unwrap().status(), 504);
    assert_eq!(get_text(&agent, "/fn/limits").await.0, 200);
}

/// Guests run on the agent's async runtime (here the test's single thread), yielding at every
/// epoch tick: while a guest spins, other functions and the rest of the API still answer, and
/// the spinner still ends at its deadline.
#[tokio::test]
async fn a_spinning_guest_does_not_starve_other_requests() {
    let Some(hello) = guest("hello") else { return };
    let agent = Agent::start().await;
    let spin = r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#;
    deploy_ok(&agent, "spin", spin.into(), json!({"timeout_ms": 3000})).await;
    deploy_ok(&agent, "hello", hello, json!({})).await;
    let request = agent
        .client
        .get(format!("{}/fn/spin", agent.url))
        .bearer_auth(INFER)
        .send();
    let spinner = tokio::spawn(request);
    agent.wait_for_in_flight(1).await;
    assert_eq!(get_text(&agent, "/fn/hello").await.0, 200);
    assert_eq!(get_text(&agent, "/v2/health/ready").await.0, 200);
    assert!(
        !spinner.is_finished(),
        "the other calls completed only after the spinner's deadline"
    );
    assert_eq!(spinner.await.unwrap().unwrap().status(), 504);
}
