//! The edge agent: an Open Inference Protocol v2 model server for edge boxes.
//!
//! - `/v2`: KServe OIP v2 REST (health, server and model metadata, readiness, inference in
//!   JSON and with Triton's binary tensor extension), so Triton's HTTP client works unchanged;
//! - `/v1/models`: a model repository (push, list, activate, roll back, delete), persisted in
//!   SQLite with content-addressed blobs, hot-swapping versions;
//! - `/v1/functions` and `/fn/{name}/...`: edge functions, WebAssembly modules run by wasmtime
//!   (pooling allocator, epoch deadlines, memory caps, WASI preview 1 with in-memory stdio)
//!   and called with WAGI conventions; they reach models through our `wasi_ephemeral_nn` host
//!   (see [`functions_runtime`] and `docs/functions.md`);
//! - `/metrics`: Prometheus text; `/v1/openapi.json`: the `/v1` API.
//!
//! Inference runs on a bounded pool off the reactor. Each model has a concurrency limit and a
//! bounded queue (503 with `Retry-After` when full), and optional dynamic batching.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = edge_agent::AgentConfig::default();
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! edge_agent::serve(config, listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

#[cfg(not(any(feature = "tract", feature = "ort")))]
compile_error!(
    "edge-agent needs at least one inference engine: enable the `tract` or the `ort` feature"
);

pub mod config;
mod http;
pub mod metrics;
pub mod model_config;
mod server;
pub mod service;
pub mod storage;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    AgentConfig, AuthConfig, FunctionsConfig, LimitsConfig, LogFormat, ReadinessConfig, Role,
    ServerConfig, TokenConfig,
};
pub use http::{app, hash_token, route_table, ApiError, AppState, Auth, Verb};
pub use inference;

use metrics::Metrics;
#[cfg(feature = "functions")]
use service::Functions;
use service::{InferencePool, Repository};
use storage::BlobStore;

