//! The engine: wasmtime with the pooling allocator, epoch interruption driven by a ticker
//! thread, fuel, WASI preview 1 with in-memory stdio, our wasi-nn host, one `Store` per call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use super::error::{CompileError, InvokeError};
use super::nn::{self, GraphSource, ModelGrant, NnCtx, NnLimits};
use super::pipe::CappedPipe;

/// How the engine is set up. Everything here that changes compiled code is part of
/// [`WasmRuntime::engine_hash`], so cached artifacts never load into another configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances (and memories, tables) the pool holds: the most guests running at once.
    pub max_instances: u32,
    /// The largest linear memory any guest may have, in MiB (manifests ask for less).
    pub max_memory_mib: u64,
    /// The epoch ticker's period, in milliseconds (the granularity of deadlines).
    pub epoch_tick_ms: u64,
    /// Most bytes a guest may write to stdout per call.
    pub max_stdout_bytes: usize,
    /// Most bytes a guest may write to stderr per call.
    pub max_stderr_bytes: usize,
    /// Bounds on wasi-nn calls.
    pub nn: NnLimits,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 64,
            max_memory_mib: 512,
            epoch_tick_ms: 5,
            max_stdout_bytes: 16 << 20,
            max_stderr_bytes: 1 << 20,
            nn: NnLimits {
                max_tensor_bytes: 64 << 20,
                max_model_bytes: 64 << 20,
                max_graphs: 16,
                max_contexts: 64,
            },
        }
    }
}

/// The limits of one call, from the function's manifest.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    /// Memory cap in MiB.
    pub memory_mib: u64,
    /// Deadline in milliseconds.
    pub timeout_ms: u64,
    /// Fuel, if metered.
    pub fuel: Option<u64>,
}

/// What a guest may use while it runs.
#[derive(Clone)]
pub struct Grants {
    /// Models it may load by name.
    pub models: Arc<[ModelGrant]>,
    /// Whether it may pass model bytes to `load`.
    pub allow_load: bool,
    /// Where named models come from.
    pub source: Arc<dyn GraphSource>,
}

/// One call of a guest as a WASI command.
pub struct Invocation {
    /// The function's name (for errors and logs).
    pub function: String,
    /// `argv`.
    pub args: Vec<String>,
    /// The environment (nothing else is visible).
    pub env: Vec<(String, String)>,
    /// stdin.
    pub stdin: Vec<u8>,
    /// Its limits.
    pub limits: GuestLimits,
    /// What it may use.
    pub grants: Grants,
}

/// What a successful call produced.
#[derive(Debug)]
pub struct Output {
    /// stdout.
    pub stdout: Vec<u8>,
    /// stderr.
    pub stderr: Vec<u8>,
    /// Time to instantiate.
    pub instantiate: Duration,
    /// Time in `_start`.
    pub run: Duration,
}

/// `mib` MiB in bytes, saturating (no configured or granted size can wrap around).
fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// The instant `timeout_ms` from now; a timeout too far out for the clock is a year.
fn deadline_after(timeout_ms: u64) -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_millis(timeout_ms))
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

/// Caps memory growth and remembers a refusal, so the error can say it was memory.
struct MemoryLimiter {
    cap: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The per-call state of a `Store`.
pub struct GuestState {
    wasi: WasiP1Ctx,
    pub(super) nn: NnCtx,
    limiter: MemoryLimiter,
}

/// A call's `Store` and its stdio.
pub(super) struct CallStore {
    /// The store.
    pub(super) store: Store<GuestState>,
    /// Its stdout.
    pub(super) stdout: CappedPipe,
    /// Its stderr.
    pub(super) stderr: MemoryOutputPipe,
}

/// The shared engine and linker. Cheap to share behind an `Arc`.
pub struct WasmRuntime {
    pub(super) engine: Engine,
    linker: Linker<GuestState>,
    config: RuntimeConfig,
    engine_hash: String,
    /// Digests of the artifacts this runtime wrote or verified, by path.
    digests: Mutex<HashMap<PathBuf, String>>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("config", &self.config)
            .field("engine_hash", &self.engine_hash)
            .finish_non_exhaustive()
    }
}

/// The modules a guest may import from.
const ALLOWED_IMPORTS: [&str; 2] = ["wasi_snapshot_preview1", nn::MODULE];

