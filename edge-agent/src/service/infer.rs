//! One inference call as the model runners see it: the request, the response with its timings,
//! and why a call failed. Shared by the unbatched path (`runner`) and the batcher.

use std::time::Duration;

use inference::{Model, Outputs, Tensor};

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
