//! What the runtime is configured with, and what one call brings and produces.

use std::sync::Arc;
use std::time::Duration;

use crate::nn::{GraphSource, ModelGrant, NnLimits};

/// How the engine is set up. Everything here that changes compiled code is part of
/// [`WasmRuntime::engine_hash`](crate::WasmRuntime::engine_hash), so cached artifacts never
/// load into another configuration.
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
    /// Bytes of each linear memory (and table) the pooling allocator keeps resident when an
    /// instance ends: reset with `memset` instead of `madvise`, so the next call on that slot
    /// takes no page faults there. At most this times `max_instances` stays resident.
    /// Default 0 (wasmtime's): measured on `hello` (benches/README.md, "The function path
    /// after issue 13"), instantiate + call took 60 µs with 0, 67 µs with 128 KiB and 89 µs
    /// with 1 MiB, the `memset` of the kept bytes costing more than the faults it saves.
    pub keep_resident_bytes: usize,
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
            keep_resident_bytes: 0,
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
    /// stdin (shared, not copied: an HTTP request's body as it arrived).
    pub stdin: bytes::Bytes,
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
pub(crate) fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}
