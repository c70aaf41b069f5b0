//! Dynamic batching: concurrent calls to one model version are merged along the batch axis,
//! computed once, and split back, so each caller gets what it would have got alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inference::{Model, Outputs, Tensor};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::infer::{InferError, InferRequest, InferResponse};
use super::pool::InferencePool;
use crate::metrics::Metrics;
use crate::model_config::BatchingConfig;

/// What a batcher needs from its model.
pub(super) struct Setup {
    pub name: String,
    pub version: u64,
    pub config: BatchingConfig,
    pub queue: usize,
    pub model: Arc<Model>,
    pub slots: Arc<Semaphore>,
    pub pool: InferencePool,
    pub metrics: Metrics,
}

struct Pending {
    request: InferRequest,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Result<InferResponse, InferError>>,
}

/// The sending side of a model's batching queue; the task ends when this is dropped.
pub(super) struct Batcher {
    name: String,
    tx: mpsc::Sender<Pending>,
}

/// The rows a request contributes: the common first dimension of its inputs, if any.
pub(super) fn rows_of(request: &InferRequest) -> Option<usize> {
    let mut rows = None;
    for (_, t) in &request.inputs {
        let r = *t.shape().first()?;
        if rows.is_some_and(|x| x != r) || r == 0 {
            return None;
        }
        rows = Some(r);
    }
    rows
}

/// Requests merge only when their inputs have the same names, types and non-batch axes.
fn signature(request: &InferRequest) -> Vec<(String, inference::ElementType, Vec<usize>)> {
    let mut sig: Vec<_> = request
        .inputs
        .iter()
        .map(|(n, t)| (n.clone(), t.element_type(), t.shape()[1..].to_vec()))
        .collect();
    sig.sort();
    sig
}

impl Batcher {
    pub(super) fn start(setup: Setup) -> Self {
        let (tx, rx) = mpsc::channel(setup.queue);
        let batcher = Self {
            name: setup.name.clone(),
            tx,
        };
        tokio::spawn(run(setup, rx));
        batcher
    }

    /// Queues a call and waits for its share of a batch. A call with more rows than a batch
    /// holds is computed alone, in queue order.
    pub(super) async fn submit(
        &self,
        request: InferRequest,
        rows: usize,
    ) -> Result<InferResponse, InferError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            request,
            rows,
            enqueued: Instant::now(),
            reply,
        };
        self.tx.try_send(pending).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InferError::Overloaded {
                model: self.name.clone(),
                queued: self.tx.max_capacity(),
                retry_after_secs: 1,
            },
            mpsc::error::TrySendError::Closed(_) => InferError::Unloaded(self.name.clone()),
        })?;
        answer
            .await
            .map_err(|_| InferError::Unloaded(self.name.clone()))?
    }
}

async fn run(setup: Setup, mut rx: mpsc::Receiver<Pending>) {
    let setup = Arc::new(setup);
    let delay = Duration::from_micros(setup.config.max_queue_delay_us);
    let max_rows = setup.config.max_batch_size;
    let mut carry: Option<Pending> = None;
    loop {
        // Take a compute slot first: while all slots are busy, calls pile up in the channel
        // and the next batch is fuller.
        let Ok(permit) = setup.slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let sig = signature(&first.request);
        let deadline = tokio::time::Instant::from_std(first.enqueued + delay);
        let mut rows = first.rows;
        let mut batch = vec![first];
        while rows < max_rows && !setup.config.preferred_batch_sizes.contains(&rows) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) if signature(&p.request) == sig && rows + p.rows <= max_rows => {
                    rows += p.rows;
                    batch.push(p);
                }
                Ok(Some(p)) => {
                    carry = Some(p);
                    break;
                }
                _ => break,
            }
        }
        tokio::spawn(dispatch(setup.clone(), batch, permit));
    }
}

async fn dispatch(setup: Arc<Setup>, batch: Vec<Pending>, _permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let rows: Vec<usize> = batch.iter().map(|p| p.rows).collect();
    let total: usize = rows.iter().sum();
    let wanted = union_of_outputs(&setup.model, &batch);
    let inputs = merge_inputs(&batch);
    let model = setup.model.clone();
    let (result, compute) = setup
        .pool
        .run(move || {
            let t = Instant::now();
            let result = inputs.and_then(|inputs| {
                let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
                model.run_select(inputs, &names)
            });
            (result, t.elapsed())
        })
        .await;
    setup
        .metrics
        .observe_batch(&setup.name, setup.version, total);
    let split = result.and_then(|outputs| split_outputs(outputs, &rows));
    match split {
        Ok(per_request) => {
            for (pending, mut outputs) in batch.into_iter().zip(per_request) {
                let queue = started.duration_since(pending.enqueued);
                setup
                    .metrics
                    .observe_compute(&setup.name, setup.version, queue, compute);
                let selected = select(&mut outputs, pending.request.outputs.as_deref());
                let _ = pending.reply.send(Ok(InferResponse {
                    outputs: selected,
                    queue,
                    compute,
                    batch_rows: total,
                }));
            }
        }
        Err(e) => {
            // A merged batch that fails is retried call by call, so one bad request cannot
            // fail its neighbours and each caller gets its own error.
            tracing::debug!(model = %setup.name, error = %e, "batch failed; running its calls one by one");
            for pending in batch {
                let model = setup.model.clone();
                let request = pending.request;
                let result = setup.pool.run(move || request.run_on(&model)).await;
                let _ = pending
                    .reply
                    .send(
                        result
                            .map_err(InferError::from)
                            .map(|outputs| InferResponse {
                                outputs,
                                queue: started.duration_since(pending.enqueued),
                                compute,
                                batch_rows: pending.rows,
                            }),
                    );
            }
        }
    }
}

fn union_of_outputs(model: &Model, batch: &[Pending]) -> Vec<String> {
    let declared = &model.metadata().outputs;
    let wanted = |name: &str| {
        batch.iter().any(|p| {
            p.request
                .outputs
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == name))
        })
    };
    declared
        .iter()
        .map(|o| o.name.clone())
        .filter(|n| wanted(n))
        .collect()
}

fn merge_inputs(batch: &[Pending]) -> Result<Vec<(String, Tensor)>, inference::Error> {
    let names: Vec<String> = batch[0]
        .request
        .inputs
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    names
        .into_iter()
        .map(|name| {
            let parts: Vec<Tensor> = batch
                .iter()
                .map(|p| {
                    p.request
                        .inputs
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, t)| t.clone())
                        .ok_or_else(|| {
                            inference::Error::Batch(format!("input `{name}` missing from a call"))
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok((name, Tensor::concat_rows(&parts)?))
        })
        .collect()
}

fn split_outputs(
    outputs: Outputs,
    rows: &[usize],
) -> Result<Vec<Vec<(String, Tensor)>>, inference::Error> {
    let mut per: Vec<Vec<(String, Tensor)>> = vec![Vec::new(); rows.len()];
    for (name, tensor) in outputs {
        for (slot, piece) in per.iter_mut().zip(tensor.split_rows(rows)?) {
            slot.push((name.clone(), piece));
        }
    }
    Ok(per)
}

fn select(outputs: &mut Vec<(String, Tensor)>, wanted: Option<&[String]>) -> Outputs {
    let chosen: Vec<(String, Tensor)> = match wanted {
        None => std::mem::take(outputs),
        Some(names) => names
            .iter()
            .filter_map(|n| {
                let i = outputs.iter().position(|(o, _)| o == n)?;
                Some(outputs.swap_remove(i))
            })
            .collect(),
    };
    Outputs::from(chosen)
}
