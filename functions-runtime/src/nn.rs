//! Our own host for the legacy `wasi_ephemeral_nn` ABI (what the `wasi-nn` 0.6 crate and
//! WasmEdge speak): `load`, `load_by_name`, `init_execution_context`, `set_input`, `compute`,
//! `get_output`.
//!
//! Every guest pointer and length is checked against the guest's memory before anything is read
//! or written, and every failure is an `nn_errno` code returned to the guest: a host function
//! here never traps and never panics.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use inference::{Dim, ElementType, Model, Tensor};
use wasmtime::{Caller, Extern, Linker};

use super::runtime::GuestState;

/// The module name of the ABI.
pub const MODULE: &str = "wasi_ephemeral_nn";

/// `nn_errno`, in the order of the witx (and the `wasi-nn` 0.6 crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum NnErrno {
    /// Success.
    Success = 0,
    /// A bad handle, index, pointer, length or value.
    InvalidArgument = 1,
    /// A graph encoding we do not run.
    InvalidEncoding = 2,
    /// The guest exports no memory.
    MissingMemory = 3,
    /// A resource is busy.
    Busy = 4,
    /// The model failed to run.
    RuntimeError = 5,
    /// Not supported here.
    UnsupportedOperation = 6,
    /// A tensor, buffer or count is over its bound.
    TooLarge = 7,
    /// No such model (or not one the function was granted).
    NotFound = 8,
}

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

/// Turns a code into the host call's result, or a [`DeadlinePassed`] trap when the deadline
/// passed while the host was busy (a long `load` or `compute` that epoch interruption cannot
/// stop).
fn unless_late(caller: &Caller<'_, GuestState>, code: i32) -> wasmtime::Result<i32> {
    if caller.data().nn.past_deadline() {
        return Err(DeadlinePassed.into());
    }
    Ok(code)
}

/// Largest tensor rank accepted.
const MAX_RANK: usize = 8;
/// Longest model name accepted by `load_by_name`.
const MAX_NAME: usize = 256;

struct ExecContext {
    graph: usize,
    inputs: Vec<Option<Tensor>>,
    outputs: Option<Vec<Tensor>>,
}

/// The wasi-nn state of one invocation.
pub struct NnCtx {
    grants: Arc<[ModelGrant]>,
    allow_load: bool,
    source: Arc<dyn GraphSource>,
    limits: NnLimits,
    graphs: Vec<Arc<Model>>,
    contexts: Vec<ExecContext>,
    /// Bytes the host holds for the guest: input and output tensors, model bytes from `load`.
    held: usize,
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

