//! The six calls of `wasi_ephemeral_nn` over guest memory and an [`NnCtx`]: every argument is
//! checked, and every refusal is an [`NnErrno`]. `load` and `compute` come in two halves
//! around the work that runs off the guest's thread (see `linker.rs`).

use std::sync::Arc;

use inference::{Dim, ElementType, Model, Tensor};

use super::abi::{
    element_type, Code, NnErrno, ENCODINGS, ENCODING_ONNX, MAX_NAME, MAX_RANK, TARGETS,
    TENSOR_SIZE, TENSOR_TYPE_OFFSET,
};
use super::ctx::{ExecContext, NnCtx};
use super::memory::{range, read_u32, read_u8, write_u32};

/// Adds a graph and writes its handle to `graph_ptr`, within `max_graphs`.
pub(super) fn push_graph(
    memory: &mut [u8],
    nn: &mut NnCtx,
    model: Arc<Model>,
    graph_ptr: i32,
) -> Code {
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
pub(super) fn prepare_load(
    memory: &mut [u8],
    nn: &mut NnCtx,
    args: [i32; 5],
) -> Result<Vec<u8>, NnErrno> {
    let [builders, count, encoding, target, graph_ptr] = args;
    range(memory, graph_ptr, 4)?;
    if !ENCODINGS.contains(&encoding) || !TARGETS.contains(&target) {
        return Err(NnErrno::InvalidArgument);
    }
    if encoding != ENCODING_ONNX {
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

/// `load_by_name(name, name_len, graph: *mut u32)`; `name` may be `model` or `model:version`.
pub(super) fn load_by_name(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 3]) -> Code {
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
pub(super) fn init_execution_context(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 2]) -> Code {
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
/// `dims_ptr, dims_len, type (one byte and 3 of padding), data_ptr, data_len`. Its type and dims must be
/// the model's for that input (a symbolic or unknown dim takes any size).
pub(super) fn set_input(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 3]) -> Code {
    let [ctx, index, tensor] = args;
    range(memory, tensor, TENSOR_SIZE)?;
    let field = |offset: i32| read_u32(memory, tensor.wrapping_add(offset));
    let (dims_ptr, dims_len) = (field(0)? as i32, field(4)? as usize);
    let ty = element_type(read_u8(memory, tensor.wrapping_add(TENSOR_TYPE_OFFSET))?)?;
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
pub(super) type Run = (Arc<Model>, Vec<(String, Tensor)>);

/// `compute(ctx)`, before the model runs: the model and a copy of the inputs.
pub(super) fn prepare_compute(nn: &NnCtx, ctx: i32) -> Result<Run, NnErrno> {
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

/// `compute(ctx)`, after the model ran: keeps the outputs if they fit the bounds.
pub(super) fn finish_compute(nn: &mut NnCtx, ctx: i32, outputs: Vec<Tensor>) -> Code {
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

/// `get_output(ctx, index, out: *mut u8, out_max, written: *mut u32)`.
pub(super) fn get_output(memory: &mut [u8], nn: &mut NnCtx, args: [i32; 5]) -> Code {
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
