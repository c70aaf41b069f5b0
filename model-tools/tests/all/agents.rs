//! Real edge agents started in the test process, a misbehaving HTTP server to put in front of
//! them, and the `model-tools` binary run against both.

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use edge_agent::{AgentConfig, Role, TokenConfig};
use inference::test_support::models_dir;
use serde_json::{json, Value};

pub const ADMIN: &str = "push-test-admin";
pub const INFER: &str = "push-test-infer";

/// An agent serving on 127.0.0.1:<ephemeral> until the test's runtime ends.
pub struct Agent {
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// An agent with an admin and an infer token, its config tweaked.
    pub async fn start(tweak: impl FnOnce(&mut AgentConfig)) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig {
            data_dir: dir.path().to_path_buf(),
            ..AgentConfig::default()
        };
        config.auth.tokens = vec![
            TokenConfig {
                name: "admin".into(),
                role: Role::Admin,
                sha256: edge_agent::hash_token(ADMIN),
            },
            TokenConfig {
                name: "app".into(),
                role: Role::Infer,
                sha256: edge_agent::hash_token(INFER),
            },
        ];
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = edge_agent::build_state(config, None).await.unwrap();
        tokio::spawn(async move {
            edge_agent::serve_state(state, listener, std::future::pending())
                .await
                .unwrap();
        });
        Agent { url, _dir: dir }
    }

    /// `GET path` with the infer token: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(INFER)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Classifies the first test digit with the MLP pushed as `model`: the version that
    /// answered.
    pub async fn infer_digit(&self, model: &str) -> String {
        let (x, _) = inference::test_support::digits("test");
        let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": &x[..64]}]});
        let r = reqwest::Client::new()
            .post(format!("{}/v2/models/{model}/infer", self.url))
            .bearer_auth(INFER)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let out: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["outputs"][0]["shape"], json!([1, 10]), "{out}");
        out["model_version"].as_str().unwrap().to_owned()
    }
}

/// What the fake server does with its `n`th request (1 for the first).
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Answers this status with `{"error": message}`, after reading the whole request.
    Answer(u16, &'static str),
    /// Passes the request to the upstream agent and its answer back.
    Forward,
    /// Passes the request to the upstream agent, then answers this status instead.
    ForwardThenAnswer(u16),
}

struct Fake {
    hits: AtomicUsize,
    upstream: Option<String>,
    plan: Box<dyn Fn(usize) -> Action + Send + Sync>,
}

/// A fake agent: its URL, and how many requests it had.
pub struct FakeAgent {
    pub url: String,
    fake: Arc<Fake>,
}

impl FakeAgent {
    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.fake.hits.load(Ordering::SeqCst)
    }
}

/// A fake agent on 127.0.0.1:<ephemeral> that follows `plan`, forwarding to `upstream`.
pub async fn fake_agent(
    upstream: Option<&Agent>,
    plan: impl Fn(usize) -> Action + Send + Sync + 'static,
) -> FakeAgent {
    let fake = Arc::new(Fake {
        hits: AtomicUsize::new(0),
        upstream: upstream.map(|a| a.url.clone()),
        plan: Box::new(plan),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeAgent { url, fake }
}

async fn handle(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    let n = fake.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    match (fake.plan)(n) {
        Action::Answer(status, message) => answer(status, message),
        Action::Forward => forward(&fake, &parts, body).await,
        Action::ForwardThenAnswer(status) => {
            let forwarded = forward(&fake, &parts, body).await;
            assert!(forwarded.status().is_success(), "{:?}", forwarded.status());
            answer(status, "the answer was lost on the way")
        }
    }
}

fn answer(status: u16, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "error": message }).to_string()))
        .unwrap()
}

/// Sends the request on to the upstream agent and returns its answer.
async fn forward(fake: &Fake, parts: &Parts, body: Bytes) -> Response {
    let upstream = fake
        .upstream
        .as_deref()
        .expect("a fake that forwards has an upstream");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = reqwest::Client::new()
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = parts.headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .unwrap()
}

/// A URL where nothing listens.
pub async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Runs `model-tools ARGS` from the repository root, with `EDGE_AGENT_TOKEN` set to `token`
/// (or unset): exit code, stdout, stderr.
pub async fn model_tools(args: &[&str], token: Option<&str>) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_model-tools"));
    command
        .args(args)
        .current_dir(models_dir().join(".."))
        .env_remove("EDGE_AGENT_TOKEN");
    if let Some(token) = token {
        command.env("EDGE_AGENT_TOKEN", token);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().await.unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The table row of `agent` in push's output.
pub fn row<'a>(stdout: &'a str, agent: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(agent))
        .unwrap_or_else(|| panic!("no row for {agent} in:\n{stdout}"))
}

/// The status column of a row is followed by the attempts column: `ok 201 1`.
pub fn columns(row: &str) -> Vec<&str> {
    row.split_whitespace().collect()
}
