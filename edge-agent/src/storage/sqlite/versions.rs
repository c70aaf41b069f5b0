//! Versions and their activation history, in the `models`, `versions` and `activations`
//! tables (named so for history: the functions' file has them too).

use rusqlite::{params, Connection, OptionalExtension};

use super::{now, Database};
use crate::storage::{EntryRecord, Kind, StoreError, VersionRecord, VersionStore};

/// [`VersionStore`] in SQLite, for one kind of entry.
#[derive(Debug)]
pub struct SqliteVersionStore {
    db: Database,
    kind: Kind,
}

impl SqliteVersionStore {
    pub(super) fn new(db: Database, kind: Kind) -> Self {
        Self { db, kind }
    }

    fn not_found(&self, name: &str, version: Option<u64>) -> StoreError {
        StoreError::NotFound {
            kind: self.kind,
            name: name.to_owned(),
            version,
        }
    }

    fn load(&self, conn: &Connection, name: &str) -> Result<EntryRecord, StoreError> {
        let exists: Option<String> = conn
            .query_row("SELECT name FROM models WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_none() {
            return Err(self.not_found(name, None));
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
        Ok(EntryRecord {
            name: name.to_owned(),
            active_version: active(conn, name)?,
            versions,
        })
    }

    /// The newest two activations of `name`, newest first: `(row id, version)`.
    fn last_two(&self, conn: &Connection, name: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        self.load(conn, name)?;
        Ok(conn
            .prepare(
                "SELECT id, version FROM activations WHERE name = ?1 ORDER BY id DESC LIMIT 2",
            )?
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
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

impl VersionStore for SqliteVersionStore {
    fn insert_version(&self, name: &str, record: &VersionRecord) -> Result<(), StoreError> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO models (name, created_at) VALUES (?1, ?2)",
            params![name, now()],
        )?;
        if version_exists(&tx, name, record.version)? {
            return Err(StoreError::VersionExists {
                kind: self.kind,
                name: name.to_owned(),
                version: record.version,
            });
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
        let conn = self.db.conn();
        if !version_exists(&conn, name, version)? {
            self.load(&conn, name)?;
            return Err(self.not_found(name, Some(version)));
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
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        let [(current, _), (_, previous)] = self.last_two(&tx, name)?[..] else {
            return Err(StoreError::NoEarlierVersion {
                kind: self.kind,
                name: name.to_owned(),
            });
        };
        tx.execute("DELETE FROM activations WHERE id = ?1", [current])?;
        tx.commit()?;
        Ok(previous as u64)
    }

    fn rollback_target(&self, name: &str) -> Result<u64, StoreError> {
        match self.last_two(&self.db.conn(), name)?[..] {
            [_, (_, previous)] => Ok(previous as u64),
            _ => Err(StoreError::NoEarlierVersion {
                kind: self.kind,
                name: name.to_owned(),
            }),
        }
    }

    fn delete_version(&self, name: &str, version: u64) -> Result<VersionRecord, StoreError> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        let entry = self.load(&tx, name)?;
        let record = entry
            .versions
            .iter()
            .find(|v| v.version == version)
            .cloned()
            .ok_or_else(|| self.not_found(name, Some(version)))?;
        if entry.active_version == Some(version) {
            return Err(StoreError::ActiveVersion {
                kind: self.kind,
                name: name.to_owned(),
                version,
            });
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

    fn delete_entry(&self, name: &str) -> Result<EntryRecord, StoreError> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        let entry = self.load(&tx, name)?;
        tx.execute("DELETE FROM models WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(entry)
    }

    fn entry(&self, name: &str) -> Result<EntryRecord, StoreError> {
        self.load(&self.db.conn(), name)
    }

    fn entries(&self) -> Result<Vec<EntryRecord>, StoreError> {
        let conn = self.db.conn();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM models ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        names.iter().map(|n| self.load(&conn, n)).collect()
    }

    fn blob_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
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
