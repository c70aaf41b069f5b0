//! One `Store` per call: WASI with in-memory stdio, the wasi-nn state, the memory cap, the
//! epoch deadline and fuel.

use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::WasiCtxBuilder;

use crate::config::{mib_to_bytes, Invocation, RuntimeConfig};
use crate::error::InvokeError;
use crate::limiter::MemoryLimiter;
use crate::nn::NnCtx;
use crate::pipe::CappedPipe;

/// The per-call state of a `Store`.
pub struct GuestState {
    /// WASI preview 1.
    pub(crate) wasi: WasiP1Ctx,
    /// The wasi-nn host's state.
    pub(crate) nn: NnCtx,
    /// The memory cap.
    pub(crate) limiter: MemoryLimiter,
}

/// A call's `Store` and its stdio.
pub(crate) struct CallStore {
    /// The store.
    pub(crate) store: Store<GuestState>,
    /// Its stdout.
    pub(crate) stdout: CappedPipe,
    /// Its stderr.
    pub(crate) stderr: MemoryOutputPipe,
}

/// The instant `timeout_ms` from now; a timeout too far out for the clock is a year.
fn deadline_after(timeout_ms: u64) -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_millis(timeout_ms))
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

impl CallStore {
    /// A fresh `Store` on `engine` for one call: WASI with in-memory stdio, the wasi-nn
    /// state, the memory cap, the epoch deadline and fuel.
    pub(crate) fn new(
        engine: &Engine,
        config: &RuntimeConfig,
        call: Invocation,
    ) -> Result<Self, InvokeError> {
        let stdout = CappedPipe::new(config.max_stdout_bytes);
        let stderr = MemoryOutputPipe::new(config.max_stderr_bytes);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(call.stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&call.args)
            .envs(&call.env)
            .build_p1();
        let limits = call.limits;
        let cap_mib = limits.memory_mib.min(config.max_memory_mib);
        let deadline = deadline_after(limits.timeout_ms);
        // What the wasi-nn host holds for the guest counts against the same cap as its
        // linear memory, so a guest cannot make the host hold more than it could itself.
        let nn = NnCtx::new(
            call.grants.models,
            call.grants.allow_load,
            call.grants.source,
            config.nn,
            mib_to_bytes(cap_mib),
            deadline,
        );
        let mut store = Store::new(
            engine,
            GuestState {
                wasi,
                nn,
                limiter: MemoryLimiter::new(mib_to_bytes(cap_mib)),
            },
        );
        store.limiter(|s| &mut s.limiter);
        // At every epoch tick the guest yields to the async runtime (so a guest that computes
        // never holds a worker thread for more than a tick), and traps with
        // `Trap::Interrupt` once the call's deadline has passed.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                // tokio's `yield_now`, not a plain wake: the scheduler then polls its I/O
                // driver before the guest resumes, so other connections make progress even
                // on a runtime with one thread.
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .map_err(|e| InvokeError::Host {
                function: call.function.clone(),
                reason: format!("{e}"),
            })?;
        Ok(Self {
            store,
            stdout,
            stderr,
        })
    }
}
