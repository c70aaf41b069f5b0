use rusqlite::Connection;

use super::*;
use crate::storage::{ArtifactStore, VersionRecord, VersionStore};

fn record(version: u64) -> VersionRecord {
    VersionRecord {
        version,
        sha256: format!("sha{version}"),
        size: 10,
        config_json: "{}".into(),
        created_at: 0,
    }
}

fn tables(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_version(path: &Path) -> usize {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Writes a database as the agent did before the store split: both migrations in every file,
/// one stored version (active) and one artifact digest.
fn write_old_schema(path: &Path) {
    let mut conn = Connection::open(path).unwrap();
    for (i, sql) in [VERSIONS, ARTIFACTS].iter().enumerate() {
        let tx = conn.transaction().unwrap();
        tx.execute_batch(sql).unwrap();
        tx.pragma_update(None, "user_version", i + 1).unwrap();
        tx.commit().unwrap();
    }
    conn.execute_batch(
        "INSERT INTO models (name, created_at) VALUES ('m', 1);
         INSERT INTO versions (name, version, sha256, size, config, created_at)
             VALUES ('m', 1, 'sha1', 10, '{}', 1);
         INSERT INTO activations (name, version, at) VALUES ('m', 1, 1);
         INSERT INTO artifacts (key, sha256, created_at) VALUES ('k', 'digest', 1);",
    )
    .unwrap();
}

#[test]
fn activation_history_drives_rollback_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    {
        let store = open_model_db(&path).unwrap();
        for v in 1..=3 {
            store.insert_version("m", &record(v)).unwrap();
            store.activate("m", v).unwrap();
        }
        assert!(matches!(
            store.insert_version("m", &record(2)),
            Err(StoreError::VersionExists { version: 2, .. })
        ));
        assert_eq!(store.rollback_target("m").unwrap(), 2);
        assert_eq!(store.rollback("m").unwrap(), 2);
        assert!(matches!(
            store.delete_version("m", 2),
            Err(StoreError::ActiveVersion { version: 2, .. })
        ));
        store.delete_version("m", 3).unwrap();
    }
    let store = open_model_db(&path).unwrap();
    let m = store.entry("m").unwrap();
    assert_eq!(m.active_version, Some(2));
    assert_eq!(
        m.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(store.rollback("m").unwrap(), 1);
    let err = store.rollback("m").unwrap_err();
    assert!(matches!(err, StoreError::NoEarlierVersion { .. }));
    assert_eq!(
        err.to_string(),
        "model `m` has no earlier active version to roll back to"
    );
    assert!(store.blob_in_use("sha1").unwrap());
    store.delete_entry("m").unwrap();
    assert!(!store.blob_in_use("sha1").unwrap());
    let err = store.entry("m").unwrap_err();
    assert!(matches!(
        &err,
        StoreError::NotFound { kind: Kind::Model, name, version: None } if name == "m"
    ));
    assert_eq!(err.to_string(), "model `m` not found");
}

#[test]
fn errors_name_the_kind_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open_function_db(&dir.path().join("f.sqlite3")).unwrap();
    store.insert_version("f", &record(1)).unwrap();
    store.activate("f", 1).unwrap();
    let texts = [
        store.activate("f", 9).unwrap_err().to_string(),
        store.activate("g", 1).unwrap_err().to_string(),
        store.delete_version("f", 1).unwrap_err().to_string(),
        store
            .insert_version("f", &record(1))
            .unwrap_err()
            .to_string(),
    ];
    assert_eq!(
        texts,
        [
            "function `f` has no version 9",
            "function `g` not found",
            "version 1 of `f` is active; activate another version or delete the function",
            "function `f` already has version 1; push a new version number or delete it first",
        ]
    );
}

#[test]
fn each_file_holds_only_its_own_tables() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.sqlite3");
    let functions = dir.path().join("functions.sqlite3");
    open_model_db(&models).unwrap();
    open_function_db(&functions).unwrap();
    let version_tables = ["activations", "models", "sqlite_sequence", "versions"];
    assert_eq!(tables(&models), version_tables);
    assert_eq!(
        tables(&functions),
        [
            "activations",
            "artifacts",
            "models",
            "sqlite_sequence",
            "versions"
        ]
    );
    assert_eq!(user_version(&models), MODEL_MIGRATIONS.len());
    assert_eq!(user_version(&functions), FUNCTION_MIGRATIONS.len());
}

#[test]
fn a_model_db_of_the_old_schema_opens_and_drops_only_the_artifact_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.sqlite3");
    write_old_schema(&path);
    assert!(tables(&path).contains(&"artifacts".to_owned()));
    for _ in 0..2 {
        let store = open_model_db(&path).unwrap();
        let m = store.entry("m").unwrap();
        assert_eq!(m.active_version, Some(1));
        assert_eq!(
            m.versions,
            [VersionRecord {
                created_at: 1,
                ..record(1)
            }]
        );
        drop(store);
        assert!(!tables(&path).contains(&"artifacts".to_owned()));
        assert_eq!(user_version(&path), 3);
    }
}

#[test]
fn a_function_db_of_the_old_schema_keeps_its_versions_and_artifact_digests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("functions.sqlite3");
    write_old_schema(&path);
    let (store, artifacts) = open_function_db(&path).unwrap();
    assert_eq!(store.entry("m").unwrap().active_version, Some(1));
    assert_eq!(
        artifacts.artifact_digest("k").unwrap().as_deref(),
        Some("digest")
    );
    artifacts.record_artifact("k", None).unwrap();
    assert_eq!(artifacts.artifact_digest("k").unwrap(), None);
    assert_eq!(user_version(&path), 2);
}
