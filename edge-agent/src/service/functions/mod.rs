//! The function repository: stored modules with their manifests, versions, activation and
//! rollback (the generic [`Registry`], like models), each loaded as a pre-linked
//! `InstancePre` from a precompiled artifact cached on disk; manifest routes; and invocation
//! under the manifest's limits.

mod admission;
mod call;
mod load;
mod routes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use functions_runtime::InstancePre;
use inference::Model;
use serde::Serialize;

pub use call::{CallError, FunctionResponse};

use self::load::FunctionHooks;
use super::registry::{Listing, NewVersion, Registry, RepositoryError};
use super::Repository;
use crate::config::FunctionsConfig;
use crate::metrics::Metrics;
use crate::service::manifest::FunctionManifest;
use crate::storage::{ArtifactStore, BlobStore, VersionStore};
use functions_runtime::{Grants, GraphSource, GuestState, WasmRuntime};

impl GraphSource for Repository {
    fn graph(&self, name: &str, version: Option<u64>) -> Option<Arc<Model>> {
        self.resolve(name, version).ok().map(|m| m.model.clone())
    }
}

/// A function version ready to run.
pub struct LoadedFunction {
    /// The function name.
    pub name: String,
    /// The version.
    pub version: u64,
    /// Its manifest.
    pub manifest: FunctionManifest,
    /// The module's sha256.
    pub sha256: String,
    pre: InstancePre<GuestState>,
    slots: admission::Admission,
    env: Vec<(String, String)>,
    grants: Grants,
    /// How it was loaded (`compiled` or `artifact`) and how long that took.
    cold_start: (&'static str, Duration),
}

impl std::fmt::Debug for LoadedFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedFunction")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// One version as listed.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionVersion {
    /// The version.
    pub version: u64,
    /// The module's sha256.
    pub sha256: String,
    /// The module's size in bytes.
    pub size: u64,
    /// When it was deployed (Unix seconds).
    pub created_at: i64,
    /// Its manifest.
    pub manifest: FunctionManifest,
}

/// A function as listed.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSummary {
    /// The name.
    pub name: String,
    /// The version that serves calls.
    pub active_version: Option<u64>,
    /// Every stored version.
    pub versions: Vec<FunctionVersion>,
}

impl From<Listing<FunctionManifest>> for FunctionSummary {
    fn from(l: Listing<FunctionManifest>) -> Self {
        Self {
            name: l.name,
            active_version: l.active,
            versions: l
                .versions
                .into_iter()
                .map(|v| FunctionVersion {
                    version: v.record.version,
                    sha256: v.record.sha256,
                    size: v.record.size,
                    created_at: v.record.created_at,
                    manifest: v.config,
                })
                .collect(),
        }
    }
}

/// A deploy request.
#[derive(Debug)]
pub struct DeployRequest {
    /// The function name.
    pub name: String,
    /// The module bytes.
    pub wasm: Vec<u8>,
    /// Its manifest.
    pub manifest: FunctionManifest,
    /// Make it active (a function's first version always is).
    pub activate: bool,
    /// The sha256 the client declared, checked against the bytes.
    pub expected_sha256: Option<String>,
}

/// Where [`Functions`] keeps things and what it shares with the rest of the agent.
pub struct FunctionStores {
    /// The versions and their activation history.
    pub versions: Arc<dyn VersionStore>,
    /// The digests of the precompiled artifacts.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// The module bytes.
    pub blobs: BlobStore,
    /// Where precompiled artifacts are cached.
    pub cache_dir: PathBuf,
}

/// Stored and loaded functions.
#[derive(Debug)]
pub struct Functions {
    registry: Registry<FunctionHooks>,
}

impl Functions {
    /// Opens the repository and loads every stored version (from cached artifacts when this
    /// engine wrote them). A version that no longer loads is logged and left unloaded.
    pub async fn open(
        runtime: Arc<WasmRuntime>,
        stores: FunctionStores,
        source: Arc<dyn GraphSource>,
        limits: FunctionsConfig,
        metrics: Metrics,
    ) -> Result<Self, RepositoryError> {
        let hooks = FunctionHooks {
            runtime,
            artifacts: stores.artifacts,
            cache_dir: stores.cache_dir,
            source,
            limits,
            metrics,
        };
        let registry = Registry::open(stores.versions, stores.blobs, hooks).await?;
        Ok(Self { registry })
    }

    /// Checks, compiles, stores and (optionally) activates a new version, numbered one past the
    /// newest. On any failure nothing changes.
    pub async fn deploy(&self, deploy: DeployRequest) -> Result<FunctionSummary, RepositoryError> {
        let name = deploy.name.clone();
        self.registry
            .add(NewVersion {
                name: deploy.name,
                version: None,
                bytes: deploy.wasm,
                config: deploy.manifest,
                expected_sha256: deploy.expected_sha256,
                activate: deploy.activate,
            })
            .await?;
        self.summary(&name)
    }

    /// Makes `version` the one calls go to.
    pub async fn activate(
        &self,
        name: &str,
        version: u64,
    ) -> Result<FunctionSummary, RepositoryError> {
        self.registry.activate(name, version).await?;
        self.summary(name)
    }

    /// Goes back to the previously active version.
    pub async fn rollback(&self, name: &str) -> Result<FunctionSummary, RepositoryError> {
        self.registry.rollback(name).await?;
        self.summary(name)
    }

    /// Deletes a version that is not active; calls in flight on it finish first.
    pub async fn delete_version(&self, name: &str, version: u64) -> Result<(), RepositoryError> {
        self.registry.delete_version(name, version).await
    }

    /// Deletes a function and every version.
    pub async fn delete(&self, name: &str) -> Result<(), RepositoryError> {
        self.registry.delete(name).await
    }

    /// Every function, by name.
    pub fn summaries(&self) -> Result<Vec<FunctionSummary>, RepositoryError> {
        Ok(self
            .registry
            .listings()?
            .into_iter()
            .map(FunctionSummary::from)
            .collect())
    }

    /// One function.
    pub fn summary(&self, name: &str) -> Result<FunctionSummary, RepositoryError> {
        self.registry.listing(name).map(FunctionSummary::from)
    }

    /// The active version of `name`.
    pub fn active(&self, name: &str) -> Result<Arc<LoadedFunction>, RepositoryError> {
        self.registry.resolve(name, None)
    }
}
