//! What can go wrong compiling and running a guest.

/// Why a module was refused at deploy or could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The bytes are not a valid WebAssembly module.
    #[error("the module does not parse or validate: {reason}")]
    Invalid {
        /// Wasmtime's explanation.
        reason: String,
    },
    /// The module imports something the agent does not provide.
    #[error("the module imports `{module}::{name}`, which the agent does not provide (only `wasi_snapshot_preview1` and `wasi_ephemeral_nn`)")]
    ForbiddenImport {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
    },
    /// The module cannot be linked for another reason (e.g. an import of the wrong type).
    #[error("the module cannot be linked: {reason}")]
    Link {
        /// Wasmtime's explanation.
        reason: String,
    },
    /// The module is not a WASI command.
    #[error("the module exports no `_start` function; build it as a WASI command (a `main`)")]
    NoStart,
    /// `_start` takes parameters or returns results.
    #[error("the module's `_start` has params ({params}) and results ({results}); a WASI command's `_start` takes none and returns none")]
    StartSignature {
        /// Its parameter types.
        params: String,
        /// Its result types.
        results: String,
    },
    /// The module's initial memory is larger than its manifest grants.
    #[error("the module's initial memory is {bytes} bytes, more than its manifest's `memory_mib` ({limit_mib} MiB) allows")]
    InitialMemory {
        /// The initial memory, in bytes.
        bytes: u64,
        /// The manifest's `memory_mib`.
        limit_mib: u64,
    },
    /// The precompiled artifact cache failed.
    #[error("artifact cache I/O error on `{path}`")]
    Cache {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Why an invocation did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The deadline passed (epoch interruption).
    #[error("function `{function}` exceeded its deadline of {timeout_ms} ms")]
    Timeout {
        /// The function.
        function: String,
        /// Its deadline.
        timeout_ms: u64,
    },
    /// The guest ran out of fuel.
    #[error("function `{function}` ran out of fuel ({fuel} units)")]
    OutOfFuel {
        /// The function.
        function: String,
        /// Its fuel.
        fuel: u64,
    },
    /// The guest tried to grow its memory past its cap.
    #[error("function `{function}` hit its memory limit of {limit_mib} MiB (asked for {asked_bytes} bytes): {detail}; stderr: {stderr}")]
    Memory {
        /// The function.
        function: String,
        /// The cap.
        limit_mib: u64,
        /// The size the refused grow asked for.
        asked_bytes: u64,
        /// How the guest failed after the refusal.
        detail: String,
        /// The tail of the guest's stderr.
        stderr: String,
    },
    /// The guest trapped (or exited with a non-zero status).
    #[error("function `{function}` failed: {trap}; stderr: {stderr}")]
    Trap {
        /// The function.
        function: String,
        /// The trap or exit status.
        trap: String,
        /// The tail of the guest's stderr.
        stderr: String,
    },
    /// The guest wrote more to stdout than the agent keeps (it is stopped at that write).
    #[error("function `{function}` wrote more than {limit} bytes to stdout (functions.max_stdout_bytes)")]
    OutputTooLarge {
        /// The function.
        function: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// No instance slot is free (per-function limit or the engine's pool).
    #[error("function `{function}` is busy: {reason}")]
    Busy {
        /// The function.
        function: String,
        /// Which limit was reached.
        reason: String,
    },
    /// The host failed (not the guest's fault).
    #[error("function `{function}` could not run: {reason}")]
    Host {
        /// The function.
        function: String,
        /// What failed.
        reason: String,
    },
}
