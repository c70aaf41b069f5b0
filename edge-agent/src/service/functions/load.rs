//! What the registry needs to know about functions: how a module compiles (or deserializes
//! from a trusted artifact) and links, which manifests may serve together (routes), the
//! artifact cleanup when a module goes, and the cold-start metric.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::admission::Admission;
use super::{routes, LoadedFunction};
use crate::config::FunctionsConfig;
use crate::metrics::Metrics;
use crate::service::manifest::FunctionManifest;
use crate::service::registry::{Hooks, Rejection, RepositoryError};
use crate::storage::{ArtifactStore, Kind};
use functions_runtime::{CompileError, Grants, GraphSource, WasmRuntime};

/// The function side of the registry.
pub(crate) struct FunctionHooks {
    /// The engine that compiles and runs modules.
    pub runtime: Arc<WasmRuntime>,
    /// The digests of the artifacts it wrote.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Where artifacts are cached.
    pub cache_dir: PathBuf,
    /// The models guests reach through wasi-nn.
    pub source: Arc<dyn GraphSource>,
    /// The agent's bounds on manifests.
    pub limits: FunctionsConfig,
    /// The agent's metrics.
    pub metrics: Metrics,
}

impl FunctionHooks {
    /// The artifact store's key of a module's precompiled artifact for this engine.
    fn artifact_key(&self, sha256: &str) -> String {
        format!("{sha256}-{}", self.runtime.engine_hash())
    }
}

impl Hooks for FunctionHooks {
    type Loaded = LoadedFunction;
    type Config = FunctionManifest;
    const KIND: Kind = Kind::Function;

    fn config(loaded: &LoadedFunction) -> &FunctionManifest {
        &loaded.manifest
    }

    fn validate(&self, manifest: &FunctionManifest) -> Result<(), RepositoryError> {
        manifest.validate(&self.limits)
    }

    /// Compiles (or deserializes) and links a module off the reactor; a module whose initial
    /// memory exceeds its manifest's `memory_mib` is refused before its artifact is written.
    async fn load(
        &self,
        name: &str,
        version: u64,
        wasm: Vec<u8>,
        manifest: FunctionManifest,
    ) -> Result<Arc<LoadedFunction>, RepositoryError> {
        let sha256 = crate::storage::sha256_hex(&wasm);
        let runtime = self.runtime.clone();
        let cache_dir = self.cache_dir.clone();
        let sha = sha256.clone();
        let key = self.artifact_key(&sha256);
        let trusted = self.artifacts.artifact_digest(&key).unwrap_or_else(|e| {
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
        .map_err(|e| RepositoryError::Internal {
            context: "compiling the module failed",
            source: e.into(),
        })?
        .map_err(|e| match e {
            CompileError::Cache { .. } => RepositoryError::Internal {
                context: "the artifact cache failed",
                source: e.into(),
            },
            e => Rejection::Module(e).into(),
        })?;
        if let Some(digest) = written {
            if let Err(e) = self.artifacts.record_artifact(&key, Some(&digest)) {
                tracing::warn!(function = %name, error = %e, "cannot record the artifact digest; it will be recompiled at the next start");
            }
        }
        let source = if compiled { "compiled" } else { "artifact" };
        let took = started.elapsed();
        tracing::info!(function = %name, version, source, elapsed_us = took.as_micros() as u64, "function loaded");
        Ok(Arc::new(LoadedFunction {
            name: name.to_owned(),
            version,
            sha256,
            pre,
            slots: Admission::new(&manifest),
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
            cold_start: (source, took),
        }))
    }

    fn check_serving(
        &self,
        name: &str,
        manifest: &FunctionManifest,
        serving: &mut dyn Iterator<Item = (&str, &LoadedFunction)>,
    ) -> Result<(), RepositoryError> {
        routes::check_routes(name, manifest, serving)
    }

    /// Series are created only for a function that exists: stored, or reloaded at start-up.
    fn loaded(&self, name: &str, loaded: &LoadedFunction) {
        let (source, took) = loaded.cold_start;
        self.metrics.observe_cold_start(name, source, took);
    }

    fn blob_removed(&self, sha256: &str) {
        let _ = self
            .artifacts
            .record_artifact(&self.artifact_key(sha256), None);
        self.runtime.forget_artifact(&self.cache_dir, sha256);
    }
}
