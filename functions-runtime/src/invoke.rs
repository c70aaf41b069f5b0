//! Running a guest: `_start` of a fresh instance in a fresh store, under the call's deadline
//! (epoch interruption, backed by a timer for a guest waiting in the host), fuel and memory
//! cap; a failure mapped to what happened, with the tail of stderr.

use std::time::{Duration, Instant};

use wasmtime::{InstancePre, Store, Trap};
use wasmtime_wasi::I32Exit;

use crate::config::{GuestLimits, Invocation, Output};
use crate::engine::WasmRuntime;
use crate::error::InvokeError;
use crate::nn;
use crate::store::{CallStore, GuestState};

impl WasmRuntime {
    /// Runs `_start` of a fresh instance in a fresh `Store`, with the call's deadline, fuel and
    /// memory cap, as a task of the current tokio runtime (it must have timers enabled).
    ///
    /// The guest runs on the polling thread, but never holds it for much more than one epoch
    /// tick: at each tick it yields to the runtime, and once the call's deadline has passed it
    /// traps, so a guest that computes is stopped at its deadline. A guest that waits in the
    /// host (say, `poll_oneoff` on a clock, or a long wasi-nn `compute` on the blocking pool)
    /// is dropped by a timer at the same deadline plus two ticks.
    pub async fn call(
        &self,
        pre: &InstancePre<GuestState>,
        call: Invocation,
    ) -> Result<Output, InvokeError> {
        let (function, timeout_ms) = (call.function.clone(), call.limits.timeout_ms);
        let ticks = self.config().epoch_tick_ms.max(1).saturating_mul(2);
        let backstop = Duration::from_millis(timeout_ms.saturating_add(ticks));
        match tokio::time::timeout(backstop, self.invoke_async(pre, call)).await {
            Ok(result) => result,
            Err(_) => Err(InvokeError::Timeout {
                function,
                timeout_ms,
            }),
        }
    }

    /// [`call`](Self::call), blocking this thread until it ends: for callers outside of an
    /// async context (tests, benches, a blocking thread of a tokio runtime).
    pub fn invoke(
        &self,
        pre: &InstancePre<GuestState>,
        call: Invocation,
    ) -> Result<Output, InvokeError> {
        let run = self.call(pre, call);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(run),
            Err(_) => timer_runtime().block_on(run),
        }
    }

    async fn invoke_async(
        &self,
        pre: &InstancePre<GuestState>,
        call: Invocation,
    ) -> Result<Output, InvokeError> {
        let function = call.function.clone();
        let limits = call.limits;
        let max_stdout_bytes = self.config().max_stdout_bytes;
        let CallStore {
            mut store,
            stdout,
            stderr,
        } = CallStore::new(&self.engine, self.config(), call)?;
        let host = |reason: String| InvokeError::Host {
            function: function.clone(),
            reason,
        };
        let started = Instant::now();
        let instance = match pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(e) => {
                let text = format!("{e}");
                if text.contains("maximum concurrent") {
                    return Err(InvokeError::Busy {
                        function,
                        reason: format!("the engine's pool is full: {text}"),
                    });
                }
                if stdout.overflowed() {
                    return Err(InvokeError::OutputTooLarge {
                        function,
                        limit: max_stdout_bytes,
                    });
                }
                return Err(self.failure(e, &store, &function, limits, &stderr.contents()));
            }
        };
        let instantiate = started.elapsed();
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|e| host(format!("{e}")))?;
        let result = start.call_async(&mut store, ()).await;
        let run = started.elapsed() - instantiate;
        if stdout.overflowed() {
            // Whatever the guest did after its write was refused (trapped, or caught the
            // error and exited), its response is incomplete.
            return Err(InvokeError::OutputTooLarge {
                function,
                limit: max_stdout_bytes,
            });
        }
        if let Err(e) = result {
            let clean_exit = e.downcast_ref::<I32Exit>().is_some_and(|x| x.0 == 0);
            if !clean_exit {
                return Err(self.failure(e, &store, &function, limits, &stderr.contents()));
            }
        }
        drop(store);
        Ok(Output {
            stdout: stdout.take(),
            stderr: stderr.contents().to_vec(),
            instantiate,
            run,
        })
    }

    /// Maps a failed instantiate or call to what happened.
    fn failure(
        &self,
        e: wasmtime::Error,
        store: &Store<GuestState>,
        function: &str,
        limits: GuestLimits,
        stderr: &[u8],
    ) -> InvokeError {
        let function = function.to_owned();
        if e.downcast_ref::<nn::DeadlinePassed>().is_some() {
            return InvokeError::Timeout {
                function,
                timeout_ms: limits.timeout_ms,
            };
        }
        let trap = e.downcast_ref::<Trap>().copied();
        match trap {
            Some(Trap::Interrupt) => {
                return InvokeError::Timeout {
                    function,
                    timeout_ms: limits.timeout_ms,
                }
            }
            Some(Trap::OutOfFuel) => {
                return InvokeError::OutOfFuel {
                    function,
                    fuel: limits.fuel.unwrap_or(u64::MAX),
                }
            }
            _ => {}
        }
        let detail = match (e.downcast_ref::<I32Exit>(), trap) {
            (Some(exit), _) => format!("exited with status {}", exit.0),
            (None, Some(trap)) => trap.to_string(),
            (None, None) => format!("{e:#}"),
        };
        let stderr = stderr_tail(stderr);
        if let Some(asked) = store.data().limiter.refused {
            return InvokeError::Memory {
                function,
                limit_mib: limits.memory_mib.min(self.config().max_memory_mib),
                asked_bytes: asked as u64,
                detail,
                stderr,
            };
        }
        InvokeError::Trap {
            function,
            trap: detail,
            stderr,
        }
    }
}

/// A runtime for the deadline timer and WASI's async host calls when `invoke` is called
/// outside of one (tests, benches). Never dropped.
fn timer_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasm-timer")
            .enable_all()
            .build()
            .expect("a one-thread tokio runtime starts")
    })
}

/// The last 2 KiB of stderr as text.
fn stderr_tail(stderr: &[u8]) -> String {
    const TAIL: usize = 2048;
    let start = stderr.len().saturating_sub(TAIL);
    String::from_utf8_lossy(&stderr[start..])
        .trim_end()
        .to_owned()
}
