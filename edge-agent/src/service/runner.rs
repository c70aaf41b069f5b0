//! A loaded model version and how its requests are admitted, queued and computed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inference::{Dim, Model, ModelMetadata, Outputs, Tensor};
use tokio::sync::Semaphore;

use super::batcher::{self, Batcher};
use super::pool::InferencePool;
use crate::metrics::Metrics;
use crate::model_config::ModelConfig;

/// One inference call: named inputs, and optionally the outputs wanted.
#[derive(Debug, Clone)]
pub struct InferRequest {
    /// Named input tensors.
    pub inputs: Vec<(String, Tensor)>,
    /// Outputs to return; every output when `None`.
    pub outputs: Option<Vec<String>>,
}

impl InferRequest {
    /// Runs the call on `model` (blocking): every output, or the ones asked for.
    pub fn run_on(self, model: &Model) -> Result<Outputs, inference::Error> {
        match &self.outputs {
            None => model.run(self.inputs),
            Some(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                model.run_select(self.inputs, &names)
            }
        }
    }
}

/// The result of a call, with where its time went.
#[derive(Debug)]
pub struct InferResponse {
    /// The outputs, in the order asked for (or the model's order).
    pub outputs: Outputs,
    /// Time spent waiting for a slot (and, when batching, for company).
    pub queue: Duration,
    /// Time the engine spent on the call (on the whole batch, when batched).
    pub compute: Duration,
    /// Rows in the batch that computed this call (the call's own rows when unbatched).
    pub batch_rows: usize,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The model's queue is full; try again later.
    #[error("model `{model}` is at capacity ({queued} requests queued); retry after {retry_after_secs} s")]
    Overloaded {
        /// The model.
        model: String,
        /// Requests in its queue.
        queued: usize,
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// The request does not fit the model (names, types, shapes).
    #[error(transparent)]
    Invalid(inference::Error),
    /// The engine failed.
    #[error(transparent)]
    Failed(inference::Error),
    /// The agent is shutting down or the model was unloaded mid-call.
    #[error("model `{0}` was unloaded while the request waited")]
    Unloaded(String),
}

impl From<inference::Error> for InferError {
    fn from(e: inference::Error) -> Self {
        if e.is_caller_error() {
            InferError::Invalid(e)
        } else {
            InferError::Failed(e)
        }
    }
}

/// A model version ready to serve, with its own concurrency limit and bounded queue.
pub struct LoadedModel {
    /// The model name.
    pub name: String,
    /// The version.
    pub version: u64,
    /// How it is served.
    pub config: ModelConfig,
    /// The loaded model.
    pub model: Arc<Model>,
    slots: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    batcher: Option<Batcher>,
    pool: InferencePool,
    metrics: Metrics,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("backend", &self.model.backend())
            .finish_non_exhaustive()
    }
}

/// Decrements the admitted count when a call leaves, however it leaves.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LoadedModel {
    /// Wraps a loaded model for serving; starts its batcher when batching is configured. Must
    /// run inside the tokio runtime.
    pub fn new(
        name: String,
        version: u64,
        config: ModelConfig,
        model: Model,
        pool: InferencePool,
        metrics: Metrics,
    ) -> Self {
        let model = Arc::new(model);
        let slots = Arc::new(Semaphore::new(config.max_concurrency.max(1)));
        let batcher = config.batching.as_ref().map(|b| {
            Batcher::start(batcher::Setup {
                name: name.clone(),
                version,
                config: b.clone(),
                queue: config.max_queue.max(1),
                model: model.clone(),
                slots: slots.clone(),
                pool: pool.clone(),
                metrics: metrics.clone(),
            })
        });
        Self {
            name,
            version,
            config,
            model,
            slots,
            admitted: Arc::new(AtomicUsize::new(0)),
            batcher,
            pool,
            metrics,
        }
    }

    /// Whether every input and output has a variable leading (batch) axis, as merging needs.
    pub fn check_batchable(meta: &ModelMetadata) -> Result<(), String> {
        for (kind, t) in meta
            .inputs
            .iter()
            .map(|t| ("input", t))
            .chain(meta.outputs.iter().map(|t| ("output", t)))
        {
            match t.shape.as_deref().and_then(<[Dim]>::first) {
                Some(Dim::Symbolic(_) | Dim::Unknown) => {}
                _ => {
                    return Err(format!(
                    "dynamic batching needs a variable first (batch) axis, but {kind} `{}` is {t}",
                    t.name
                ))
                }
            }
        }
        Ok(())
    }

    /// Runs one call: through the batcher when batching is on, else on a slot of its own.
    /// A full queue is an immediate [`InferError::Overloaded`].
    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, InferError> {
        // Unknown outputs are refused before queueing, so a batch never carries one.
        let meta = self.model.metadata();
        if let Some(unknown) = request
            .outputs
            .iter()
            .flatten()
            .find(|n| meta.output(n).is_none())
        {
            return Err(InferError::Invalid(inference::Error::UnknownOutput {
                name: unknown.clone(),
                known: meta
                    .outputs
                    .iter()
                    .map(|o| format!("`{}`", o.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }));
        }
        if let Some(batcher) = &self.batcher {
            if let Some(rows) = batcher::rows_of(&request) {
                return batcher.submit(request, rows).await;
            }
        }
        let capacity = self.config.max_queue + self.config.max_concurrency;
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        let _admission = Admission(self.admitted.clone());
        if before >= capacity {
            return Err(InferError::Overloaded {
                model: self.name.clone(),
                queued: before,
                retry_after_secs: 1,
            });
        }
        let waited = Instant::now();
        let _slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| InferError::Unloaded(self.name.clone()))?;
        let queue = waited.elapsed();
        let model = self.model.clone();
        let rows = request
            .inputs
            .first()
            .and_then(|(_, t)| t.shape().first().copied())
            .unwrap_or(1);
        let (result, compute) = self
            .pool
            .run(move || {
                let started = Instant::now();
                let result = request.run_on(&model);
                (result, started.elapsed())
            })
            .await;
        let outputs = result?;
        self.metrics
            .observe_compute(&self.name, self.version, queue, compute);
        self.metrics.observe_batch(&self.name, self.version, rows);
        Ok(InferResponse {
            outputs,
            queue,
            compute,
            batch_rows: rows,
        })
    }
}
