//! The digests of precompiled artifacts, in the `artifacts` table of `functions.sqlite3`.

use rusqlite::{params, OptionalExtension};

use super::{now, Database};
use crate::storage::{ArtifactStore, StoreError};

/// [`ArtifactStore`] in SQLite: keys are `{wasm sha256}-{engine hash}`. Kept in the database,
/// not next to the artifacts, so that whoever can write the cache dir cannot make the agent
/// trust a file.
#[derive(Debug)]
pub struct SqliteArtifactStore {
    db: Database,
}

impl SqliteArtifactStore {
    pub(super) fn new(db: Database) -> Self {
        Self { db }
    }
}

impl ArtifactStore for SqliteArtifactStore {
    fn artifact_digest(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT sha256 FROM artifacts WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn record_artifact(&self, key: &str, sha256: Option<&str>) -> Result<(), StoreError> {
        let conn = self.db.conn();
        match sha256 {
            Some(sha) => conn.execute(
                "INSERT OR REPLACE INTO artifacts (key, sha256, created_at) VALUES (?1, ?2, ?3)",
                params![key, sha, now()],
            )?,
            None => conn.execute("DELETE FROM artifacts WHERE key = ?1", [key])?,
        };
        Ok(())
    }
}
