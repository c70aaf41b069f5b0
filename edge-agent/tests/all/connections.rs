//! Connection hygiene: slow and idle clients are closed after the `[server]` timeouts while
//! a normal client keeps being served, connections over the caps are refused, a declared
//! body over the limit is refused before it is sent, and a rejected body still gets its 401.
//!
//! Timeouts are tiny here (300 ms); assertions only bound how long a close may take with a
//! generous margin, never how short it must be.

use std::net::SocketAddr;
use std::time::Duration;

use edge_agent::AgentConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{digits, mlp_request, Agent, ADMIN, INFER};

/// How long a close the test expects may take at most (timeouts are 300 ms).
const GENEROUS: Duration = Duration::from_secs(10);

fn short_timeouts(config: &mut AgentConfig) {
    config.server.header_read_timeout_ms = 300;
    config.server.keep_alive_timeout_ms = 300;
    config.server.body_read_timeout_ms = 300;
    config.server.linger_ms = 2_000;
}

fn addr(agent: &Agent) -> SocketAddr {
    agent.url.trim_start_matches("http://").parse().unwrap()
}

/// A raw connection to the agent from the loopback address `from` (any port).
async fn connect_from(agent: &Agent, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr(agent)).await.unwrap()
}

/// Reads until the peer closes (or resets); returns what arrived, or `None` if the socket
/// is still open after `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(bound, read).await.ok().map(|()| got)
}

/// Reads one response (head and `Content-Length` body): status, head text, JSON body.
async fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let read = async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a response head: {data:?}");
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while data.len() < head_end + length {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed inside a response body");
            data.extend_from_slice(&buf[..n]);
        }
        let status = head[9..12].parse().unwrap();
        let body =
            serde_json::from_slice(&data[head_end..head_end + length]).unwrap_or(Value::Null);
        (status, head, body)
    };
    tokio::time::timeout(GENEROUS, read)
        .await
        .expect("no response in time")
}

