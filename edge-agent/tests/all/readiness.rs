//! Readiness with reasons: a model that fails to load is not invisible. `/v2/health/ready` is
//! 503 naming it (unless `readiness.strict` is off), Triton's repository index lists every
//! version with its state and reason, and `/v1/models/{m}` says why.

use std::path::Path;
use std::process::Stdio;

use inference::test_support::model_bytes;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent, INFER};

/// A model dir with a good model and models that fail in every way a user can get one wrong.
fn model_dir(dir: &Path) {
    let version = |model: &str, v: u64, bytes: &[u8]| {
        let d = dir.join(model).join(v.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("model.onnx"), bytes).unwrap();
    };
    let good = model_bytes("digits_mlp.onnx");
    version("good", 1, &good);
    version("bad", 1, b"these are not ONNX bytes");
    version("badconfig", 1, &good);
    std::fs::write(
        dir.join("badconfig").join("config.toml"),
        "max_concurrency = \"two\"\n",
    )
    .unwrap();
    // An older broken version beside a good newest one: listed, but the model serves.
    version("mixed", 1, b"broken");
    version("mixed", 2, &good);
    // A `model.onnx` that cannot be read (a dangling link: unreadable even by root).
    let d = dir.join("unreadable").join("1");
    std::fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere.onnx"), d.join("model.onnx")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
}

async fn start_on(dir: &Path, strict: bool) -> Agent {
    let model_dir = dir.to_path_buf();
    Agent::start_with(move |c| {
        c.model_dir = Some(model_dir);
        c.readiness.strict = strict;
    })
    .await
}

