//! Starting, stopping and restarting an agent, and the requests every test makes.

use std::path::{Path, PathBuf};

use edge_agent::{AgentConfig, Role, TokenConfig};
use inference::test_support::model_bytes;
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response};
use serde_json::{json, Value};

pub const ADMIN: &str = "admin-secret";
pub const INFER: &str = "infer-secret";

/// A running agent on 127.0.0.1:<ephemeral>.
pub struct Agent {
    pub url: String,
    pub client: Client,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn config(data_dir: &Path) -> AgentConfig {
    let mut config = AgentConfig {
        data_dir: data_dir.to_path_buf(),
        ..AgentConfig::default()
    };
    config.limits.max_request_bytes = 1 << 20;
    config.limits.max_model_bytes = 4 << 20;
    config.limits.shutdown_grace_secs = 10;
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
    config
}

impl Agent {
    /// Starts an agent with a fresh data dir.
    pub async fn start() -> Agent {
        Self::start_with(|_| {}).await
    }

    /// Starts an agent with a fresh data dir and a tweaked config.
    pub async fn start_with(tweak: impl FnOnce(&mut AgentConfig)) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        tweak(&mut config);
        let mut agent = Self::start_config(config).await;
        agent._dir = Some(dir);
        agent
    }

    /// Starts an agent on an existing config (e.g. the data dir of a stopped one).
    pub async fn start_config(config: AgentConfig) -> Agent {
        let data_dir = config.data_dir.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = edge_agent::build_state(config, None).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            edge_agent::serve_state(state, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Agent {
            url,
            client: Client::new(),
            data_dir,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops gracefully and returns the temp dir holding its state (if it owns one).
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        self._dir.take()
    }

    /// Stops, then starts a new agent on the same data dir.
    pub async fn restart(self) -> Agent {
        let data_dir = self.data_dir.clone();
        let dir = self.stop().await;
        let mut agent = Self::start_config(config(&data_dir)).await;
        agent._dir = dir;
        agent
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(INFER)
    }

    /// GETs a path with the infer token and returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).send().await.unwrap().json().await.unwrap()
    }

    /// The Prometheus text of `/metrics` (an open route).
    pub async fn metrics_text(&self) -> String {
        let url = format!("{}/metrics", self.url);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls `/metrics` until the series starting with `series` (name and labels) reads more
    /// than `above` (an absent series reads 0); panics after a generous 30 s, saying `what`.
    /// Tests that act "while a request runs" wait on this, not on a sleep.
    async fn wait_for_metric(&self, series: &str, above: i64, what: &str) {
        let prefix = format!("{series} ");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = self.metrics_text().await;
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0);
            if value > above {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still waiting after 30 s for {what}:\n{text}"
            );
            tokio::task::yield_now().await;
        }
    }

    /// Waits until `n` HTTP requests besides the `/metrics` one that asks are being served
    /// (the `in_flight_requests` gauge counts that one too).
    pub async fn wait_for_in_flight(&self, n: i64) {
        self.wait_for_metric(
            "edge_agent_in_flight_requests",
            n,
            &format!("{n} request(s) in flight"),
        )
        .await;
    }

    /// Waits until a request is pending on `model` `version` (admitted to that version, not
    /// yet answered): `inference_pending_requests`.
    pub async fn wait_for_pending(&self, model: &str, version: u64) {
        let series = format!(
            "edge_agent_inference_pending_requests{{model=\"{model}\",version=\"{version}\"}}"
        );
        self.wait_for_metric(
            &series,
            0,
            &format!("a request pending on {model} v{version}"),
        )
        .await;
    }

    /// Deploys (`PUT /v1/functions/{name}`) a module with a JSON manifest: status and body.
    pub async fn deploy(&self, name: &str, wasm: Vec<u8>, manifest: &str) -> (u16, Value) {
        let form = Form::new()
            .part("wasm", Part::bytes(wasm).file_name("f.wasm"))
            .text("manifest", manifest.to_owned());
        let r = self
            .admin(reqwest::Method::PUT, &format!("/v1/functions/{name}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Starts an infer request in the background, for tests that act while it runs.
    pub fn spawn_infer(&self, model: &str, body: Value) -> tokio::task::JoinHandle<Response> {
        let request = self
            .client
            .post(format!("{}/v2/models/{model}/infer", self.url))
            .bearer_auth(INFER)
            .json(&body);
        tokio::spawn(async move { request.send().await.unwrap() })
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
    }

    /// Pushes ONNX bytes with a config (JSON) and returns the response.
    pub async fn push_bytes(
        &self,
        name: &str,
        version: u64,
        bytes: Vec<u8>,
        config: Value,
    ) -> Response {
        let form = Form::new()
            .part("model", Part::bytes(bytes).file_name("model.onnx"))
            .text("config", config.to_string());
        self.admin(
            reqwest::Method::PUT,
            &format!("/v1/models/{name}/versions/{version}"),
        )
        .multipart(form)
        .send()
        .await
        .unwrap()
    }

    /// Pushes a file of `models/` and expects 201.
    pub async fn push(&self, name: &str, version: u64, file: &str, config: Value) -> Value {
        let r = self
            .push_bytes(name, version, model_bytes(file), config)
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body
    }

    /// POSTs a JSON infer request to a model (and version) and returns status and body.
    pub async fn infer(&self, model: &str, version: Option<u64>, body: &Value) -> (u16, Value) {
        let path = match version {
            Some(v) => format!("/v2/models/{model}/versions/{v}/infer"),
            None => format!("/v2/models/{model}/infer"),
        };
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(INFER)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// The first `n` test digits, as rows of 64 floats.
pub fn digits(n: usize) -> Vec<Vec<f32>> {
    let (x, _) = inference::test_support::digits("test");
    x.chunks(64).take(n).map(<[f32]>::to_vec).collect()
}

/// An OIP request for the MLP over these rows.
pub fn mlp_request(rows: &[Vec<f32>]) -> Value {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    json!({"inputs": [{"name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": flat}]})
}
