//! The model repository: what is stored, what is loaded, and which version serves.
//!
//! Pushed models live in the agent's data dir (SQLite + blobs) and can be activated, rolled
//! back and deleted; models from `--model-dir` are read-only. The versioning is the generic
//! [`Registry`]; this module adds what models have of their own: explicit version numbers, the
//! model dir, and how they are listed.

mod load;
mod model_dir;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inference::{BackendKind, Fallback};
use serde::Serialize;

use self::load::ModelHooks;
use super::pool::InferencePool;
use super::registry::{Listing, NewVersion, Registry, RepositoryError, Unready};
use super::runner::LoadedModel;
use crate::metrics::Metrics;
use crate::model_config::ModelConfig;
use crate::storage::{BlobStore, VersionStore};

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
    /// The engine serving it (`tract` or `ort`); `null` when it is not loaded. With
    /// `config.backend` `auto` or `auto-ort` this is the engine that loaded it.
    pub backend: Option<BackendKind>,
    /// Why it runs on its fallback engine: the engine tried first (`from`) and its error
    /// (`reason`); `null` when the first engine loaded it.
    pub fallback: Option<Fallback>,
    /// Why it is not loaded: the load error (absent when it is ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    /// Why requests without a version cannot be served: the active version's load error, or
    /// what is wrong with the model as a whole (absent when it serves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its versions, oldest first.
    pub versions: Vec<VersionSummary>,
}

impl From<Listing<ModelConfig>> for ModelSummary {
    fn from(l: Listing<ModelConfig>) -> Self {
        Self {
            name: l.name,
            source: if l.read_only {
                ModelSource::ModelDir
            } else {
                ModelSource::Repository
            },
            active_version: l.active,
            reason: l.reason,
            versions: l
                .versions
                .into_iter()
                .map(|v| VersionSummary {
                    version: v.record.version,
                    sha256: v.record.sha256,
                    size: v.record.size,
                    config: v.config,
                    created_at: v.record.created_at,
                    ready: v.ready,
                    backend: None,
                    fallback: None,
                    reason: v.reason,
                })
                .collect(),
        }
    }
}

/// Stored and loaded models.
#[derive(Debug)]
pub struct Repository {
    registry: Registry<ModelHooks>,
}

impl Repository {
    /// Opens the repository: reloads every stored version, then the read-only `model_dir`.
    /// A version that does not load (a stored one when, say, ONNX Runtime is gone; a
    /// model-dir one with bad bytes or an invalid `config.toml`) is logged and left unloaded
    /// with its reason (see [`Self::unready`]); a stored one stays stored.
    pub async fn open(
        store: Arc<dyn VersionStore>,
        blobs: BlobStore,
        model_dir: Option<&Path>,
        ort_library: Option<PathBuf>,
        pool: InferencePool,
        metrics: Metrics,
    ) -> Result<Self, RepositoryError> {
        let hooks = ModelHooks {
            ort_library,
            pool,
            metrics,
        };
        let registry = Registry::open(store, blobs, hooks).await?;
        if let Some(dir) = model_dir {
            model_dir::open(&registry, dir).await?;
        }
        Ok(Self { registry })
    }

    /// The loaded version that serves `name` (its active version, or the one asked for).
    pub fn resolve(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<Arc<LoadedModel>, RepositoryError> {
        self.registry.resolve(name, version)
    }

    /// Every model, by name.
    pub fn summaries(&self) -> Result<Vec<ModelSummary>, RepositoryError> {
        Ok(self
            .registry
            .listings()?
            .into_iter()
            .map(|l| self.with_engines(l.into()))
            .collect())
    }

    /// One model.
    pub fn summary(&self, name: &str) -> Result<ModelSummary, RepositoryError> {
        let listing = self.registry.listing(name)?;
        Ok(self.with_engines(listing.into()))
    }

    /// Fills in, for each loaded version, the engine serving it and any fallback.
    fn with_engines(&self, mut summary: ModelSummary) -> ModelSummary {
        for v in &mut summary.versions {
            if let Some(loaded) = self.registry.loaded(&summary.name, v.version) {
                v.backend = Some(loaded.model.backend());
                v.fallback = loaded.model.fallback().cloned();
            }
        }
        summary
    }

    /// Checks, loads, stores and (optionally) activates a new version. On any failure the
    /// repository is unchanged.
    pub async fn push(&self, push: PushRequest) -> Result<ModelSummary, RepositoryError> {
        let name = push.name.clone();
        self.registry
            .add(NewVersion {
                name: push.name,
                version: Some(push.version),
                bytes: push.bytes,
                config: push.config,
                expected_sha256: push.expected_sha256,
                activate: push.activate,
            })
            .await?;
        self.summary(&name)
    }

    /// Makes `version` the one requests go to.
    pub async fn activate(
        &self,
        name: &str,
        version: u64,
    ) -> Result<ModelSummary, RepositoryError> {
        self.registry.activate(name, version).await?;
        self.summary(name)
    }

    /// Goes back to the previously active version.
    pub async fn rollback(&self, name: &str) -> Result<ModelSummary, RepositoryError> {
        self.registry.rollback(name).await?;
        self.summary(name)
    }

    /// Deletes one version that is not active; in-flight requests on it finish first.
    pub async fn delete_version(&self, name: &str, version: u64) -> Result<(), RepositoryError> {
        self.registry.delete_version(name, version).await
    }

    /// Deletes a model and every version.
    pub async fn delete_model(&self, name: &str) -> Result<(), RepositoryError> {
        self.registry.delete(name).await
    }

    /// Models whose requests without a version fail because a load failed (their active
    /// version, or the model as a whole), by name: what readiness reports. A failed version
    /// that is not active is listed in [`Self::summaries`] with its reason, but not here.
    pub fn unready(&self) -> Vec<Unready> {
        self.registry.unready()
    }

    /// Loaded model versions.
    pub fn loaded_count(&self) -> usize {
        self.registry.loaded_count()
    }
}