impl WasmRuntime {
    /// Builds the engine and the linker, and starts the epoch ticker (which stops when the
    /// engine is dropped).
    pub fn new(config: RuntimeConfig) -> wasmtime::Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(config.max_instances)
            .total_memories(config.max_instances)
            .total_tables(config.max_instances)
            .total_stacks(config.max_instances)
            .max_memory_size(mib_to_bytes(config.max_memory_mib));
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .consume_fuel(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut GuestState| &mut s.wasi)?;
        nn::add_to_linker(&mut linker)?;
        let engine_hash = {
            use std::hash::{Hash, Hasher};
            let mut compat = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut compat);
            let described = format!(
                "wasmtime 48.0.8; epoch; fuel; pooling {} x {} MiB; compat {:016x}",
                config.max_instances,
                config.max_memory_mib,
                compat.finish()
            );
            hex::encode(&Sha256::digest(described.as_bytes())[..8])
        };
        let weak = engine.weak();
        let tick = Duration::from_millis(config.epoch_tick_ms.max(1));
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            })
            .map_err(wasmtime::Error::from)?;
        Ok(Self {
            engine,
            linker,
            config,
            engine_hash,
            digests: Mutex::new(HashMap::new()),
        })
    }

    /// A short hash of the engine configuration; part of every cached artifact's name.
    pub fn engine_hash(&self) -> &str {
        &self.engine_hash
    }

    pub(super) fn digests(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, String>> {
        self.digests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Compiles and checks a module: it must validate, import only what we provide, and be a
    /// WASI command.
    pub fn compile(&self, wasm: &[u8]) -> Result<Module, CompileError> {
        let module = Module::new(&self.engine, wasm).map_err(|e| CompileError::Invalid {
            reason: format!("{e:#}"),
        })?;
        self.check(&module)?;
        Ok(module)
    }

    pub(super) fn check(&self, module: &Module) -> Result<(), CompileError> {
        if let Some(import) = module
            .imports()
            .find(|i| !ALLOWED_IMPORTS.contains(&i.module()))
        {
            return Err(CompileError::ForbiddenImport {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            });
        }
        match module.get_export("_start") {
            Some(wasmtime::ExternType::Func(f)) if f.params().len() + f.results().len() == 0 => {}
            Some(wasmtime::ExternType::Func(f)) => {
                let list = |types: &mut dyn Iterator<Item = wasmtime::ValType>| {
                    types.map(|t| t.to_string()).collect::<Vec<_>>().join(" ")
                };
                return Err(CompileError::StartSignature {
                    params: list(&mut f.params()),
                    results: list(&mut f.results()),
                });
            }
            _ => return Err(CompileError::NoStart),
        }
        self.prepare(module).map(drop)
    }

    /// Links a module once, so each call only instantiates.
    pub fn prepare(&self, module: &Module) -> Result<InstancePre<GuestState>, CompileError> {
        self.linker
            .instantiate_pre(module)
            .map_err(|e| CompileError::Link {
                reason: format!("{e:#}"),
            })
    }

    /// Runs `_start` of a fresh instance in a fresh `Store`, with the call's deadline, fuel and
    /// memory cap. Blocking: call it off the async reactor (e.g. in `spawn_blocking`).
    ///
    /// The guest runs on this thread. The epoch deadline stops a guest that computes; a guest
    /// that waits in the host (say, `poll_oneoff` on a clock) is dropped by a timer at the same
    /// deadline plus two ticks.
    pub fn invoke(
        &self,
        pre: &InstancePre<GuestState>,
        call: Invocation,
    ) -> Result<Output, InvokeError> {
        let (function, timeout_ms) = (call.function.clone(), call.limits.timeout_ms);
        let ticks = self.config.epoch_tick_ms.max(1).saturating_mul(2);
        let backstop = Duration::from_millis(timeout_ms.saturating_add(ticks));
        let run = async move {
            match tokio::time::timeout(backstop, self.invoke_async(pre, call)).await {
                Ok(result) => result,
                Err(_) => Err(InvokeError::Timeout {
                    function,
                    timeout_ms,
                }),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(run),
            Err(_) => timer_runtime().block_on(run),
        }
    }

    /// A fresh `Store` for one call: WASI with in-memory stdio, the wasi-nn state, the memory
    /// cap, the epoch deadline and fuel.
    pub(super) fn new_store(&self, call: Invocation) -> Result<CallStore, InvokeError> {
        let stdout = CappedPipe::new(self.config.max_stdout_bytes);
        let stderr = MemoryOutputPipe::new(self.config.max_stderr_bytes);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(call.stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&call.args)
            .envs(&call.env)
            .build_p1();
        let limits = call.limits;
        let cap_mib = limits.memory_mib.min(self.config.max_memory_mib);
        // What the wasi-nn host holds for the guest counts against the same cap as its
        // linear memory, so a guest cannot make the host hold more than it could itself.
        let nn = NnCtx::new(
            call.grants.models,
            call.grants.allow_load,
            call.grants.source,
            self.config.nn,
            mib_to_bytes(cap_mib),
            deadline_after(limits.timeout_ms),
        );
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi,
                nn,
                limiter: MemoryLimiter {
                    cap: mib_to_bytes(cap_mib),
                    refused: None,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        let tick = self.config.epoch_tick_ms.max(1);
        store.set_epoch_deadline(limits.timeout_ms.div_ceil(tick).max(1));
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .map_err(|e| InvokeError::Host {
                function: call.function.clone(),
                reason: format!("{e}"),
            })?;
        Ok(CallStore {
            store,
            stdout,
            stderr,
        })
    }

    async fn invoke_async(
        &self,
        pre: &InstancePre<GuestState>,
        call: Invocation,
    ) -> Result<Output, InvokeError> {
        let function = call.function.clone();
        let limits = call.limits;
        let CallStore {
            mut store,
            stdout,
            stderr,
        } = self.new_store(call)?;
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
                        limit: self.config.max_stdout_bytes,
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
                limit: self.config.max_stdout_bytes,
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
                limit_mib: limits.memory_mib.min(self.config.max_memory_mib),
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