/// The OpenAPI document of the `/v1` routes.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data dir could not be created.
    #[error("cannot create data dir `{path}`")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The stored state could not be opened.
    #[error("cannot open the model repository")]
    Repository(#[from] service::RepositoryError),
    /// Storage failed.
    #[error("cannot open storage")]
    Storage(#[from] storage::StoreError),
    /// A token hash is malformed.
    #[error(transparent)]
    Auth(#[from] http::BadTokenHash),
    /// The WebAssembly engine could not be built.
    #[error("cannot start the WebAssembly runtime: {0}")]
    Wasm(String),
    /// Serving failed.
    #[error("server error")]
    Serve(#[source] std::io::Error),
    /// The `[server]` section is out of range.
    #[error("invalid server configuration")]
    ServerConfig(#[source] config::ConfigError),
}

/// Builds the state: opens storage in `data_dir`, reloads every stored model, loads
/// `model_dir`. `generated_token` is an extra admin token the caller made up (see `serve`).
pub async fn build_state(
    config: AgentConfig,
    generated_token: Option<&str>,
) -> Result<AppState, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    config.validate().map_err(StartError::Config)?;
    let store = Arc::new(storage::open_model_db(
        &config.data_dir.join("models.sqlite3"),
    )?);
    let blobs = BlobStore::open(config.data_dir.join("blobs"))?;
    collect_orphans("model", &*store, &blobs)?;
    let metrics = Metrics::new();
    let pool = InferencePool::new(config.limits.inference_threads);
    let repo = Repository::open(
        store,
        blobs,
        config.model_dir.as_deref(),
        config.ort_library.clone(),
        pool,
        metrics.clone(),
    )
    .await?;
    let repo = Arc::new(repo);
    #[cfg(feature = "functions")]
    let functions = open_functions(&config, repo.clone(), metrics.clone()).await?;
    #[cfg(not(feature = "functions"))]
    warn_functions_not_built(&config);
    let auth = Auth::new(&config.auth, generated_token)?;
    let request_memory = service::RequestMemory::new(
        config.limits.max_inflight_request_bytes,
        Duration::from_millis(config.limits.memory_wait_ms),
    );
    Ok(AppState {
        repo,
        #[cfg(feature = "functions")]
        functions: Arc::new(functions),
        metrics,
        auth: Arc::new(auth),
        config: Arc::new(config),
        ready: Arc::new(AtomicBool::new(true)),
        request_ids: Arc::new(AtomicU64::new(1)),
        request_memory,
    })
}

/// Builds the WebAssembly runtime and opens the deployed functions.
#[cfg(feature = "functions")]
async fn open_functions(
    config: &AgentConfig,
    repo: Arc<Repository>,
    metrics: Metrics,
) -> Result<Functions, StartError> {
    let f = &config.functions;
    let runtime = functions_runtime::WasmRuntime::new(functions_runtime::RuntimeConfig {
        max_instances: f.max_instances,
        max_memory_mib: f.max_memory_mib,
        epoch_tick_ms: f.epoch_tick_ms,
        max_stdout_bytes: f.max_stdout_bytes,
        nn: functions_runtime::NnLimits {
            max_tensor_bytes: f.max_tensor_bytes,
            max_model_bytes: config.limits.max_model_bytes,
            ..functions_runtime::RuntimeConfig::default().nn
        },
        ..functions_runtime::RuntimeConfig::default()
    })
    .map_err(|e| StartError::Wasm(format!("{e}")))?;
    let (function_store, artifacts) =
        storage::open_function_db(&config.data_dir.join("functions.sqlite3"))?;
    let function_blobs = BlobStore::open(config.data_dir.join("function-blobs"))?;
    collect_orphans("function", &function_store, &function_blobs)?;
    let stale = storage::remove_artifact_temp_files(&config.data_dir.join("wasm-cache"));
    if stale > 0 {
        tracing::warn!(
            files = stale,
            "removed temp files of interrupted artifact writes"
        );
    }
    let functions = Functions::open(
        Arc::new(runtime),
        service::FunctionStores {
            versions: Arc::new(function_store),
            artifacts: Arc::new(artifacts),
            blobs: function_blobs,
            cache_dir: config.data_dir.join("wasm-cache"),
        },
        repo,
        config.functions.clone(),
        metrics,
    )
    .await?;
    Ok(functions)
}

/// In an agent built without edge functions the `[functions]` section is accepted, so one
/// config serves every build, but it does nothing: say so when it sets anything.
#[cfg(not(feature = "functions"))]
fn warn_functions_not_built(config: &AgentConfig) {
    if config.functions != FunctionsConfig::default() {
        tracing::warn!(
            "the [functions] section is ignored: this agent was built without edge functions \
             (cargo feature `functions`)"
        );
    }
}

/// Removes blobs that a crash between writing them and recording them left unreferenced.
fn collect_orphans(
    kind: &str,
    store: &dyn storage::VersionStore,
    blobs: &BlobStore,
) -> Result<(), StartError> {
    let (files, bytes) = storage::collect_orphan_blobs(store, blobs)?;
    if files > 0 {
        tracing::warn!(
            kind,
            files,
            bytes,
            "removed unreferenced blobs left by an interrupted upload"
        );
    }
    Ok(())
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (up to `limits.shutdown_grace_secs`), and returns. Connections are under the
/// `[server]` timeouts and caps (see [`ServerConfig`]).
pub async fn serve_state(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    state
        .config
        .server
        .validate()
        .map_err(StartError::ServerConfig)?;
    let grace = Duration::from_secs(state.config.limits.shutdown_grace_secs);
    let ready = state.ready.clone();
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server_config = state.config.server.clone();
    let metrics = state.metrics.clone();
    let server = server::run(listener, app(state), server_config, metrics, async move {
        shutdown.await;
        ready.store(false, Ordering::Release);
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        let _ = stopping_tx.send(());
    });
    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => {
            result.expect("server task");
            return Ok(());
        }
        _ = stopping_rx => {}
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => {
            result.expect("server task");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests outlived the grace period; exiting"
            );
            server.abort();
            Ok(())
        }
    }
}

/// [`build_state`] then [`serve_state`].
pub async fn serve(
    config: AgentConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = build_state(config, None).await?;
    serve_state(state, listener, shutdown).await
}