    /// Whether the call's deadline has passed.
    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Accounts for the host holding `add` more bytes and `remove` fewer, if that stays within
    /// the budget; `too_large` otherwise (and nothing changes).
    fn hold(&mut self, remove: usize, add: usize) -> Code {
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

type Code = Result<(), NnErrno>;

/// The bytes `[ptr, ptr + len)` of guest memory, if they are all inside it.
fn range(memory: &[u8], ptr: i32, len: u64) -> Result<Range<usize>, NnErrno> {
    let start = u64::from(ptr as u32);
    let end = start.checked_add(len).ok_or(NnErrno::InvalidArgument)?;
    if end > memory.len() as u64 {
        return Err(NnErrno::InvalidArgument);
    }
    Ok(start as usize..end as usize)
}

fn read_u32(memory: &[u8], ptr: i32) -> Result<u32, NnErrno> {
    let r = range(memory, ptr, 4)?;
    let mut b = [0u8; 4];
    b.copy_from_slice(&memory[r]);
    Ok(u32::from_le_bytes(b))
}

fn write_u32(memory: &mut [u8], ptr: i32, value: u32) -> Code {
    let r = range(memory, ptr, 4)?;
    memory[r].copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Runs `f` over the guest's memory and the invocation's wasi-nn state, turning the outcome into
/// the code the guest gets.
fn with_memory(
    caller: &mut Caller<'_, GuestState>,
    call: &'static str,
    f: impl FnOnce(&mut [u8], &mut NnCtx) -> Code,
) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        tracing::debug!(call, "wasi-nn call from a guest without a `memory` export");
        return NnErrno::MissingMemory as i32;
    };
    let (bytes, state) = memory.data_and_store_mut(caller);
    match f(bytes, &mut state.nn) {
        Ok(()) => NnErrno::Success as i32,
        Err(code) => {
            tracing::debug!(call, ?code, "wasi-nn call refused");
            code as i32
        }
    }
}

fn element_type(raw: u32) -> Result<ElementType, NnErrno> {
    Ok(match raw {
        0 => ElementType::F16,
        1 => ElementType::F32,
        2 => ElementType::F64,
        3 => ElementType::U8,
        4 => ElementType::I32,
        5 => ElementType::I64,
        _ => return Err(NnErrno::InvalidArgument),
    })
}

fn push_graph(memory: &mut [u8], nn: &mut NnCtx, model: Arc<Model>, graph_ptr: i32) -> Code {
    if nn.graphs.len() >= nn.limits.max_graphs {
        return Err(NnErrno::TooLarge);
    }
    write_u32(memory, graph_ptr, nn.graphs.len() as u32)?;
    nn.graphs.push(model);
    Ok(())
}

/// `load(builders: *const (ptr, len), builders_len, encoding, target, graph: *mut u32)`,
/// before the model is parsed: checks the arguments, counts the bytes against the budget and
/// copies them out of guest memory.
fn prepare_load(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 5]) -> Result<Vec<u8>, NnErrno> {
    let [builders, count, encoding, target, graph_ptr] = args;
    range(memory, graph_ptr, 4)?;
    if !(0..=5).contains(&encoding) || !(0..=3).contains(&target) {
        return Err(NnErrno::InvalidArgument);
    }
    if encoding != 1 {
        return Err(NnErrno::InvalidEncoding);
    }
    if !nn.allow_load {
        return Err(NnErrno::UnsupportedOperation);
    }
    if count != 1 {
        return Err(NnErrno::InvalidArgument);
    }
    let ptr = read_u32(memory, builders)? as i32;
    let len = read_u32(memory, builders.wrapping_add(4))?;
    if len as usize > nn.limits.max_model_bytes {
        return Err(NnErrno::TooLarge);
    }
    let model_range = range(memory, ptr, u64::from(len))?;
    if nn.graphs.len() >= nn.limits.max_graphs {
        return Err(NnErrno::TooLarge);
    }
    if nn.past_deadline() {
        return Err(NnErrno::RuntimeError);
    }
    // The model bytes count against the call's budget for as long as it runs.
    nn.hold(0, len as usize)?;
    Ok(memory[model_range].to_vec())
}

/// `load` as a host call: the model is parsed on tokio's blocking pool, so the call's deadline
/// timer can end the call meanwhile.
async fn load(caller: &mut Caller<'_, GuestState>, args: [i32; 5]) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        tracing::debug!(
            call = "load",
            "wasi-nn call from a guest without a `memory` export"
        );
        return NnErrno::MissingMemory as i32;
    };
    let prepared = {
        let (bytes, state) = memory.data_and_store_mut(&mut *caller);
        prepare_load(bytes, &mut state.nn, args)
    };
    let result = match prepared {
        Err(code) => Err(code),
        Ok(model_bytes) => {
            let len = model_bytes.len();
            let options = inference::LoadOptions::default();
            let parsed =
                tokio::task::spawn_blocking(move || Model::load(model_bytes, &options)).await;
            match parsed {
                Ok(Ok(model)) => {
                    let (bytes, state) = memory.data_and_store_mut(&mut *caller);
                    push_graph(bytes, &mut state.nn, Arc::new(model), args[4])
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %inference::error_chain(&e), "wasi-nn load: model refused");
                    caller.data_mut().nn.held -= len;
                    Err(NnErrno::InvalidEncoding)
                }
                Err(_) => {
                    tracing::warn!("wasi-nn load: the backend panicked");
                    caller.data_mut().nn.held -= len;
                    Err(NnErrno::InvalidEncoding)
                }
            }
        }
    };
    match result {
        Ok(()) => NnErrno::Success as i32,
        Err(code) => {
            tracing::debug!(call = "load", ?code, "wasi-nn call refused");
            code as i32
        }
    }
}

