//! The function repository: stored modules with their manifests, versions, activation and
//! rollback (like models), each loaded as a pre-linked `InstancePre` from a precompiled
//! artifact cached on disk; and invocation under the manifest's limits.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use functions_runtime::{CompileError, Grants, GraphSource, GuestState, InstancePre, WasmRuntime};
use inference::Model;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::{validate_name_of, Repository, RepositoryError};
use crate::config::FunctionsConfig;
use crate::metrics::Metrics;
use crate::service::manifest::FunctionManifest;
use crate::storage::{BlobStore, ModelStore, VersionRecord};

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
    slots: Arc<Semaphore>,
    env: Vec<(String, String)>,
    grants: Grants,
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

/// A function version just loaded, and how.
struct Loaded {
    function: Arc<LoadedFunction>,
    /// `compiled` or `artifact`.
    source: &'static str,
    took: Duration,
    /// Whether this load wrote the artifact (no earlier load did).
    wrote_artifact: bool,
}

#[derive(Default)]
struct Entry {
    active: Option<u64>,
    loaded: BTreeMap<u64, Arc<LoadedFunction>>,
}

/// Stored and loaded functions.
pub struct Functions {
    runtime: Arc<WasmRuntime>,
    store: Arc<dyn ModelStore>,
    blobs: BlobStore,
    cache_dir: PathBuf,
    source: Arc<dyn GraphSource>,
    limits: FunctionsConfig,
    metrics: Metrics,
    entries: RwLock<HashMap<String, Entry>>,
    mutations: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions").finish_non_exhaustive()
    }
}

mod call;
mod routes;

