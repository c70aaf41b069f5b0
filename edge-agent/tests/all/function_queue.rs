//! A function's calls past its `max_instances` wait in a bounded queue (`max_queue`), like a
//! model's: only calls past the queue get 503 naming `max_queue`; a queued call whose client
//! goes away leaves the queue; a queued call waits at most the function's deadline. The
//! guests sleep in the host (WASI `poll_oneoff`) to hold their instance; every step that
//! needs a call running or queued waits on `/metrics`, not on a clock.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::support::{Agent, INFER};

/// A guest that sleeps `ms` milliseconds in the host, then answers 200 with an empty body.
fn sleeper(ms: u64) -> Vec<u8> {
    let ns = ms * 1_000_000;
    format!(
        r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i64.store (i32.const 0) (i64.const 1))
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 1))
        (i64.store (i32.const 24) (i64.const {ns}))
        (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 1) (i32.const 256)))))"#
    )
    .into_bytes()
}

/// `edge_agent_function_queued_calls` of `function` (0 while the series is absent).
async fn queued(agent: &Agent, function: &str) -> i64 {
    let series = format!("edge_agent_function_queued_calls{{function=\"{function}\"}} ");
    agent
        .metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Polls `/metrics` until `function` has `n` queued calls; panics after a generous bound.
async fn wait_for_queued(agent: &Agent, function: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = queued(agent, function).await;
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{function}` kept {now} queued calls, expected {n}"
        );
        tokio::task::yield_now().await;
    }
}

/// Calls `/fn/{name}` in the background: status, `Retry-After` and body.
fn spawn_call(agent: &Agent, name: &str) -> tokio::task::JoinHandle<(u16, Option<String>, String)> {
    let request = agent
        .client
        .post(format!("{}/fn/{name}", agent.url))
        .bearer_auth(INFER);
    tokio::spawn(async move {
        let r = request.send().await.unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), retry, r.text().await.unwrap())
    })
}

async fn deploy(agent: &Agent, name: &str, wasm: Vec<u8>, manifest: &str) {
    let (status, body) = agent.deploy(name, wasm, manifest).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn calls_past_max_instances_queue_and_only_those_past_max_queue_get_503() {
    let agent = Agent::start().await;
    deploy(
        &agent,
        "nap",
        sleeper(2000),
        r#"{"max_instances": 1, "max_queue": 2, "timeout_ms": 60000}"#,
    )
    .await;
    // One runs and two wait: max_instances + max_queue calls at once.
    let calls: Vec<_> = (0..3).map(|_| spawn_call(&agent, "nap")).collect();
    wait_for_queued(&agent, "nap", 2).await;
    // The next one finds the queue full.
    let (status, retry, body) = spawn_call(&agent, "nap").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("`max_queue` of 2") && body.contains("busy"),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("1"));
    for call in calls {
        let (status, _, body) = call.await.unwrap();
        assert_eq!(status, 200, "a queued call failed: {body}");
    }
    assert_eq!(queued(&agent, "nap").await, 0);
    let text = agent.metrics_text().await;
    assert!(
        text.contains("edge_agent_function_invocations_total{function=\"nap\",outcome=\"busy\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_queued_call_whose_client_disconnects_leaves_the_queue() {
    let agent = Agent::start().await;
    // Sleeps past its deadline: a call holds its instance for the whole 5 s.
    deploy(
        &agent,
        "hold",
        sleeper(60_000),
        r#"{"max_instances": 1, "max_queue": 1, "timeout_ms": 5000}"#,
    )
    .await;
    // Two raw connections: one call runs, the other waits; then both clients go away.
    let addr = agent.url.strip_prefix("http://").unwrap().to_owned();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST /fn/hold HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {INFER}\r\nContent-Length: 0\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        streams.push(stream);
    }
    wait_for_queued(&agent, "hold", 1).await;
    drop(streams);
    wait_for_queued(&agent, "hold", 0).await;
    // Its place is free again: the next call queues (the first guest still holds the
    // instance until its deadline) instead of finding the queue full.
    let call = spawn_call(&agent, "hold");
    let (status, _, body) = call.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert_eq!(queued(&agent, "hold").await, 0);
}

#[tokio::test]
async fn a_queued_call_waits_at_most_the_functions_deadline() {
    let agent = Agent::start().await;
    // Each call holds the instance 3 s; a queued call may wait 5 s.
    deploy(
        &agent,
        "slow",
        sleeper(3000),
        r#"{"max_instances": 1, "max_queue": 4, "timeout_ms": 5000}"#,
    )
    .await;
    let first = spawn_call(&agent, "slow");
    let second = spawn_call(&agent, "slow");
    wait_for_queued(&agent, "slow", 1).await;
    let third = spawn_call(&agent, "slow");
    wait_for_queued(&agent, "slow", 2).await;
    // The first two run one after the other (the second got the instance after 3 s of its
    // 5); the third would get it only after 6 s, past its deadline, so it gives up waiting.
    let (status, _, body) = third.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("exceeded its deadline of 5000 ms"), "{body}");
    for call in [first, second] {
        let (status, _, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(queued(&agent, "slow").await, 0);
}