/// `load_by_name(name, name_len, graph: *mut u32)`; `name` may be `model` or `model:version`.
fn load_by_name(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 3]) -> Code {
    let [name_ptr, name_len, graph_ptr] = args;
    range(memory, graph_ptr, 4)?;
    if name_len as u32 as usize > MAX_NAME {
        return Err(NnErrno::InvalidArgument);
    }
    let raw = &memory[range(memory, name_ptr, u64::from(name_len as u32))?];
    let full = std::str::from_utf8(raw).map_err(|_| NnErrno::InvalidArgument)?;
    let (name, asked) = match full.rsplit_once(':') {
        Some((n, v)) => (
            n,
            Some(v.parse::<u64>().map_err(|_| NnErrno::InvalidArgument)?),
        ),
        None => (full, None),
    };
    let grant = nn
        .grants
        .iter()
        .find(|g| g.name == name)
        .ok_or(NnErrno::NotFound)?;
    let version = match (grant.version, asked) {
        (Some(pinned), Some(asked)) if pinned != asked => return Err(NnErrno::NotFound),
        (pinned, asked) => pinned.or(asked),
    };
    let model = nn.source.graph(name, version).ok_or(NnErrno::NotFound)?;
    push_graph(memory, nn, model, graph_ptr)
}

/// `init_execution_context(graph, ctx: *mut u32)`.
fn init_execution_context(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 2]) -> Code {
    let [graph, ctx_ptr] = args;
    range(memory, ctx_ptr, 4)?;
    let model = nn
        .graphs
        .get(graph as u32 as usize)
        .ok_or(NnErrno::InvalidArgument)?;
    if nn.contexts.len() >= nn.limits.max_contexts {
        return Err(NnErrno::TooLarge);
    }
    let inputs = model.metadata().inputs.len();
    write_u32(memory, ctx_ptr, nn.contexts.len() as u32)?;
    nn.contexts.push(ExecContext {
        graph: graph as u32 as usize,
        inputs: (0..inputs).map(|_| None).collect(),
        outputs: None,
    });
    Ok(())
}

/// `set_input(ctx, index, tensor: *const Tensor)`; the tensor is 20 bytes on wasm32:
/// `dims_ptr, dims_len, type (a 4-byte enum), data_ptr, data_len`. Its type and dims must be
/// the model's for that input (a symbolic or unknown dim takes any size).
fn set_input(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 3]) -> Code {
    let [ctx, index, tensor] = args;
    range(memory, tensor, 20)?;
    let field = |offset: i32| read_u32(memory, tensor.wrapping_add(offset));
    let (dims_ptr, dims_len) = (field(0)? as i32, field(4)? as usize);
    let ty = element_type(field(8)?)?;
    let (data_ptr, data_len) = (field(12)? as i32, field(16)? as usize);
    if dims_len > MAX_RANK {
        return Err(NnErrno::InvalidArgument);
    }
    if data_len > nn.limits.max_tensor_bytes {
        return Err(NnErrno::TooLarge);
    }
    let dims_range = range(memory, dims_ptr, dims_len as u64 * 4)?;
    let shape: Vec<usize> = memory[dims_range]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = shape
        .iter()
        .try_fold(ty.byte_size().unwrap_or(1), |acc, d| acc.checked_mul(*d))
        .ok_or(NnErrno::TooLarge)?;
    if expected > nn.limits.max_tensor_bytes {
        return Err(NnErrno::TooLarge);
    }
    if expected != data_len {
        return Err(NnErrno::InvalidArgument);
    }
    let data = &memory[range(memory, data_ptr, data_len as u64)?];
    let ctx = ctx as u32 as usize;
    let index = index as u32 as usize;
    let context = nn.contexts.get(ctx).ok_or(NnErrno::InvalidArgument)?;
    let old = context
        .inputs
        .get(index)
        .ok_or(NnErrno::InvalidArgument)?
        .as_ref()
        .map_or(0, Tensor::byte_len);
    let info = &nn.graphs[context.graph].metadata().inputs[index];
    if !fits(info, ty, &shape) {
        tracing::debug!(input = %info.name, ?ty, ?shape, "wasi-nn set_input: not the model's type or shape");
        return Err(NnErrno::InvalidArgument);
    }
    let value = Tensor::from_le_bytes(ty, &shape, data).map_err(|_| NnErrno::InvalidArgument)?;
    nn.hold(old, value.byte_len())?;
    let context = &mut nn.contexts[ctx];
    context.inputs[index] = Some(value);
    if let Some(outputs) = context.outputs.take() {
        nn.held = nn
            .held
            .saturating_sub(outputs.iter().map(Tensor::byte_len).sum());
    }
    Ok(())
}

