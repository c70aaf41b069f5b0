//! The SQLite implementation of [`ModelStore`], in WAL mode, migrated at open.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{ModelRecord, ModelStore, StoreError, VersionRecord};

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: [&str; 2] = [
    include_str!("../../migrations/0001_models.sql"),
    include_str!("../../migrations/0002_artifacts.sql"),
];

/// Model (or function) metadata in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// What its entries are called in errors: `model` or `function`.
    noun: &'static str,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl SqliteStore {
    /// Opens (creating) the database of models and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_for(path, "model")
    }

    /// Opens (creating) the database and runs pending migrations; errors call its entries
    /// `noun` (e.g. `function`).
    pub fn open_for(path: &Path, noun: &'static str) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
            tracing::info!(migration = i + 1, "applied database migration");
        }
        Ok(Self {
            conn: Mutex::new(conn),
            noun,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn active(conn: &Connection, name: &str) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT version FROM activations WHERE name = ?1 ORDER BY id DESC LIMIT 1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|v| v as u64))
}

fn load_model(conn: &Connection, noun: &str, name: &str) -> Result<ModelRecord, StoreError> {
    let exists: Option<String> = conn
        .query_row("SELECT name FROM models WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("{noun} `{name}` not found")));
    }
    let mut stmt = conn.prepare(
        "SELECT version, sha256, size, config, created_at FROM versions WHERE name = ?1 ORDER BY version",
    )?;
    let versions = stmt
        .query_map([name], |r| {
            Ok(VersionRecord {
                version: r.get::<_, i64>(0)? as u64,
                sha256: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                config_json: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelRecord {
        name: name.to_owned(),
        active_version: active(conn, name)?,
        versions,
    })
}

fn version_exists(conn: &Connection, name: &str, version: u64) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM versions WHERE name = ?1 AND version = ?2",
            params![name, version as i64],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

impl ModelStore for SqliteStore {
    fn artifact_digest(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT sha256 FROM artifacts WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn record_artifact(&self, key: &str, sha256: Option<&str>) -> Result<(), StoreError> {
        let conn = self.conn();
        match sha256 {
            Some(sha) => conn.execute(
                "INSERT OR REPLACE INTO artifacts (key, sha256, created_at) VALUES (?1, ?2, ?3)",
                params![key, sha, now()],
            )?,
            None => conn.execute("DELETE FROM artifacts WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    fn rollback_target(&self, name: &str) -> Result<u64, StoreError> {
        let conn = self.conn();
        load_model(&conn, self.noun, name)?;
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM activations WHERE name = ?1 ORDER BY id DESC LIMIT 2")?
            .query_map([name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match versions.as_slice() {
            [_, previous] => Ok(*previous as u64),
            _ => Err(StoreError::Conflict(format!(
                "{} `{name}` has no earlier active version to roll back to",
                self.noun
            ))),
        }
    }

    fn insert_version(&self, name: &str, record: &VersionRecord) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO models (name, created_at) VALUES (?1, ?2)",
            params![name, now()],
        )?;
        if version_exists(&tx, name, record.version)? {
            return Err(StoreError::Conflict(format!(
                "{} `{name}` already has version {}; push a new version number or delete it first",
                self.noun, record.version
            )));
        }
        tx.execute(
            "INSERT INTO versions (name, version, sha256, size, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                name,
                record.version as i64,
                record.sha256,
                record.size as i64,
                record.config_json,
                record.created_at
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn activate(&self, name: &str, version: u64) -> Result<(), StoreError> {
        let conn = self.conn();
        if !version_exists(&conn, name, version)? {
            load_model(&conn, self.noun, name)?;
            return Err(StoreError::NotFound(format!(
                "{} `{name}` has no version {version}",
                self.noun
            )));
        }
        if active(&conn, name)? != Some(version) {
            conn.execute(
                "INSERT INTO activations (name, version, at) VALUES (?1, ?2, ?3)",
                params![name, version as i64, now()],
            )?;
        }
        Ok(())
    }

    fn rollback(&self, name: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        load_model(&tx, self.noun, name)?;
        let ids: Vec<(i64, i64)> = tx
            .prepare(
                "SELECT id, version FROM activations WHERE name = ?1 ORDER BY id DESC LIMIT 2",
            )?
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let [(current, _), (_, previous)] = ids.as_slice() else {
            return Err(StoreError::Conflict(format!(
                "{} `{name}` has no earlier active version to roll back to",
                self.noun
            )));
        };
        tx.execute("DELETE FROM activations WHERE id = ?1", [current])?;
        tx.commit()?;
        Ok(*previous as u64)
    }

    fn delete_version(&self, name: &str, version: u64) -> Result<VersionRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let model = load_model(&tx, self.noun, name)?;
        let record = model
            .versions
            .iter()
            .find(|v| v.version == version)
            .cloned()
            .ok_or_else(|| {
                StoreError::NotFound(format!("{} `{name}` has no version {version}", self.noun))
            })?;
        if model.active_version == Some(version) {
            return Err(StoreError::Conflict(format!(
                "version {version} of `{name}` is active; activate another version or delete the {}",
                self.noun
            )));
        }
        tx.execute(
            "DELETE FROM versions WHERE name = ?1 AND version = ?2",
            params![name, version as i64],
        )?;
        tx.execute(
            "DELETE FROM activations WHERE name = ?1 AND version = ?2",
            params![name, version as i64],
        )?;
        tx.commit()?;
        Ok(record)
    }

    fn delete_model(&self, name: &str) -> Result<ModelRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let model = load_model(&tx, self.noun, name)?;
        tx.execute("DELETE FROM models WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(model)
    }

    fn model(&self, name: &str) -> Result<ModelRecord, StoreError> {
        load_model(&self.conn(), self.noun, name)
    }

    fn models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        let conn = self.conn();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM models ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        names
            .iter()
            .map(|n| load_model(&conn, self.noun, n))
            .collect()
    }

    fn blob_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM versions WHERE sha256 = ?1 LIMIT 1",
                [sha256],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u64) -> VersionRecord {
        VersionRecord {
            version,
            sha256: format!("sha{version}"),
            size: 10,
            config_json: "{}".into(),
            created_at: 0,
        }
    }

    #[test]
    fn activation_history_drives_rollback_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        {
            let store = SqliteStore::open(&path).unwrap();
            for v in 1..=3 {
                store.insert_version("m", &record(v)).unwrap();
                store.activate("m", v).unwrap();
            }
            assert!(matches!(
                store.insert_version("m", &record(2)),
                Err(StoreError::Conflict(_))
            ));
            assert_eq!(store.rollback("m").unwrap(), 2);
            assert!(matches!(
                store.delete_version("m", 2),
                Err(StoreError::Conflict(_))
            ));
            store.delete_version("m", 3).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let m = store.model("m").unwrap();
        assert_eq!(m.active_version, Some(2));
        assert_eq!(
            m.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(store.rollback("m").unwrap(), 1);
        assert!(matches!(store.rollback("m"), Err(StoreError::Conflict(_))));
        assert!(store.blob_in_use("sha1").unwrap());
        store.delete_model("m").unwrap();
        assert!(!store.blob_in_use("sha1").unwrap());
        assert!(matches!(store.model("m"), Err(StoreError::NotFound(_))));
    }
}
