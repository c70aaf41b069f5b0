//! The model repository: what is stored, what is loaded, and which version serves.
//!
//! Pushed models live in the agent's data dir (SQLite + blobs) and can be activated, rolled
//! back and deleted; models from `--model-dir` are read-only. Requests take an `Arc` of the
//! active version, so a swap sends new requests to the new version while in-flight ones finish
//! on the old.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use inference::Model;
use serde::Serialize;

use super::pool::InferencePool;
use super::runner::LoadedModel;
use crate::metrics::Metrics;
use crate::model_config::ModelConfig;
use crate::storage::{BlobStore, ModelStore, StoreError, VersionRecord};

/// Where a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// Pushed over `/v1`, stored in the data dir; mutable.
    Repository,
    /// Found in `--model-dir`; read-only.
    ModelDir,
}

/// A push of one model version.
#[derive(Debug)]
pub struct PushRequest {
    /// Model name.
    pub name: String,
    /// Version number, 1 or more.
    pub version: u64,
    /// The ONNX bytes.
    pub bytes: Vec<u8>,
    /// How to serve it.
    pub config: ModelConfig,
    /// The sha256 the client computed; the upload is refused if the bytes differ.
    pub expected_sha256: Option<String>,
    /// Make it the active version (a model's first version is always activated).
    pub activate: bool,
}

/// A version as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    /// The version.
    pub version: u64,
    /// Hex SHA-256 of the ONNX bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Serving configuration.
    pub config: ModelConfig,
    /// Unix seconds when pushed (0 for `--model-dir` models).
    pub created_at: i64,
    /// Whether it is loaded and can serve.
    pub ready: bool,
}

/// A model as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Where it came from.
    pub source: ModelSource,
    /// The version requests without a version go to.
    pub active_version: Option<u64>,
    /// Its versions, oldest first.
    pub versions: Vec<VersionSummary>,
}

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// No such model or version.
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// The upload or its config was refused; nothing changed.
    #[error("{0}")]
    Rejected(String),
    /// Storage failed.
    #[error("storage failed")]
    Storage(#[source] StoreError),
    /// The agent failed for a reason of its own (not the request's).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for RepositoryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Storage(other),
        }
    }
}

struct Entry {
    source: ModelSource,
    active: Option<u64>,
    loaded: BTreeMap<u64, Arc<LoadedModel>>,
    /// Versions known but not loaded (for model-dir summaries).
    static_versions: Vec<VersionSummary>,
}

/// Stored and loaded models.
pub struct Repository {
    store: Arc<dyn ModelStore>,
    blobs: BlobStore,
    ort_library: Option<PathBuf>,
    pool: InferencePool,
    metrics: Metrics,
    entries: RwLock<HashMap<String, Entry>>,
    mutations: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository").finish_non_exhaustive()
    }
}

/// Checks a model name: 1 to 128 of letters, digits, `_`, `-`, `.`, starting with a letter or
/// digit.
pub fn validate_name(name: &str) -> Result<(), RepositoryError> {
    validate_name_of("model", name)
}

/// Checks the name of a `noun` (`model`, `function`): as [`validate_name`].
pub fn validate_name_of(noun: &str, name: &str) -> Result<(), RepositoryError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RepositoryError::Rejected(format!(
            "invalid {noun} name `{name}`: use 1 to 128 letters, digits, `_`, `-` or `.`, starting with a letter or digit"
        )))
    }
}

