//! `edge_agent_in_flight_requests` counts requests in the router; a client that disconnects
//! mid-request (its request's future dropped) must not leave it counted.

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use tokio::io::AsyncWriteExt;

use crate::support::{Agent, INFER};

/// The gauge's value, as `/metrics` shows it (that request itself is in flight, so counted).
async fn in_flight(agent: &Agent) -> i64 {
    let text = agent.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix("edge_agent_in_flight_requests "))
        .unwrap_or_else(|| panic!("no in-flight gauge in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls `/metrics` until the gauge reads `value`; panics after a generous bound.
async fn wait_for_in_flight(agent: &Agent, value: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = in_flight(agent).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "edge_agent_in_flight_requests stayed at {now}, expected {value}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn the_in_flight_gauge_comes_back_down_when_a_client_disconnects_mid_request() {
    let agent = Agent::start().await;
    // A function that runs until its deadline: the request stays in the router until the
    // client goes away. (The guest's thread runs on to the deadline, and the test's runtime
    // waits for it at the end: keep the deadline short, but longer than the steps below.)
    let spin = r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#;
    let form = Form::new()
        .part(
            "wasm",
            Part::bytes(spin.as_bytes().to_vec()).file_name("f.wasm"),
        )
        .text("manifest", r#"{"timeout_ms": 10000}"#);
    let r = agent
        .admin(reqwest::Method::PUT, "/v1/functions/spin")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // At rest only the /metrics request itself is in flight.
    wait_for_in_flight(&agent, 1).await;
    for _ in 0..2 {
        let addr = agent.url.strip_prefix("http://").unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "GET /fn/spin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {INFER}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        wait_for_in_flight(&agent, 2).await;
        drop(stream);
        wait_for_in_flight(&agent, 1).await;
    }
}
