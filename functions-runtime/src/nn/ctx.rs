//! What the wasi-nn host holds for one invocation: its grants, its bounds, its deadline, and
//! the graphs and execution contexts the guest made.

use std::sync::Arc;
use std::time::Instant;

use inference::{Model, Tensor};

use super::abi::{Code, NnErrno};

/// A model a function may load by name, optionally pinned to a version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelGrant {
    /// The model's name in the repository.
    pub name: String,
    /// The version it must use (else the active one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// Where `load_by_name` finds models (the agent's model repository).
pub trait GraphSource: Send + Sync {
    /// The model `name` at `version` (else its active version), if it is loaded.
    fn graph(&self, name: &str, version: Option<u64>) -> Option<Arc<Model>>;
}

/// Bounds on what one invocation may make the host hold.
#[derive(Debug, Clone, Copy)]
pub struct NnLimits {
    /// Largest tensor (input data or output) in bytes.
    pub max_tensor_bytes: usize,
    /// Largest model passed to `load`, in bytes.
    pub max_model_bytes: usize,
    /// Most graphs per invocation.
    pub max_graphs: usize,
    /// Most execution contexts per invocation.
    pub max_contexts: usize,
}

/// The error a `load` or `compute` returns to wasmtime when it comes back past the call's
/// deadline, so that no more guest code runs and the call ends as a timeout.
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed during a wasi-nn call")]
pub struct DeadlinePassed;

/// An execution context: the graph it runs, its inputs so far and its last outputs.
pub(super) struct ExecContext {
    /// The index of its graph in [`NnCtx::graphs`].
    pub(super) graph: usize,
    /// One slot per model input.
    pub(super) inputs: Vec<Option<Tensor>>,
    /// What the last `compute` produced.
    pub(super) outputs: Option<Vec<Tensor>>,
}

/// The wasi-nn state of one invocation: everything the host functions need, so a store's
/// data only has to hand out a `&mut NnCtx` (see [`super::add_to_linker`]).
pub struct NnCtx {
    pub(super) grants: Arc<[ModelGrant]>,
    pub(super) allow_load: bool,
    pub(super) source: Arc<dyn GraphSource>,
    pub(super) limits: NnLimits,
    pub(super) graphs: Vec<Arc<Model>>,
    pub(super) contexts: Vec<ExecContext>,
    /// Bytes the host holds for the guest: input and output tensors, model bytes from `load`.
    pub(super) held: usize,
    /// The most `held` may reach (the function's memory cap).
    budget: usize,
    /// The call's deadline: `load` and `compute` are refused past it.
    deadline: Instant,
}

impl NnCtx {
    /// A fresh state for a function with these grants. The host holds at most `budget` bytes
    /// for the guest (tensors and loaded model bytes together), and refuses `load` and
    /// `compute` once `deadline` has passed.
    pub fn new(
        grants: Arc<[ModelGrant]>,
        allow_load: bool,
        source: Arc<dyn GraphSource>,
        limits: NnLimits,
        budget: usize,
        deadline: Instant,
    ) -> Self {
        Self {
            grants,
            allow_load,
            source,
            limits,
            graphs: Vec::new(),
            contexts: Vec::new(),
            held: 0,
            budget,
            deadline,
        }
    }

    /// The time left before the call's deadline (zero once it passed).
    pub fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether the call's deadline has passed.
    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Accounts for the host holding `add` more bytes and `remove` fewer, if that stays within
    /// the budget; `too_large` otherwise (and nothing changes).
    pub(super) fn hold(&mut self, remove: usize, add: usize) -> Code {
        let next = self.held.saturating_sub(remove).saturating_add(add);
        if next > self.budget {
            tracing::debug!(
                held = self.held,
                add,
                budget = self.budget,
                "wasi-nn: over the call's host memory budget"
            );
            return Err(NnErrno::TooLarge);
        }
        self.held = next;
        Ok(())
    }
}
