//! The function repository: stored modules with their manifests, versions, activation and
//! rollback (like models), each loaded as a pre-linked `InstancePre` from a precompiled
//! artifact cached on disk; and invocation under the manifest's limits.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use inference::Model;
use serde::Serialize;
use tokio::sync::Semaphore;
use wasmtime::InstancePre;

use super::{validate_name, Repository, RepositoryError};
use crate::config::FunctionsConfig;
use crate::metrics::Metrics;
use crate::service::manifest::FunctionManifest;
use crate::storage::{BlobStore, ModelStore, VersionRecord};
use crate::wasm::wagi::{self, CgiRequest, CgiResponse};
use crate::wasm::{
    CompileError, Grants, GraphSource, GuestLimits, GuestState, Invocation, InvokeError,
    WasmRuntime,
};

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

/// What one call produced, with its timings.
#[derive(Debug)]
pub struct FunctionResponse {
    /// The guest's response.
    pub response: CgiResponse,
    /// Time to instantiate.
    pub instantiate: Duration,
    /// Whole time of the call.
    pub latency: Duration,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest failed or was stopped.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The guest's stdout is not a CGI response.
    #[error(transparent)]
    BadOutput(#[from] wagi::BadOutput),
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

mod routes;

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
                        entry.loaded.insert(v.version, f);
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

    /// Compiles (or deserializes) and links a module off the reactor.
    async fn load(
        &self,
        name: &str,
        version: u64,
        wasm: Vec<u8>,
        manifest: FunctionManifest,
    ) -> Result<Arc<LoadedFunction>, RepositoryError> {
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
        let started = Instant::now();
        let (pre, compiled, written) = tokio::task::spawn_blocking(move || {
            let cached = runtime.load_verified(&cache_dir, &sha, &wasm, trusted.as_deref())?;
            let pre = runtime.prepare(&cached.module)?;
            Ok::<_, CompileError>((pre, cached.compiled, cached.written))
        })
        .await
        .map_err(|e| RepositoryError::Internal(format!("compiling the module failed: {e}")))?
        .map_err(|e| match e {
            CompileError::Cache { .. } => RepositoryError::Internal(e.to_string()),
            e => RepositoryError::Rejected(e.to_string()),
        })?;
        if let Some(digest) = written {
            if let Err(e) = self.store.record_artifact(&key, Some(&digest)) {
                tracing::warn!(function = %name, error = %e, "cannot record the artifact digest; it will be recompiled at the next start");
            }
        }
        let source = if compiled { "compiled" } else { "artifact" };
        self.metrics
            .observe_cold_start(name, source, started.elapsed());
        tracing::info!(function = %name, version, source, elapsed_us = started.elapsed().as_micros() as u64, "function loaded");
        Ok(Arc::new(LoadedFunction {
            name: name.to_owned(),
            version,
            sha256,
            pre,
            slots: Arc::new(Semaphore::new(manifest.max_instances.max(1))),
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
        }))
    }

    /// Checks, compiles, stores and (optionally) activates a new version, numbered one past the
    /// newest. On any failure nothing changes.
    pub async fn deploy(&self, deploy: DeployRequest) -> Result<FunctionSummary, RepositoryError> {
        validate_name(&deploy.name)?;
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
        let initial = loaded
            .pre
            .module()
            .resources_required()
            .max_initial_memory_size;
        let cap = loaded.manifest.memory_mib << 20;
        if let Some(bytes) = initial.map(|pages| pages.saturating_mul(64 << 10)) {
            if bytes > cap {
                return Err(RepositoryError::Rejected(format!(
                    "the module's initial memory is {bytes} bytes, more than its manifest's `memory_mib` ({} MiB) allows",
                    loaded.manifest.memory_mib
                )));
            }
        }
        let blobs = self.blobs.clone();
        let wasm = deploy.wasm;
        let sha = tokio::task::spawn_blocking(move || blobs.put(&wasm))
            .await
            .map_err(|e| RepositoryError::Internal(format!("storing the module failed: {e}")))??;
        let record = VersionRecord {
            version,
            sha256: sha.clone(),
            size,
            config_json: manifest_json,
            created_at: now(),
        };
        if let Err(e) = self.store.insert_version(&deploy.name, &record) {
            self.drop_blob_if_unused(&sha);
            return Err(e.into());
        }
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
            let _ = std::fs::remove_file(self.cache_dir.join(format!("{key}.cwasm")));
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

    /// Runs the function on one request: admission (503 past `max_instances`), a fresh
    /// instance on a blocking thread, then the CGI response.
    pub async fn call(
        &self,
        function: Arc<LoadedFunction>,
        request: CgiRequest,
        body: Vec<u8>,
    ) -> Result<FunctionResponse, CallError> {
        let started = Instant::now();
        let name = function.name.clone();
        let outcome = self.call_inner(function, request, body, started).await;
        let (label, instantiate) = match &outcome {
            Ok(r) => ("ok", Some(r.instantiate)),
            Err(CallError::BadOutput(_)) => ("bad_output", None),
            Err(CallError::Invoke(e)) => (
                match e {
                    InvokeError::Timeout { .. } => "timeout",
                    InvokeError::OutOfFuel { .. } => "fuel",
                    InvokeError::Memory { .. } => "memory",
                    InvokeError::Trap { .. } => "trap",
                    InvokeError::Busy { .. } => "busy",
                    InvokeError::Host { .. } => "error",
                },
                None,
            ),
        };
        self.metrics
            .observe_function(&name, label, started.elapsed(), instantiate);
        match &outcome {
            Ok(r) => {
                tracing::info!(function = %name, status = r.response.status, instantiate_us = r.instantiate.as_micros() as u64, elapsed_us = started.elapsed().as_micros() as u64, "function called")
            }
            Err(e) => {
                tracing::warn!(function = %name, outcome = label, error = %e, "function call failed")
            }
        }
        outcome
    }

    async fn call_inner(
        &self,
        function: Arc<LoadedFunction>,
        request: CgiRequest,
        body: Vec<u8>,
        started: Instant,
    ) -> Result<FunctionResponse, CallError> {
        let Ok(permit) = function.slots.clone().try_acquire_owned() else {
            return Err(InvokeError::Busy {
                function: function.name.clone(),
                reason: format!(
                    "all {} instances of its manifest's `max_instances` are running",
                    function.manifest.max_instances
                ),
            }
            .into());
        };
        let runtime = self.runtime.clone();
        let invocation = Invocation {
            function: function.name.clone(),
            args: vec![function.name.clone()],
            env: request.env(&function.env),
            stdin: body,
            limits: GuestLimits {
                memory_mib: function.manifest.memory_mib,
                timeout_ms: function.manifest.timeout_ms,
                fuel: function.manifest.fuel,
            },
            grants: function.grants.clone(),
        };
        let name = function.name.clone();
        let output = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.invoke(&function.pre, invocation)
        })
        .await
        .map_err(|e| InvokeError::Host {
            function: name,
            reason: format!("the call's thread failed: {e}"),
        })??;
        let response = wagi::parse_output(&output.stdout)?;
        Ok(FunctionResponse {
            response,
            instantiate: output.instantiate,
            latency: started.elapsed(),
        })
    }
}
