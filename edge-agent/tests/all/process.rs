//! The `edge-agent` binary itself: config file, generated token, SIGKILL and restart.

use std::process::Stdio;
use std::time::Duration;

use inference::test_support::model_bytes;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{digits, mlp_request, ADMIN};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn start(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

pub(crate) async fn wait_ready(client: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/v2/health/ready")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the agent did not become ready");
}

/// Classifies one test digit on the agent at `url` and returns the response body.
pub(crate) async fn infer_digit(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .post(format!("{url}/v2/models/digits/infer"))
        .bearer_auth(token)
        .json(&mlp_request(&digits(1)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Writes a config file listening on a free port with its data in `dir`, plus `extra` TOML;
/// returns its path and the agent's URL.
pub(crate) fn write_config(dir: &std::path::Path, extra: &str) -> (std::path::PathBuf, String) {
    let port = free_port();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{extra}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    (config, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn models_survive_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token = format!(
        "[[auth.tokens]]\nname = \"ci\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        edge_agent::hash_token(ADMIN)
    );
    let (config, url) = write_config(dir.path(), &token);
    let client = reqwest::Client::new();
    let mut agent = start(&config).await;
    wait_ready(&client, &url).await;
    for (version, file) in [(1, "digits_mlp.onnx"), (2, "digits_mlp_int8.onnx")] {
        let form = Form::new().part("model", Part::bytes(model_bytes(file)));
        let r = client
            .put(format!("{url}/v1/models/digits/versions/{version}"))
            .bearer_auth(ADMIN)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = client
        .post(format!("{url}/v1/models/digits/versions/1/activate"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before: Value = client
        .get(format!("{url}/v1/models"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    agent.kill().await.unwrap(); // SIGKILL: no graceful anything
    let mut agent = start(&config).await;
    wait_ready(&client, &url).await;
    let after: Value = client
        .get(format!("{url}/v1/models"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);
    let out = infer_digit(&client, &url, ADMIN).await;
    assert_eq!(out["model_version"], "1");
    agent.kill().await.unwrap();
}

#[tokio::test]
async fn without_tokens_the_agent_generates_one_and_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let (config, url) = write_config(dir.path(), "");
    let mut agent = start(&config).await;
    let mut lines = BufReader::new(agent.stderr.take().unwrap()).lines();
    let mut token = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        let t = line.trim();
        if t.len() == 48 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            token = Some(t.to_owned());
            break;
        }
    }
    let token = token.expect("a generated token on stderr");
    let client = reqwest::Client::new();
    wait_ready(&client, &url).await;
    let r = client.get(format!("{url}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401, "not open by default");
    let r = client
        .get(format!("{url}/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    agent.kill().await.unwrap();
}