/// Whether a tensor of type `ty` and dims `shape` is what the model declares for this input.
fn fits(info: &inference::TensorInfo, ty: ElementType, shape: &[usize]) -> bool {
    if info.element_type != ty {
        return false;
    }
    let Some(dims) = &info.shape else {
        return true;
    };
    dims.len() == shape.len()
        && dims
            .iter()
            .zip(shape)
            .all(|(d, n)| !matches!(d, Dim::Fixed(f) if f != n))
}

/// A model and the named inputs to run it on.
type Run = (Arc<Model>, Vec<(String, Tensor)>);

/// `compute(ctx)`, before the model runs: the model and a copy of the inputs.
fn prepare_compute(nn: &NnCtx, ctx: i32) -> Result<Run, NnErrno> {
    let context = nn
        .contexts
        .get(ctx as u32 as usize)
        .ok_or(NnErrno::InvalidArgument)?;
    if nn.past_deadline() {
        return Err(NnErrno::RuntimeError);
    }
    let model = nn.graphs[context.graph].clone();
    let mut inputs = Vec::with_capacity(context.inputs.len());
    for (info, tensor) in model.metadata().inputs.iter().zip(&context.inputs) {
        let tensor = tensor.clone().ok_or(NnErrno::InvalidArgument)?;
        inputs.push((info.name.clone(), tensor));
    }
    Ok((model, inputs))
}

/// Runs the model off the guest's thread (on tokio's blocking pool), so that the call's
/// deadline timer can end the call while it runs. A backend that panics on odd input must
/// not take the host down with it: the panic stays in the blocking task.
async fn run_model(
    model: Arc<Model>,
    inputs: Vec<(String, Tensor)>,
) -> Result<Vec<Tensor>, NnErrno> {
    let run = tokio::task::spawn_blocking(move || model.run(inputs)).await;
    let outputs = run
        .map_err(|_| {
            tracing::warn!("wasi-nn compute: the backend panicked");
            NnErrno::RuntimeError
        })?
        .map_err(|e| {
            tracing::debug!(error = %inference::error_chain(&e), "wasi-nn compute failed");
            match e {
                inference::Error::Run { .. } | inference::Error::Output { .. } => {
                    NnErrno::RuntimeError
                }
                _ => NnErrno::InvalidArgument,
            }
        })?;
    Ok(outputs.into_iter().map(|(_, t)| t).collect())
}

/// `compute(ctx)`, after the model ran: keeps the outputs if they fit the bounds.
fn finish_compute(nn: &mut NnCtx, ctx: i32, outputs: Vec<Tensor>) -> Code {
    let ctx = ctx as u32 as usize;
    let old: usize = nn.contexts[ctx]
        .outputs
        .take()
        .map_or(0, |o| o.iter().map(Tensor::byte_len).sum());
    nn.held = nn.held.saturating_sub(old);
    if outputs
        .iter()
        .any(|t| t.byte_len() > nn.limits.max_tensor_bytes)
    {
        return Err(NnErrno::TooLarge);
    }
    nn.hold(0, outputs.iter().map(Tensor::byte_len).sum())?;
    nn.contexts[ctx].outputs = Some(outputs);
    Ok(())
}

