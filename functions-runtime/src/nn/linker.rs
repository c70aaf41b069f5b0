//! The host functions: the six calls defined on a [`Linker`], over any store data that can hand
//! out its [`NnCtx`]. `load` parses the model on tokio's blocking pool, and so does `compute`
//! unless the model's recent runs were short (then it runs inline), so the call's deadline
//! timer can end the call while a long one runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inference::{Model, Tensor};
use wasmtime::{Caller, Extern, Linker};

use super::abi::{Code, NnErrno, MODULE};
use super::calls;
use super::ctx::{DeadlinePassed, NnCtx};
use super::recent;

/// Turns a code into the host call's result, or a [`DeadlinePassed`] trap when the deadline
/// passed while the host was busy (a long `load` or `compute` that epoch interruption cannot
/// stop).
fn unless_late(nn: &NnCtx, code: i32) -> wasmtime::Result<i32> {
    if nn.past_deadline() {
        return Err(DeadlinePassed.into());
    }
    Ok(code)
}

/// The code the guest gets for an outcome (logging a refusal).
fn errno(call: &'static str, result: Code) -> i32 {
    match result {
        Ok(()) => NnErrno::Success as i32,
        Err(code) => {
            tracing::debug!(call, ?code, "wasi-nn call refused");
            code as i32
        }
    }
}

/// Runs `f` over the guest's memory and the invocation's wasi-nn state, turning the outcome into
/// the code the guest gets.
fn with_memory<T>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut NnCtx,
    call: &'static str,
    f: impl FnOnce(&mut [u8], &mut NnCtx) -> Code,
) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        tracing::debug!(call, "wasi-nn call from a guest without a `memory` export");
        return NnErrno::MissingMemory as i32;
    };
    let (bytes, state) = memory.data_and_store_mut(caller);
    errno(call, f(bytes, get(state)))
}

/// `load` as a host call: the model is parsed on tokio's blocking pool.
async fn load<T>(caller: &mut Caller<'_, T>, get: fn(&mut T) -> &mut NnCtx, args: [i32; 5]) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        tracing::debug!(
            call = "load",
            "wasi-nn call from a guest without a `memory` export"
        );
        return NnErrno::MissingMemory as i32;
    };
    let prepared = {
        let (bytes, state) = memory.data_and_store_mut(&mut *caller);
        calls::prepare_load(bytes, get(state), args)
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
                    calls::push_graph(bytes, get(state), Arc::new(model), args[4])
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %inference::error_chain(&e), "wasi-nn load: model refused");
                    get(caller.data_mut()).held -= len;
                    Err(NnErrno::InvalidEncoding)
                }
                Err(_) => {
                    tracing::warn!("wasi-nn load: the backend panicked");
                    get(caller.data_mut()).held -= len;
                    Err(NnErrno::InvalidEncoding)
                }
            }
        }
    };
    errno("load", result)
}

/// Runs the model: inline on the guest's thread when its recent runs were short and the
/// deadline is far (see [`recent`]), else on tokio's blocking pool, so that the call's deadline
/// timer can end the call while it runs. A backend that panics on odd input must not take the
/// host down with it: the panic is caught either way.
async fn run_model(
    model: Arc<Model>,
    inputs: Vec<(String, Tensor)>,
    remaining: Duration,
) -> Result<Vec<Tensor>, NnErrno> {
    let input_bytes = inputs.iter().map(|(_, t)| t.byte_len()).sum();
    let run = move |model: Arc<Model>| {
        let started = Instant::now();
        let outputs = model.run(inputs);
        recent::record(&model, input_bytes, started.elapsed());
        outputs
    };
    let ran = if recent::inline(&model, input_bytes, remaining) {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(model))).map_err(drop)
    } else {
        tokio::task::spawn_blocking(move || run(model))
            .await
            .map_err(drop)
    };
    let outputs = ran
        .map_err(|()| {
            tracing::warn!("wasi-nn compute: the backend panicked");
            NnErrno::RuntimeError
        })?
        .map_err(|e| {
            tracing::debug!(error = %inference::error_chain(&e), "wasi-nn compute failed");
            // The same rule as the HTTP edge: what the guest passed is its mistake, a failure
            // underneath is the runtime's.
            if e.is_caller_error() {
                NnErrno::InvalidArgument
            } else {
                NnErrno::RuntimeError
            }
        })?;
    Ok(outputs.into_iter().map(|(_, t)| t).collect())
}

/// `compute(ctx)` as a host call: checks and copies under the store, runs the model (inline
/// or on the blocking pool, see [`run_model`]), then stores the outputs.
async fn compute<T>(caller: &mut Caller<'_, T>, get: fn(&mut T) -> &mut NnCtx, ctx: i32) -> i32 {
    if !matches!(caller.get_export("memory"), Some(Extern::Memory(_))) {
        tracing::debug!(
            call = "compute",
            "wasi-nn call from a guest without a `memory` export"
        );
        return NnErrno::MissingMemory as i32;
    }
    let remaining = get(caller.data_mut()).remaining();
    let result = match calls::prepare_compute(get(caller.data_mut()), ctx) {
        Ok((model, inputs)) => match run_model(model, inputs, remaining).await {
            Ok(outputs) => calls::finish_compute(get(caller.data_mut()), ctx, outputs),
            Err(code) => Err(code),
        },
        Err(code) => Err(code),
    };
    errno("compute", result)
}

/// Defines the six functions of `wasi_ephemeral_nn` on `linker`, in the shape of
/// `wasmtime_wasi::p1::add_to_linker_async`: `get` hands out the [`NnCtx`] inside the store's
/// data, so any store type can host the calls.
///
/// Host functions here never trap except with [`DeadlinePassed`] (a `load` or `compute` that
/// came back past the deadline), and never panic: every failure is an `nn_errno` code.
/// `load` and `compute` are async (call guests with `call_async` inside a tokio runtime);
/// `T` must be `Send` for them.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut NnCtx,
) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "load",
        move |mut c: Caller<'_, T>, (a, b, e, t, g): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let code = load(&mut c, get, [a, b, e, t, g]).await;
                unless_late(get(c.data_mut()), code)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "load_by_name",
        move |mut c: Caller<'_, T>, p: i32, l: i32, g: i32| {
            with_memory(&mut c, get, "load_by_name", |m, nn| {
                calls::load_by_name(m, nn, [p, l, g])
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "init_execution_context",
        move |mut c: Caller<'_, T>, g: i32, p: i32| {
            with_memory(&mut c, get, "init_execution_context", |m, nn| {
                calls::init_execution_context(m, nn, [g, p])
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "set_input",
        move |mut c: Caller<'_, T>, x: i32, i: i32, t: i32| {
            with_memory(&mut c, get, "set_input", |m, nn| {
                calls::set_input(m, nn, [x, i, t])
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "compute",
        move |mut c: Caller<'_, T>, (x,): (i32,)| {
            Box::new(async move {
                let code = compute(&mut c, get, x).await;
                unless_late(get(c.data_mut()), code)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "get_output",
        move |mut c: Caller<'_, T>, x: i32, i: i32, o: i32, n: i32, w: i32| {
            with_memory(&mut c, get, "get_output", |m, nn| {
                calls::get_output(m, nn, [x, i, o, n, w])
            })
        },
    )?;
    Ok(())
}
