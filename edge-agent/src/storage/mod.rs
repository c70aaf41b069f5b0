//! Persistence: model metadata in SQLite, model bytes as content-addressed files.

mod blobs;
mod sqlite;

pub use blobs::BlobStore;
pub use sqlite::SqliteStore;

/// Removes the blobs no stored version refers to (see [`BlobStore::retain`]); run at start-up,
/// before anything can push. Returns how many files and bytes went.
pub fn collect_orphan_blobs(
    store: &dyn ModelStore,
    blobs: &BlobStore,
) -> Result<(usize, u64), StoreError> {
    let keep = store
        .models()?
        .into_iter()
        .flat_map(|m| m.versions.into_iter().map(|v| v.sha256))
        .collect();
    blobs.retain(&keep)
}

/// Removes the temp files an interrupted artifact write left in `dir` (`<name>.tmp<pid>`);
/// a missing directory is fine. Returns how many went.
pub fn remove_artifact_temp_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let path = e.path();
            path.extension()
                .and_then(|x| x.to_str())
                .and_then(|x| x.strip_prefix("tmp"))
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
                && std::fs::remove_file(&path).is_ok()
        })
        .count()
}

/// A stored version of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The version number (1 or more).
    pub version: u64,
    /// Hex SHA-256 of the ONNX bytes, which names the blob.
    pub sha256: String,
    /// Size of the ONNX bytes.
    pub size: u64,
    /// The model config, as JSON.
    pub config_json: String,
    /// Unix seconds when it was pushed.
    pub created_at: i64,
}

/// A stored model: its versions and which one is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    /// The model name.
    pub name: String,
    /// The version requests go to, if any.
    pub active_version: Option<u64>,
    /// All versions, oldest first.
    pub versions: Vec<VersionRecord>,
}

/// Storage failures; `NotFound` and `Conflict` are the caller's, the rest are ours.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such model or version.
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts what is stored (a version that exists, deleting the active one).
    #[error("{0}")]
    Conflict(String),
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The file system failed.
    #[error("storage I/O error on `{path}`")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the model repository keeps its metadata. Calls are short and synchronous.
pub trait ModelStore: Send + Sync {
    /// Records a new version; `Conflict` if it exists.
    fn insert_version(&self, name: &str, record: &VersionRecord) -> Result<(), StoreError>;
    /// Makes `version` the active one, remembering the previous for rollback.
    fn activate(&self, name: &str, version: u64) -> Result<(), StoreError>;
    /// Goes back to the version active before the current one; returns it.
    fn rollback(&self, name: &str) -> Result<u64, StoreError>;
    /// Deletes a version that is not active.
    fn delete_version(&self, name: &str, version: u64) -> Result<VersionRecord, StoreError>;
    /// Deletes a model and all its versions; returns what was deleted.
    fn delete_model(&self, name: &str) -> Result<ModelRecord, StoreError>;
    /// One model.
    fn model(&self, name: &str) -> Result<ModelRecord, StoreError>;
    /// Every model, by name.
    fn models(&self) -> Result<Vec<ModelRecord>, StoreError>;
    /// Whether any version of any model still refers to this blob.
    fn blob_in_use(&self, sha256: &str) -> Result<bool, StoreError>;
    /// The sha256 recorded for the precompiled artifact `key`, if any.
    fn artifact_digest(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Records (or, with `None`, forgets) the sha256 of the precompiled artifact `key`.
    fn record_artifact(&self, key: &str, sha256: Option<&str>) -> Result<(), StoreError>;
    /// The version [`Self::rollback`] would make active, without changing anything.
    fn rollback_target(&self, name: &str) -> Result<u64, StoreError>;
}