async fn health(agent: &Agent) -> (u16, Value) {
    let r = agent
        .client
        .get(format!("{}/v2/health/ready", agent.url))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `POST /v2/repository/index` with `body` (none when `None`): status and JSON.
async fn index(agent: &Agent, body: Option<&str>) -> (u16, Value) {
    let mut request = agent
        .client
        .post(format!("{}/v2/repository/index", agent.url))
        .bearer_auth(INFER);
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `(name, version, state)` of each index row, and the reason of each by `name/version`.
fn rows(index: &Value) -> Vec<(String, Option<String>, String)> {
    index
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["version"].as_str().map(str::to_owned),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn reason_of(index: &Value, name: &str, version: Option<&str>) -> String {
    index
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name && r["version"].as_str() == version)
        .unwrap_or_else(|| panic!("{name} {version:?} not in {index}"))["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn model_dir_models_that_fail_to_load_make_the_agent_unready_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let agent = start_on(dir.path(), true).await;

    let (status, body) = health(&agent).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    let unavailable: Vec<(&str, &str)> = body["unavailable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["reason"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = unavailable.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["bad", "badconfig", "empty", "unreadable"], "{body}");
    let reason = |name: &str| unavailable.iter().find(|(n, _)| *n == name).unwrap().1;
    assert!(reason("bad").contains("failed to load"), "{body}");
    assert!(
        reason("badconfig").contains("invalid `badconfig/config.toml`")
            && reason("badconfig").contains("max_concurrency"),
        "{body}"
    );
    assert!(reason("empty").contains("no version"), "{body}");
    assert!(
        reason("unreadable").contains("cannot read `unreadable/1/model.onnx`"),
        "{body}"
    );
    assert!(
        !body.to_string().contains(&dir.path().display().to_string()),
        "an open route names no paths of the box: {body}"
    );

    let (status, all) = index(&agent, None).await;
    assert_eq!(status, 200, "{all}");
    let s = |x: &str| x.to_owned();
    assert_eq!(
        rows(&all),
        [
            (s("bad"), Some(s("1")), s("UNAVAILABLE")),
            (s("badconfig"), Some(s("1")), s("UNAVAILABLE")),
            (s("empty"), None, s("UNAVAILABLE")),
            (s("good"), Some(s("1")), s("READY")),
            (s("mixed"), Some(s("1")), s("UNAVAILABLE")),
            (s("mixed"), Some(s("2")), s("READY")),
            (s("unreadable"), Some(s("1")), s("UNAVAILABLE")),
        ]
    );
    assert_eq!(reason_of(&all, "good", Some("1")), "");
    assert_eq!(reason_of(&all, "bad", Some("1")), reason("bad"));
    assert!(reason_of(&all, "mixed", Some("1")).contains("failed to load"));
    let (status, ready) = index(&agent, Some(r#"{"ready": true}"#)).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        rows(&ready),
        [
            (s("good"), Some(s("1")), s("READY")),
            (s("mixed"), Some(s("2")), s("READY")),
        ]
    );
    assert_eq!(index(&agent, Some(r#"{"ready": false}"#)).await.1, all);
    assert_eq!(index(&agent, Some("{}")).await.1, all);

    let bad: Value = agent.get_json("/v1/models/bad").await;
    assert_eq!(bad["reason"], reason("bad"), "{bad}");
    assert_eq!(bad["versions"][0]["ready"], false);
    assert_eq!(bad["versions"][0]["reason"], reason("bad"), "{bad}");
    let version: Value = agent.get_json("/v1/models/bad/versions/1").await;
    assert_eq!(version["version"]["reason"], reason("bad"), "{version}");
    let good: Value = agent.get_json("/v1/models/good").await;
    assert!(good.get("reason").is_none(), "{good}");
    assert!(good["versions"][0].get("reason").is_none(), "{good}");
    let mixed: Value = agent.get_json("/v1/models/mixed").await;
    assert!(mixed.get("reason").is_none(), "mixed serves v2: {mixed}");
    assert!(mixed["versions"][0]["reason"].is_string(), "{mixed}");

    // The per-model OIP routes agree, and say why.
    for path in ["/v2/models/bad/ready", "/v2/models/bad/versions/1/ready"] {
        let r = agent.get(path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let error = r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.contains(reason("bad")), "{path}: {error}");
    }
    let r = agent
        .get("/v2/models/mixed/versions/1/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = agent.get("/v2/models/mixed/ready").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = agent.infer("good", None, &mlp_request(&digits(1))).await;
    assert_eq!(status, 200, "unready, the agent still serves what loaded");
    let (status, body) = agent
        .infer("badconfig", None, &mlp_request(&digits(1)))
        .await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("config.toml"),
        "{body}"
    );
}

#[tokio::test]
async fn index_request_bodies_that_are_not_an_object_with_a_boolean_ready_are_400() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let agent = start_on(dir.path(), true).await;
    for body in [
        "{",
        "[true]",
        "\"ready\"",
        r#"{"ready": "yes"}"#,
        r#"{"ready": 1}"#,
    ] {
        let (status, error) = index(&agent, Some(body)).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["error"].is_string(), "{body}: {error}");
    }
    let r = agent
        .client
        .post(format!("{}/v2/repository/index", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the index needs the infer token");
}

#[tokio::test]
async fn with_strict_readiness_off_failed_models_are_listed_but_the_agent_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let agent = start_on(dir.path(), false).await;
    let (status, body) = health(&agent).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["unavailable"].as_array().unwrap().len(), 4, "{body}");
    let (_, all) = index(&agent, None).await;
    assert_eq!(rows(&all).len(), 7, "{all}");
}

#[tokio::test]
async fn a_model_dir_that_all_loads_is_ready_with_nothing_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("good").join("1");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.onnx"), model_bytes("digits_mlp.onnx")).unwrap();
    let agent = start_on(dir.path(), true).await;
    let (status, body) = health(&agent).await;
    assert_eq!((status, body), (200, json!({"ready": true})));
}

/// A pushed model whose stored bytes no longer load at start counts as failed; pushing a
/// newer good version (activated) makes the agent ready again, and deleting the broken
/// version takes it out of the index.
#[tokio::test]
async fn a_stored_version_that_no_longer_loads_is_unready_until_replaced() {
    let agent = Agent::start().await;
    let pushed = agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let sha = pushed["versions"][0]["sha256"].as_str().unwrap().to_owned();
    let data_dir = agent.data_dir.clone();
    let dir = agent.stop().await;
    std::fs::write(data_dir.join("blobs").join(&sha), b"bit rot").unwrap();
    let mut config = crate::support::config(&data_dir);
    config.readiness.strict = true;
    let agent = Agent::start_config(config).await;

    let (status, body) = health(&agent).await;
    assert_eq!(status, 503, "{body}");
    let failed = &body["unavailable"][0];
    assert_eq!(
        (&failed["name"], &failed["version"]),
        (&json!("digits"), &json!(1))
    );
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("does not match its sha256"), "{reason}");
    assert!(
        !reason.contains(&data_dir.display().to_string()),
        "{reason}"
    );
    let (_, all) = index(&agent, None).await;
    assert_eq!(
        rows(&all),
        [("digits".into(), Some("1".into()), "UNAVAILABLE".into())]
    );

    agent.push("digits", 2, "digits_mlp.onnx", json!({})).await;
    let (status, body) = health(&agent).await;
    assert_eq!((status, body), (200, json!({"ready": true})));
    let (_, all) = index(&agent, None).await;
    assert_eq!(
        rows(&all),
        [
            ("digits".into(), Some("1".into()), "UNAVAILABLE".into()),
            ("digits".into(), Some("2".into()), "READY".into()),
        ]
    );
    let r = agent
        .admin(Method::DELETE, "/v1/models/digits/versions/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, all) = index(&agent, None).await;
    assert_eq!(
        rows(&all),
        [("digits".into(), Some("2".into()), "READY".into())]
    );
    agent.stop().await;
    drop(dir);
}

/// Triton's Python client reads the index and sees the agent unready.
#[tokio::test]
async fn tritons_client_reads_the_repository_index() {
    let Some(python) = inference::test_support::setup_var(
        "EDGE_ML_PYTHON",
        "tritons_client_reads_the_repository_index",
        true,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let agent = start_on(dir.path(), true).await;
    let script = r#"
import json, sys
import tritonclient.http as httpclient
client = httpclient.InferenceServerClient(url=sys.argv[1])
headers = {"Authorization": "Bearer " + sys.argv[2]}
print(json.dumps({
    "index": client.get_model_repository_index(headers=headers),
    "server_ready": client.is_server_ready(headers=headers),
    "bad_ready": client.is_model_ready("bad", headers=headers),
    "good_ready": client.is_model_ready("good", headers=headers),
}))
"#;
    let host = agent.url.trim_start_matches("http://").to_owned();
    let out = tokio::process::Command::new(python)
        .args(["-c", script, &host, INFER])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tritonclient failed:\n{stderr}");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, index_by_http) = index(&agent, None).await;
    assert_eq!(got["index"], index_by_http);
    assert_eq!(rows(&got["index"]).len(), 7);
    assert_eq!(got["server_ready"], false);
    assert_eq!(got["bad_ready"], false);
    assert_eq!(got["good_ready"], true);
}

/// The binary's `--strict-readiness false` turns strictness off.
#[tokio::test]
async fn the_strict_readiness_flag_of_the_binary_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    model_dir(&models);
    let (config, url) = crate::process::write_config(dir.path(), "[auth]\ndev_open = true\n");
    let client = reqwest::Client::new();
    for (flag, want) in [(None, 503), (Some("false"), 200), (Some("true"), 503)] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--model-dir")
            .arg(&models)
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(flag) = flag {
            command.args(["--strict-readiness", flag]);
        }
        let mut child = command.spawn().unwrap();
        let status = wait_for_answer(&client, &url).await;
        assert_eq!(status, want, "--strict-readiness {flag:?}");
        child.kill().await.unwrap();
    }
}

/// The status of `/v2/health/ready` once the agent answers at all.
async fn wait_for_answer(client: &reqwest::Client, url: &str) -> u16 {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{url}/v2/health/ready")).send().await {
            return r.status().as_u16();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the agent did not answer");
}