/// `compute(ctx)` as a host call: checks and copies under the store, runs the model on the
/// blocking pool, then stores the outputs.
async fn compute(caller: &mut Caller<'_, GuestState>, ctx: i32) -> i32 {
    if !matches!(caller.get_export("memory"), Some(Extern::Memory(_))) {
        tracing::debug!(
            call = "compute",
            "wasi-nn call from a guest without a `memory` export"
        );
        return NnErrno::MissingMemory as i32;
    }
    let result = match prepare_compute(&caller.data().nn, ctx) {
        Ok((model, inputs)) => match run_model(model, inputs).await {
            Ok(outputs) => finish_compute(&mut caller.data_mut().nn, ctx, outputs),
            Err(code) => Err(code),
        },
        Err(code) => Err(code),
    };
    match result {
        Ok(()) => NnErrno::Success as i32,
        Err(code) => {
            tracing::debug!(call = "compute", ?code, "wasi-nn call refused");
            code as i32
        }
    }
}

/// `get_output(ctx, index, out: *mut u8, out_max, written: *mut u32)`.
fn get_output(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 5]) -> Code {
    let [ctx, index, out_ptr, out_max, written_ptr] = args;
    range(memory, written_ptr, 4)?;
    let out = range(memory, out_ptr, u64::from(out_max as u32))?;
    let context = nn
        .contexts
        .get(ctx as u32 as usize)
        .ok_or(NnErrno::InvalidArgument)?;
    let outputs = context.outputs.as_ref().ok_or(NnErrno::InvalidArgument)?;
    let tensor = outputs
        .get(index as u32 as usize)
        .ok_or(NnErrno::InvalidArgument)?;
    let bytes = tensor.to_le_bytes().ok_or(NnErrno::UnsupportedOperation)?;
    if bytes.len() > out.len() {
        return Err(NnErrno::TooLarge);
    }
    memory[out.start..out.start + bytes.len()].copy_from_slice(&bytes);
    write_u32(memory, written_ptr, bytes.len() as u32)
}

/// Defines the six functions of `wasi_ephemeral_nn` on `linker`.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "load",
        |mut c: Caller<'_, GuestState>, (a, b, e, t, g): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let code = load(&mut c, [a, b, e, t, g]).await;
                unless_late(&c, code)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "load_by_name",
        |mut c: Caller<'_, GuestState>, p: i32, l: i32, g: i32| {
            with_memory(&mut c, "load_by_name", |m, nn| {
                load_by_name(m, nn, [p, l, g])
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "init_execution_context",
        |mut c: Caller<'_, GuestState>, g: i32, p: i32| {
            with_memory(&mut c, "init_execution_context", |m, nn| {
                init_execution_context(m, nn, [g, p])
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "set_input",
        |mut c: Caller<'_, GuestState>, x: i32, i: i32, t: i32| {
            with_memory(&mut c, "set_input", |m, nn| set_input(m, nn, [x, i, t]))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "compute",
        |mut c: Caller<'_, GuestState>, (x,): (i32,)| {
            Box::new(async move {
                let code = compute(&mut c, x).await;
                unless_late(&c, code)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "get_output",
        |mut c: Caller<'_, GuestState>, x: i32, i: i32, o: i32, n: i32, w: i32| {
            with_memory(&mut c, "get_output", |m, nn| {
                get_output(m, nn, [x, i, o, n, w])
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        let memory = vec![0u8; 16];
        assert_eq!(range(&memory, 0, 16), Ok(0..16));
        assert_eq!(range(&memory, 12, 4), Ok(12..16));
        assert_eq!(range(&memory, 13, 4), Err(NnErrno::InvalidArgument));
        assert_eq!(range(&memory, -1, 1), Err(NnErrno::InvalidArgument));
        assert_eq!(range(&memory, 1, u64::MAX), Err(NnErrno::InvalidArgument));
        assert_eq!(read_u32(&memory, 14), Err(NnErrno::InvalidArgument));
    }
}