pub use call::{CallError, FunctionResponse};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Functions {
    /// Opens the repository and loads every stored version (from cached artifacts when this
    /// engine wrote them). A version that no longer loads is logged and left unloaded.
    #[allow(
        clippy::too_many_arguments,
        reason = "one constructor wiring shared parts"
    )]
    pub async fn open(
        runtime: Arc<WasmRuntime>,
        store: Arc<dyn ModelStore>,
        blobs: BlobStore,
        cache_dir: PathBuf,
        source: Arc<dyn GraphSource>,
        limits: FunctionsConfig,
        metrics: Metrics,
    ) -> Result<Self, RepositoryError> {
        let functions = Self {
            runtime,
            store,
            blobs,
            cache_dir,
            source,
            limits,
            metrics,
            entries: RwLock::new(HashMap::new()),
            mutations: tokio::sync::Mutex::new(()),
        };
        for record in functions.store.models()? {
            let mut entry = Entry {
                active: record.active_version,
                loaded: BTreeMap::new(),
            };
            for v in record.versions {
                let manifest: FunctionManifest = match serde_json::from_str(&v.config_json) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::error!(function = %record.name, version = v.version, error = %e, "stored manifest unreadable");
                        continue;
                    }
                };
                let wasm = match functions.blobs.get(&v.sha256) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::error!(function = %record.name, version = v.version, error = %e, "stored module unreadable");
                        continue;
                    }
                };
                match functions
                    .load(&record.name, v.version, wasm, manifest)
                    .await
                {
                    Ok(f) => {
                        functions
                            .metrics
                            .observe_cold_start(&record.name, f.source, f.took);
                        entry.loaded.insert(v.version, f.function);
                    }
                    Err(e) => {
                        tracing::error!(function = %record.name, version = v.version, error = %e, "stored function does not load")
                    }
                }
            }
            functions.write().insert(record.name, entry);
        }
        Ok(functions)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Compiles (or deserializes) and links a module off the reactor; a module whose initial
    /// memory exceeds its manifest's `memory_mib` is refused before its artifact is written.
    async fn load(
        &self,
        name: &str,
        version: u64,
        wasm: Vec<u8>,
        manifest: FunctionManifest,
    ) -> Result<Loaded, RepositoryError> {
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&wasm))
        };
        let runtime = self.runtime.clone();
        let cache_dir = self.cache_dir.clone();
        let sha = sha256.clone();
        let key = format!("{sha256}-{}", self.runtime.engine_hash());
        let trusted = self.store.artifact_digest(&key).unwrap_or_else(|e| {
            tracing::warn!(function = %name, error = %e, "cannot read the artifact digest; recompiling");
            None
        });
        let memory_mib = manifest.memory_mib;
        let started = Instant::now();
        let (pre, compiled, written) = tokio::task::spawn_blocking(move || {
            let cached =
                runtime.load_within(&cache_dir, &sha, &wasm, trusted.as_deref(), memory_mib)?;
            let pre = runtime.prepare(&cached.module)?;
            Ok::<_, CompileError>((pre, cached.compiled, cached.written))
        })
        .await
        .map_err(|e| RepositoryError::Internal(format!("compiling the module failed: {e}")))?
        .map_err(|e| match e {
            CompileError::Cache { .. } => RepositoryError::Internal(e.to_string()),
            e => RepositoryError::Rejected(e.to_string()),
        })?;
        let wrote_artifact = written.is_some();
        if let Some(digest) = written {
            if let Err(e) = self.store.record_artifact(&key, Some(&digest)) {
                tracing::warn!(function = %name, error = %e, "cannot record the artifact digest; it will be recompiled at the next start");
            }
        }
        let source = if compiled { "compiled" } else { "artifact" };
        let took = started.elapsed();
        tracing::info!(function = %name, version, source, elapsed_us = took.as_micros() as u64, "function loaded");
        let max_instances = manifest.max_instances.clamp(1, Semaphore::MAX_PERMITS);
        let function = Arc::new(LoadedFunction {
            name: name.to_owned(),
            version,
            sha256,
            pre,
            slots: Arc::new(Semaphore::new(max_instances)),
            env: manifest
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            grants: Grants {
                models: manifest.models.clone().into(),
                allow_load: manifest.allow_load,
                source: self.source.clone(),
            },
            manifest,
        });
        Ok(Loaded {
            function,
            source,
            took,
            wrote_artifact,
        })
    }

    /// Checks, compiles, stores and (optionally) activates a new version, numbered one past the
    /// newest. On any failure nothing changes.
    pub async fn deploy(&self, deploy: DeployRequest) -> Result<FunctionSummary, RepositoryError> {
        validate_name_of("function", &deploy.name)?;
        deploy.manifest.validate(&self.limits)?;
        let actual = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&deploy.wasm))
        };
        if let Some(expected) = &deploy.expected_sha256 {
            if !expected.eq_ignore_ascii_case(&actual) {
                return Err(RepositoryError::Rejected(format!(
                    "sha256 mismatch: the client declared {expected} but the upload hashes to {actual}"
                )));
            }
        }
        let _guard = self.mutations.lock().await;
        self.check_routes(&deploy.name, &deploy.manifest)?;
        let version = match self.store.model(&deploy.name) {
            Ok(m) => m.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1,
            Err(crate::storage::StoreError::NotFound(_)) => 1,
            Err(e) => return Err(e.into()),
        };
        let size = deploy.wasm.len() as u64;
        let manifest_json = serde_json::to_string(&deploy.manifest).expect("manifests serialize");
        let loaded = self
            .load(&deploy.name, version, deploy.wasm.clone(), deploy.manifest)
            .await?;
        let sha = match self
            .store_version(&deploy.name, version, deploy.wasm, size, manifest_json)
            .await
        {
            Ok(sha) => sha,
            Err(e) => {
                // Nothing refers to a module that was never stored: no artifact stays behind.
                if loaded.wrote_artifact {
                    self.drop_blob_if_unused(&loaded.function.sha256);
                }
                return Err(e);
            }
        };
        // Series are created only for a function that exists.
        self.metrics
            .observe_cold_start(&deploy.name, loaded.source, loaded.took);
        let loaded = loaded.function;
        let first = self
            .read()
            .get(&deploy.name)
            .and_then(|e| e.active)
            .is_none();
        let activate = deploy.activate || first;
        if activate {
            self.store.activate(&deploy.name, version)?;
        }
        {
            let mut entries = self.write();
            let entry = entries.entry(deploy.name.clone()).or_default();
            entry.loaded.insert(version, loaded);
            if activate {
                entry.active = Some(version);
            }
        }
        tracing::info!(function = %deploy.name, version, sha256 = %sha, "function deployed");
        self.summary(&deploy.name)
    }

    /// Stores the module's bytes and the version's record; returns the module's sha256.
    async fn store_version(
        &self,
        name: &str,
        version: u64,
        wasm: Vec<u8>,
        size: u64,
        config_json: String,
    ) -> Result<String, RepositoryError> {
        let blobs = self.blobs.clone();
        let sha = tokio::task::spawn_blocking(move || blobs.put(&wasm))
            .await
            .map_err(|e| RepositoryError::Internal(format!("storing the module failed: {e}")))??;
        let record = VersionRecord {
            version,
            sha256: sha.clone(),
            size,
            config_json,
            created_at: now(),
        };
        if let Err(e) = self.store.insert_version(name, &record) {
            self.drop_blob_if_unused(&sha);
            return Err(e.into());
        }
        Ok(sha)
    }

    /// Makes `version` the one calls go to.
    pub async fn activate(
        &self,
        name: &str,
        version: u64,
    ) -> Result<FunctionSummary, RepositoryError> {
        let _guard = self.mutations.lock().await;
        if let Some(manifest) = self.manifest_of(name, version) {
            self.check_routes(name, &manifest)?;
        }
        self.store.activate(name, version)?;
        if let Some(e) = self.write().get_mut(name) {
            e.active = Some(version);
        }
        tracing::info!(function = %name, version, "function version activated");
        self.summary(name)
    }

    /// Goes back to the previously active version.
    pub async fn rollback(&self, name: &str) -> Result<FunctionSummary, RepositoryError> {
        let _guard = self.mutations.lock().await;
        let target = self.store.rollback_target(name)?;
        if let Some(manifest) = self.manifest_of(name, target) {
            self.check_routes(name, &manifest)?;
        }
        let version = self.store.rollback(name)?;
        if let Some(e) = self.write().get_mut(name) {
            e.active = Some(version);
        }
        tracing::info!(function = %name, version, "function rolled back");
        self.summary(name)
    }

    /// Deletes a version that is not active; calls in flight on it finish first.
    pub async fn delete_version(&self, name: &str, version: u64) -> Result<(), RepositoryError> {
        let _guard = self.mutations.lock().await;
        let record = self.store.delete_version(name, version)?;
        if let Some(e) = self.write().get_mut(name) {
            e.loaded.remove(&version);
        }
        self.drop_blob_if_unused(&record.sha256);
        Ok(())
    }

    /// Deletes a function and every version.
    pub async fn delete(&self, name: &str) -> Result<(), RepositoryError> {
        let _guard = self.mutations.lock().await;
        let record = self.store.delete_model(name)?;
        self.write().remove(name);
        for v in record.versions {
            self.drop_blob_if_unused(&v.sha256);
        }
        tracing::info!(function = %name, "function deleted");
        Ok(())
    }

    fn drop_blob_if_unused(&self, sha: &str) {
        if let Ok(false) = self.store.blob_in_use(sha) {
            if let Err(e) = self.blobs.remove(sha) {
                tracing::warn!(sha256 = %sha, error = %e, "failed to remove an unused module");
            }
            let key = format!("{sha}-{}", self.runtime.engine_hash());
            let _ = self.store.record_artifact(&key, None);
            self.runtime.forget_artifact(&self.cache_dir, sha);
        }
    }

    /// Every function, by name.
    pub fn summaries(&self) -> Result<Vec<FunctionSummary>, RepositoryError> {
        self.store
            .models()?
            .into_iter()
            .map(|m| self.summary(&m.name))
            .collect()
    }

    /// One function.
    pub fn summary(&self, name: &str) -> Result<FunctionSummary, RepositoryError> {
        let record = self.store.model(name)?;
        Ok(FunctionSummary {
            name: record.name,
            active_version: record.active_version,
            versions: record
                .versions
                .into_iter()
                .map(|v| FunctionVersion {
                    version: v.version,
                    sha256: v.sha256,
                    size: v.size,
                    created_at: v.created_at,
                    manifest: serde_json::from_str(&v.config_json).unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// The active version of `name`.
    pub fn active(&self, name: &str) -> Result<Arc<LoadedFunction>, RepositoryError> {
        let entries = self.read();
        let entry = entries
            .get(name)
            .ok_or_else(|| RepositoryError::NotFound(format!("function `{name}` not found")))?;
        entry
            .active
            .and_then(|v| entry.loaded.get(&v))
            .cloned()
            .ok_or_else(|| {
                RepositoryError::NotFound(format!("function `{name}` has no loaded active version"))
            })
    }
}
