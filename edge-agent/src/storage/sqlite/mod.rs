//! The SQLite stores, in WAL mode, migrated at open: one file per registry.
//!
//! `models.sqlite3` holds the model versions ([`SqliteVersionStore`]); `functions.sqlite3`
//! holds the function versions and the artifact digests ([`SqliteArtifactStore`]). The two
//! stores of one file share its connection; each touches only its own tables.

mod artifacts;
mod versions;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

pub use artifacts::SqliteArtifactStore;
pub use versions::SqliteVersionStore;

use super::{Kind, StoreError};

/// The version tables: entries, versions, activation history.
const VERSIONS: &str = include_str!("../../../migrations/0001_models.sql");
/// The artifact digests.
const ARTIFACTS: &str = include_str!("../../../migrations/0002_artifacts.sql");
/// Drops the artifact table agents before the store split left in `models.sqlite3`.
const DROP_MODEL_ARTIFACTS: &str =
    include_str!("../../../migrations/0003_drop_model_artifacts.sql");

/// The migrations of `models.sqlite3`, in order; `PRAGMA user_version` records how many ran.
/// The second is empty: agents before the split ran 0002 (the artifact table) here too, so a
/// data dir they wrote is at 2, and the third drops that table.
const MODEL_MIGRATIONS: [&str; 3] = [VERSIONS, "", DROP_MODEL_ARTIFACTS];
/// The migrations of `functions.sqlite3`, in order.
const FUNCTION_MIGRATIONS: [&str; 2] = [VERSIONS, ARTIFACTS];

/// One SQLite file's connection, shared by the stores of that file.
#[derive(Debug, Clone)]
struct Database {
    conn: Arc<Mutex<Connection>>,
}

impl Database {
    /// Opens (creating) the file and runs its pending `migrations`.
    fn open(path: &Path, migrations: &[&str]) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in migrations.iter().enumerate().skip(done) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
            tracing::info!(path = %path.display(), migration = i + 1, "applied database migration");
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens (creating and migrating) `models.sqlite3`: the model versions.
pub fn open_model_db(path: &Path) -> Result<SqliteVersionStore, StoreError> {
    let db = Database::open(path, &MODEL_MIGRATIONS)?;
    Ok(SqliteVersionStore::new(db, Kind::Model))
}

/// Opens (creating and migrating) `functions.sqlite3`: the function versions and the digests
/// of the precompiled artifacts.
pub fn open_function_db(
    path: &Path,
) -> Result<(SqliteVersionStore, SqliteArtifactStore), StoreError> {
    let db = Database::open(path, &FUNCTION_MIGRATIONS)?;
    Ok((
        SqliteVersionStore::new(db.clone(), Kind::Function),
        SqliteArtifactStore::new(db),
    ))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests;
