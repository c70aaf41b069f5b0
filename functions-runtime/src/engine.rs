//! The engine: wasmtime with the pooling allocator, epoch interruption driven by a ticker
//! thread, fuel; one linker with WASI preview 1 and our wasi-nn host; compiling, checking and
//! pre-linking modules.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};

use crate::config::{mib_to_bytes, RuntimeConfig};
use crate::error::CompileError;
use crate::nn;
use crate::store::GuestState;

/// The shared engine and linker. Cheap to share behind an `Arc`.
pub struct WasmRuntime {
    pub(crate) engine: Engine,
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
            .max_memory_size(mib_to_bytes(config.max_memory_mib))
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(config.keep_resident_bytes);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .consume_fuel(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut GuestState| &mut s.wasi)?;
        nn::add_to_linker(&mut linker, |s: &mut GuestState| &mut s.nn)?;
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

    /// The digests of the artifacts this runtime wrote or verified, by path.
    pub(crate) fn digests(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, String>> {
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

    /// Checks a compiled (or deserialized) module: its imports, its `_start`, and that it links.
    pub(crate) fn check(&self, module: &Module) -> Result<(), CompileError> {
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
}