fn infer_head(token: &str, length: usize) -> String {
    format!(
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn slow_and_idle_clients_are_closed_while_a_normal_client_is_served() {
    let agent = Agent::start_with(short_timeouts).await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let request = mlp_request(&digits(1));

    let mut silent = connect_from(&agent, "127.0.0.1").await;
    let mut partial_line = connect_from(&agent, "127.0.0.1").await;
    partial_line.write_all(b"GET /v2/heal").await.unwrap();
    let mut partial_head = connect_from(&agent, "127.0.0.1").await;
    partial_head
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: agent\r\n")
        .await
        .unwrap();
    let mut stalled_body = connect_from(&agent, "127.0.0.1").await;
    stalled_body
        .write_all(format!("{}{{\"inp", infer_head(INFER, 500)).as_bytes())
        .await
        .unwrap();
    let mut idle = connect_from(&agent, "127.0.0.1").await;
    idle.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    // A body that keeps coming, but at 10 bytes per second: under the 1 KiB/s floor.
    let trickle_agent = addr(&agent);
    let trickler = tokio::spawn(async move {
        let mut s = TcpStream::connect(trickle_agent).await.unwrap();
        s.write_all(infer_head(INFER, 10_000).as_bytes())
            .await
            .unwrap();
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            for _ in 0..200 {
                if w.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut got = Vec::new();
        let _ = tokio::time::timeout(GENEROUS, r.read_to_end(&mut got)).await;
        writer.abort();
        String::from_utf8_lossy(&got).to_string()
    });

    // Meanwhile a normal client keeps getting answers, on fresh and reused connections.
    for _ in 0..20 {
        let (status, out) = agent.infer("digits", None, &request).await;
        assert_eq!(status, 200, "{out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for (name, stream) in [
        ("silent", &mut silent),
        ("partial request line", &mut partial_line),
        ("partial head", &mut partial_head),
        ("idle keep-alive", &mut idle),
    ] {
        let got = read_until_closed(stream, GENEROUS).await;
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "{name}: not closed, or answered"
        );
    }
    let got = read_until_closed(&mut stalled_body, GENEROUS)
        .await
        .expect("stalled body: still open");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "stalled body: {text}");
    assert!(text.contains("server.body_read_timeout_ms"), "{text}");
    let trickled = trickler.await.unwrap();
    assert!(
        trickled.starts_with("HTTP/1.1 408"),
        "trickled body: {trickled}"
    );

    assert_eq!(agent.infer("digits", None, &request).await.0, 200);
    let metrics = agent.metrics_text().await;
    for reason in ["header", "keep_alive", "body"] {
        assert!(
            metrics.contains(&format!(
                "edge_agent_connection_timeouts_total{{reason=\"{reason}\"}}"
            )),
            "{reason} not counted:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_its_responses_is_disconnected() {
    let agent = Agent::start_with(|c| {
        // Only the send timeout is short: nothing else would close this connection.
        c.server.header_read_timeout_ms = 600_000;
        c.server.keep_alive_timeout_ms = 600_000;
        c.server.send_timeout_ms = 300;
    })
    .await;
    let mut s = connect_from(&agent, "127.0.0.1").await;
    // 2,000 pipelined requests for a 59 KB document: about 118 MB of answers, far more than
    // the socket buffers hold, and the client reads none of them for a while.
    let requests = "GET /v1/openapi.json HTTP/1.1\r\nHost: agent\r\n\r\n".repeat(2000);
    s.write_all(requests.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let got = read_until_closed(&mut s, GENEROUS).await;
    let got = got.unwrap_or_else(|| {
        panic!(
            "still open {:?} after the client resumed reading",
            started.elapsed()
        )
    });
    assert!(got.len() < 2000 * 59_000, "every answer was sent");
    let metrics = agent.metrics_text().await;
    assert!(
        metrics.contains("edge_agent_connection_timeouts_total{reason=\"send\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn connections_over_the_caps_are_closed_at_once() {
    let agent = Agent::start_with(|c| {
        // Long timeouts: a close within the test's bound can only be a refusal.
        c.server.header_read_timeout_ms = 600_000;
        c.server.max_connections = 4;
        c.server.max_connections_per_ip = 2;
    })
    .await;
    let mut held = vec![
        connect_from(&agent, "127.0.0.1").await,
        connect_from(&agent, "127.0.0.1").await,
    ];
    let mut third = connect_from(&agent, "127.0.0.1").await;
    assert!(
        read_until_closed(&mut third, GENEROUS).await.is_some(),
        "a third connection from one address stayed open"
    );
    // Another address still gets in and is served.
    let mut other = connect_from(&agent, "127.0.0.2").await;
    other
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut other).await.0, 200);
    held.push(other);
    held.push(connect_from(&agent, "127.0.0.3").await);
    let mut fifth = connect_from(&agent, "127.0.0.4").await;
    assert!(
        read_until_closed(&mut fifth, GENEROUS).await.is_some(),
        "a fifth connection stayed open over max_connections = 4"
    );
    // Held connections are untouched: the one from .2 still answers.
    held[2]
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut held[2]).await;
    assert_eq!(status, 200, "{head}");
    // Closing one makes room again (the server notices the close asynchronously).
    drop(held.remove(0));
    let mut served = false;
    for _ in 0..100 {
        let mut s = connect_from(&agent, "127.0.0.5").await;
        s.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let got = read_until_closed(&mut s, GENEROUS)
            .await
            .unwrap_or_default();
        if got.starts_with(b"HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "no room after a held connection closed");
    // The refusals are counted (read over the held connection from .2).
    held[1]
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = String::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !metrics.contains("# EOF") {
            let n = held[1].read(&mut buf).await.unwrap();
            assert!(n > 0, "closed while sending /metrics");
            metrics.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    tokio::time::timeout(GENEROUS, read).await.unwrap();
    for cap in ["max_connections", "max_connections_per_ip"] {
        assert!(
            metrics.contains(&format!(
                "edge_agent_refused_connections_total{{reason=\"{cap}\"}}"
            )),
            "{cap} refusals not counted:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_sent() {
    let agent = Agent::start_with(|c| c.functions.max_wasm_bytes = 1 << 20).await;
    let cases = [
        (
            "POST /v2/models/digits/infer",
            INFER,
            (1 << 20) + 1,
            "limits.max_request_bytes",
        ),
        (
            "POST /fn/anything",
            INFER,
            (1 << 20) + 1,
            "limits.max_request_bytes",
        ),
        (
            "PUT /v1/models/m/versions/1",
            ADMIN,
            (4 << 20) + 1,
            "limits.max_model_bytes",
        ),
        (
            "PUT /v1/functions/f",
            ADMIN,
            (1 << 20) + 1,
            "functions.max_wasm_bytes",
        ),
    ];
    for (line, token, length, key) in cases {
        let mut s = connect_from(&agent, "127.0.0.1").await;
        // Headers only: the answer must come without a byte of the body.
        s.write_all(
            format!(
                "{line} HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (status, head, body) = read_response(&mut s).await;
        assert_eq!(status, 413, "{line}: {head}{body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(key), "{line}: {body}");
        assert!(message.contains(&length.to_string()), "{line}: {body}");
    }
    // At the limit is not refused early (the route then answers on its own terms).
    let mut s = connect_from(&agent, "127.0.0.1").await;
    let body = "x".repeat(16);
    s.write_all(format!("{}{body}", infer_head(INFER, body.len())).as_bytes())
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut s).await;
    assert_ne!(status, 413);
}

#[tokio::test]
async fn a_rejected_token_with_a_large_body_always_gets_its_answer() {
    let agent = Agent::start_with(|c| {
        c.limits.max_request_bytes = 64 << 20;
        c.limits.max_model_bytes = 64 << 20;
    })
    .await;
    // Under the limits, and larger than the socket buffers so the client is still sending
    // when the answer comes: the body would be accepted, but the token is wrong (401) or
    // lacks the role (403). The server answers before reading the body.
    let infer_body = vec![b' '; 16 << 20];
    let push_body = vec![0u8; 16 << 20];
    let client = reqwest::Client::new();
    for i in 0..30 {
        let r = client
            .post(format!("{}/v2/models/digits/infer", agent.url))
            .bearer_auth("wrong")
            .header("content-type", "application/json")
            .body(infer_body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("iteration {i}: infer with a wrong token: {e:?}"));
        assert_eq!(r.status(), 401, "iteration {i}");
        let r = client
            .put(format!("{}/v1/models/m/versions/1", agent.url))
            .bearer_auth(if i % 2 == 0 { "wrong" } else { INFER })
            .header("content-type", "multipart/form-data; boundary=x")
            .body(push_body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("iteration {i}: push with a bad token: {e:?}"));
        let expected = if i % 2 == 0 { 401 } else { 403 };
        assert_eq!(r.status(), expected, "iteration {i}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    // Raw clients that write the whole body at once, fresh connection each time.
    for i in 0..20 {
        let s = connect_from(&agent, "127.0.0.1").await;
        let (mut r, mut w) = s.into_split();
        let mut request = infer_head("wrong", infer_body.len()).into_bytes();
        request.extend_from_slice(&infer_body);
        let writer = tokio::spawn(async move {
            let _ = w.write_all(&request).await;
            w
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let answered = tokio::time::timeout(GENEROUS, async {
            loop {
                match r.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        if got.windows(4).any(|w| w == b"\r\n\r\n") {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .expect("no answer in time");
        answered.unwrap_or_else(|e| panic!("iteration {i}: {e} after {got:?}"));
        assert!(
            got.starts_with(b"HTTP/1.1 401"),
            "iteration {i}: {:?}",
            String::from_utf8_lossy(&got)
        );
        let _ = writer.await;
    }
}
