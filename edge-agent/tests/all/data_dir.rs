//! A data dir written by an older agent still opens, and is migrated in place.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent};

fn tables(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Agents before the store split ran both migrations on `models.sqlite3`, leaving an
/// `artifacts` table there and `user_version` 2. Such a file keeps its models, and loses only
/// that table.
#[tokio::test]
async fn a_models_db_written_before_the_store_split_opens_with_its_models() {
    let agent = Agent::start().await;
    agent.push("a", 1, "digits_mlp.onnx", json!({})).await;
    agent.push("a", 2, "digits_mlp_int8.onnx", json!({})).await;
    let before: Value = agent.get_json("/v1/models").await;
    let data_dir = agent.data_dir.clone();
    let dir = agent.stop().await;

    let models = data_dir.join("models.sqlite3");
    assert!(!tables(&models).contains(&"artifacts".to_owned()));
    {
        let conn = rusqlite::Connection::open(&models).unwrap();
        conn.execute_batch(include_str!("../../migrations/0002_artifacts.sql"))
            .unwrap();
        conn.execute(
            "INSERT INTO artifacts (key, sha256, created_at) VALUES ('k', 'd', 0)",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
    }

    let mut agent = Agent::start_config(crate::support::config(&data_dir)).await;
    let after: Value = agent.get_json("/v1/models").await;
    assert_eq!(before, after);
    let (status, out) = agent.infer("a", None, &mlp_request(&digits(1))).await;
    assert_eq!((status, out["model_version"].as_str().unwrap()), (200, "2"));
    assert!(!tables(&models).contains(&"artifacts".to_owned()));
    assert!(tables(&data_dir.join("functions.sqlite3")).contains(&"artifacts".to_owned()));
    agent = agent.restart().await;
    assert_eq!(agent.get_json("/v1/models").await, before);
    drop(agent.stop().await);
    drop(dir);
}
