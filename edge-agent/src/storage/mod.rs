//! Persistence: version metadata in SQLite, bytes as content-addressed files.
//!
//! Each registry (models, functions) has a SQLite file of its own: a [`VersionStore`] owns
//! its versions and activation history; the functions' file also holds an [`ArtifactStore`]
//! (the digests of precompiled artifacts). The bytes themselves are in a [`BlobStore`].

mod blobs;
mod sqlite;

pub use blobs::{sha256_hex, BlobStore};
pub use sqlite::{open_function_db, open_model_db, SqliteArtifactStore, SqliteVersionStore};

/// What a registry holds; it names things in errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An ONNX model.
    Model,
    /// A WebAssembly function.
    Function,
}

impl Kind {
    /// The lowercase noun: `model` or `function`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Function => "function",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.noun())
    }
}

/// Removes the blobs no stored version refers to (see [`BlobStore::retain`]); run at start-up,
/// before anything can push. Returns how many files and bytes went.
pub fn collect_orphan_blobs(
    store: &dyn VersionStore,
    blobs: &BlobStore,
) -> Result<(usize, u64), StoreError> {
    let keep = store
        .entries()?
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

/// A stored version of a model or function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The version number (1 or more).
    pub version: u64,
    /// Hex SHA-256 of the bytes (ONNX or wasm), which names the blob.
    pub sha256: String,
    /// Size of the bytes.
    pub size: u64,
    /// The serving config (model config or function manifest), as JSON.
    pub config_json: String,
    /// Unix seconds when it was stored.
    pub created_at: i64,
}

/// A stored model or function: its versions and which one is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// Its name.
    pub name: String,
    /// The version requests go to, if any.
    pub active_version: Option<u64>,
    /// All versions, oldest first.
    pub versions: Vec<VersionRecord>,
}

/// Storage failures; `NotFound` and the conflicts are the caller's, the rest are ours.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such entry (`version` is `None`) or no such version of it.
    #[error("{}", not_found(*.kind, .name, *.version))]
    NotFound {
        /// What was looked for.
        kind: Kind,
        /// Its name.
        name: String,
        /// The version, when the entry exists but not the version.
        version: Option<u64>,
    },
    /// The version is already stored.
    #[error("{kind} `{name}` already has version {version}; push a new version number or delete it first")]
    VersionExists {
        /// What it is.
        kind: Kind,
        /// Its name.
        name: String,
        /// The version.
        version: u64,
    },
    /// Rollback has nothing to go back to.
    #[error("{kind} `{name}` has no earlier active version to roll back to")]
    NoEarlierVersion {
        /// What it is.
        kind: Kind,
        /// Its name.
        name: String,
    },
    /// The active version cannot be deleted.
    #[error(
        "version {version} of `{name}` is active; activate another version or delete the {kind}"
    )]
    ActiveVersion {
        /// What it is.
        kind: Kind,
        /// Its name.
        name: String,
        /// The version.
        version: u64,
    },
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

/// The text of a missing entry or version: "model `m` not found", "model `m` has no version 3".
pub(crate) fn not_found(kind: Kind, name: &str, version: Option<u64>) -> String {
    match version {
        None => format!("{kind} `{name}` not found"),
        Some(v) => format!("{kind} `{name}` has no version {v}"),
    }
}

/// Where a registry keeps its versions and their activation history. Calls are short and
/// synchronous.
pub trait VersionStore: Send + Sync {
    /// Records a new version; `VersionExists` if it exists.
    fn insert_version(&self, name: &str, record: &VersionRecord) -> Result<(), StoreError>;
    /// Makes `version` the active one, remembering the previous for rollback.
    fn activate(&self, name: &str, version: u64) -> Result<(), StoreError>;
    /// Goes back to the version active before the current one; returns it.
    fn rollback(&self, name: &str) -> Result<u64, StoreError>;
    /// The version [`Self::rollback`] would make active, without changing anything.
    fn rollback_target(&self, name: &str) -> Result<u64, StoreError>;
    /// Deletes a version that is not active.
    fn delete_version(&self, name: &str, version: u64) -> Result<VersionRecord, StoreError>;
    /// Deletes an entry and all its versions; returns what was deleted.
    fn delete_entry(&self, name: &str) -> Result<EntryRecord, StoreError>;
    /// One entry.
    fn entry(&self, name: &str) -> Result<EntryRecord, StoreError>;
    /// Every entry, by name.
    fn entries(&self) -> Result<Vec<EntryRecord>, StoreError>;
    /// Whether any version of any entry still refers to this blob.
    fn blob_in_use(&self, sha256: &str) -> Result<bool, StoreError>;
}

/// The digests of the precompiled artifacts the agent wrote, so that an artifact is trusted
/// only if its bytes are what was written.
pub trait ArtifactStore: Send + Sync {
    /// The sha256 recorded for the precompiled artifact `key`, if any.
    fn artifact_digest(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Records (or, with `None`, forgets) the sha256 of the precompiled artifact `key`.
    fn record_artifact(&self, key: &str, sha256: Option<&str>) -> Result<(), StoreError>;
}