impl Repository {
    /// Opens the repository: reloads every stored version, then the read-only `model_dir`.
    /// A stored version that no longer loads (say, ONNX Runtime is gone) is logged and left
    /// unloaded; it stays stored.
    pub async fn open(
        store: Arc<dyn ModelStore>,
        blobs: BlobStore,
        model_dir: Option<&Path>,
        ort_library: Option<PathBuf>,
        pool: InferencePool,
        metrics: Metrics,
    ) -> Result<Self, RepositoryError> {
        let repo = Self {
            store,
            blobs,
            ort_library,
            pool,
            metrics,
            entries: RwLock::new(HashMap::new()),
            mutations: tokio::sync::Mutex::new(()),
        };
        for record in repo.store.models()? {
            let mut entry = Entry {
                source: ModelSource::Repository,
                active: record.active_version,
                loaded: BTreeMap::new(),
                static_versions: Vec::new(),
            };
            for v in &record.versions {
                match repo.load_stored(&record.name, v).await {
                    Ok(m) => {
                        entry.loaded.insert(v.version, m);
                    }
                    Err(e) => {
                        tracing::error!(model = %record.name, version = v.version, error = %e, "stored version failed to load")
                    }
                }
            }
            repo.write().insert(record.name.clone(), entry);
        }
        if let Some(dir) = model_dir {
            repo.open_model_dir(dir).await?;
        }
        repo.update_gauge();
        Ok(repo)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn update_gauge(&self) {
        let n = self.read().values().map(|e| e.loaded.len()).sum();
        self.metrics.set_loaded_models(n);
    }

    async fn load_stored(
        &self,
        name: &str,
        v: &VersionRecord,
    ) -> Result<Arc<LoadedModel>, RepositoryError> {
        let config: ModelConfig = serde_json::from_str(&v.config_json).map_err(|e| {
            RepositoryError::Rejected(format!(
                "stored config of `{name}` v{} is invalid: {e}",
                v.version
            ))
        })?;
        let blobs = self.blobs.clone();
        let sha = v.sha256.clone();
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&sha))
            .await
            .expect("blob read does not panic")?;
        self.load(name, v.version, bytes, config).await
    }

    /// Loads bytes into a serving model, off the reactor.
    async fn load(
        &self,
        name: &str,
        version: u64,
        bytes: Vec<u8>,
        config: ModelConfig,
    ) -> Result<Arc<LoadedModel>, RepositoryError> {
        config.validate().map_err(RepositoryError::Rejected)?;
        let options = config.load_options(self.ort_library.as_deref());
        let model = tokio::task::spawn_blocking(move || Model::load(bytes, &options))
            .await
            .expect("model loading catches engine panics")
            .map_err(|e| {
                RepositoryError::Rejected(format!(
                    "model failed to load: {}",
                    inference::error_chain(&e)
                ))
            })?;
        if config.batching.is_some() {
            LoadedModel::check_batchable(model.metadata()).map_err(RepositoryError::Rejected)?;
        }
        Ok(Arc::new(LoadedModel::new(
            name.to_owned(),
            version,
            config,
            model,
            self.pool.clone(),
            self.metrics.clone(),
        )))
    }

    async fn open_model_dir(&self, dir: &Path) -> Result<(), RepositoryError> {
        let read_dir = std::fs::read_dir(dir).map_err(|source| {
            RepositoryError::Storage(StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })
        })?;
        let mut names: Vec<PathBuf> = read_dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        names.sort();
        for model_path in names {
            let name = model_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if validate_name(&name).is_err() {
                tracing::warn!(path = %model_path.display(), "skipping model-dir entry with an invalid name");
                continue;
            }
            if self.read().contains_key(&name) {
                tracing::warn!(model = %name, "a pushed model shadows the model-dir model of the same name");
                continue;
            }
            let config = match std::fs::read_to_string(model_path.join("config.toml")) {
                Ok(text) => match toml::from_str::<ModelConfig>(&text) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(model = %name, error = %e, "invalid config.toml; skipping the model");
                        continue;
                    }
                },
                Err(_) => ModelConfig::default(),
            };
            let mut versions: Vec<u64> = std::fs::read_dir(&model_path)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .filter(|v| *v >= 1 && model_path.join(v.to_string()).join("model.onnx").is_file())
                .collect();
            versions.sort();
            let mut entry = Entry {
                source: ModelSource::ModelDir,
                active: versions.last().copied(),
                loaded: BTreeMap::new(),
                static_versions: Vec::new(),
            };
            for v in versions {
                let file = model_path.join(v.to_string()).join("model.onnx");
                let bytes = match std::fs::read(&file) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(path = %file.display(), error = %e, "unreadable model file");
                        continue;
                    }
                };
                entry.static_versions.push(VersionSummary {
                    version: v,
                    sha256: inference::Model::inspect(&bytes)
                        .map(|m| m.sha256)
                        .unwrap_or_default(),
                    size: bytes.len() as u64,
                    config: config.clone(),
                    created_at: 0,
                    ready: false,
                });
                match self.load(&name, v, bytes, config.clone()).await {
                    Ok(m) => {
                        entry.loaded.insert(v, m);
                    }
                    Err(e) => {
                        tracing::error!(model = %name, version = v, error = %e, "model-dir version failed to load")
                    }
                }
            }
            tracing::info!(model = %name, versions = entry.loaded.len(), "loaded from model dir");
            self.write().insert(name, entry);
        }
        Ok(())
    }

    /// The loaded version that serves `name` (its active version, or the one asked for).
    pub fn resolve(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<Arc<LoadedModel>, RepositoryError> {
        let entries = self.read();
        let entry = entries
            .get(name)
            .ok_or_else(|| RepositoryError::NotFound(format!("model `{name}` not found")))?;
        let v = match version.or(entry.active) {
            Some(v) => v,
            None => {
                return Err(RepositoryError::NotFound(format!(
                    "model `{name}` has no active version"
                )))
            }
        };
        entry.loaded.get(&v).cloned().ok_or_else(|| {
            RepositoryError::NotFound(format!("model `{name}` has no ready version {v}"))
        })
    }

    /// Every model, by name.
    pub fn summaries(&self) -> Result<Vec<ModelSummary>, RepositoryError> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names.iter().map(|n| self.summary(n)).collect()
    }

    /// One model.
    pub fn summary(&self, name: &str) -> Result<ModelSummary, RepositoryError> {
        let (source, active, loaded, statics) = {
            let entries = self.read();
            let e = entries
                .get(name)
                .ok_or_else(|| RepositoryError::NotFound(format!("model `{name}` not found")))?;
            (
                e.source,
                e.active,
                e.loaded.keys().copied().collect::<Vec<_>>(),
                e.static_versions.clone(),
            )
        };
        let versions = match source {
            ModelSource::ModelDir => statics
                .into_iter()
                .map(|mut v| {
                    v.ready = loaded.contains(&v.version);
                    v
                })
                .collect(),
            ModelSource::Repository => self
                .store
                .model(name)?
                .versions
                .into_iter()
                .map(|v| VersionSummary {
                    version: v.version,
                    sha256: v.sha256,
                    size: v.size,
                    config: serde_json::from_str(&v.config_json).unwrap_or_default(),
                    created_at: v.created_at,
                    ready: loaded.contains(&v.version),
                })
                .collect(),
        };
        Ok(ModelSummary {
            name: name.to_owned(),
            source,
            active_version: active,
            versions,
        })
    }

    fn ensure_mutable(&self, name: &str) -> Result<(), RepositoryError> {
        match self.read().get(name).map(|e| e.source) {
            Some(ModelSource::ModelDir) => Err(RepositoryError::Conflict(format!(
                "model `{name}` comes from the read-only --model-dir; change it there"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks, loads, stores and (optionally) activates a new version. On any failure the
    /// repository is unchanged.
    pub async fn push(&self, push: PushRequest) -> Result<ModelSummary, RepositoryError> {
        validate_name(&push.name)?;
        if push.version == 0 {
            return Err(RepositoryError::Rejected("versions start at 1".to_owned()));
        }
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(&push.name)?;
        let actual = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&push.bytes))
        };
        if let Some(expected) = &push.expected_sha256 {
            if !expected.eq_ignore_ascii_case(&actual) {
                return Err(RepositoryError::Rejected(format!(
                    "sha256 mismatch: the client declared {expected} but the upload hashes to {actual}; the upload is corrupted or incomplete"
                )));
            }
        }
        if self
            .read()
            .get(&push.name)
            .is_some_and(|e| e.loaded.contains_key(&push.version))
            || self
                .store
                .model(&push.name)
                .is_ok_and(|m| m.versions.iter().any(|v| v.version == push.version))
        {
            return Err(RepositoryError::Conflict(format!(
                "model `{}` already has version {}; push a new version number or delete it first",
                push.name, push.version
            )));
        }
        let size = push.bytes.len() as u64;
        let config_json = serde_json::to_string(&push.config).expect("configs serialize");
        let loaded = self
            .load(&push.name, push.version, push.bytes.clone(), push.config)
            .await?;

        let blobs = self.blobs.clone();
        let bytes = push.bytes;
        let sha = tokio::task::spawn_blocking(move || blobs.put(&bytes))
            .await
            .expect("blob write does not panic")?;
        let record = VersionRecord {
            version: push.version,
            sha256: sha.clone(),
            size,
            config_json,
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        };
        if let Err(e) = self.store.insert_version(&push.name, &record) {
            if !self.store.blob_in_use(&sha).unwrap_or(true) {
                let _ = self.blobs.remove(&sha);
            }
            return Err(e.into());
        }
        let first = self.read().get(&push.name).and_then(|e| e.active).is_none();
        if push.activate || first {
            self.store.activate(&push.name, push.version)?;
        }
        {
            let mut entries = self.write();
            let entry = entries.entry(push.name.clone()).or_insert_with(|| Entry {
                source: ModelSource::Repository,
                active: None,
                loaded: BTreeMap::new(),
                static_versions: Vec::new(),
            });
            entry.loaded.insert(push.version, loaded);
            if push.activate || first {
                entry.active = Some(push.version);
            }
        }
        self.update_gauge();
        tracing::info!(model = %push.name, version = push.version, sha256 = %sha, "model version pushed");
        self.summary(&push.name)
    }

    /// Makes `version` the one requests go to.
    pub async fn activate(
        &self,
        name: &str,
        version: u64,
    ) -> Result<ModelSummary, RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        if self
            .read()
            .get(name)
            .is_some_and(|e| !e.loaded.contains_key(&version))
        {
            self.store.model(name)?;
        }
        self.store.activate(name, version)?;
        if let Some(e) = self.write().get_mut(name) {
            e.active = Some(version);
        }
        tracing::info!(model = %name, version, "version activated");
        self.summary(name)
    }

    /// Goes back to the previously active version.
    pub async fn rollback(&self, name: &str) -> Result<ModelSummary, RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        let version = self.store.rollback(name)?;
        if let Some(e) = self.write().get_mut(name) {
            e.active = Some(version);
        }
        tracing::info!(model = %name, version, "rolled back");
        self.summary(name)
    }

    /// Deletes one version that is not active; in-flight requests on it finish first.
    pub async fn delete_version(&self, name: &str, version: u64) -> Result<(), RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        let record = self.store.delete_version(name, version)?;
        if let Some(e) = self.write().get_mut(name) {
            e.loaded.remove(&version);
        }
        self.drop_blob_if_unused(&record.sha256);
        self.update_gauge();
        Ok(())
    }

    /// Deletes a model and every version.
    pub async fn delete_model(&self, name: &str) -> Result<(), RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        let record = self.store.delete_model(name)?;
        self.write().remove(name);
        for v in record.versions {
            self.drop_blob_if_unused(&v.sha256);
        }
        self.update_gauge();
        Ok(())
    }

    fn drop_blob_if_unused(&self, sha: &str) {
        match self.store.blob_in_use(sha) {
            Ok(false) => {
                if let Err(e) = self.blobs.remove(sha) {
                    tracing::warn!(sha256 = %sha, error = %e, "failed to remove an unused blob");
                }
            }
            Ok(true) => {}
            Err(e) => tracing::warn!(sha256 = %sha, error = %e, "could not check blob use"),
        }
    }

    /// Loaded model versions.
    pub fn loaded_count(&self) -> usize {
        self.read().values().map(|e| e.loaded.len()).sum()
    }
}
