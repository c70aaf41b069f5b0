//! Edge functions: WebAssembly guests run by wasmtime, calling models through wasi-nn.
//!
//! - [`WasmRuntime`] holds one engine (pooling allocator, epoch interruption driven by a ticker
//!   thread, fuel metering) and one linker (WASI preview 1 with in-memory stdio and no
//!   preopens, plus our `wasi_ephemeral_nn` host in [`nn`]). Each call gets its own `Store`
//!   with a deadline, fuel and a memory cap.
//! - [`nn::add_to_linker`] puts the wasi-nn host on any `Linker<T>` whose store data holds an
//!   [`NnCtx`], in wasmtime-wasi's shape; the runtime is one such user.
//! - [`wagi`] turns an HTTP request into a CGI environment and stdout back into a response.
//!
//! A guest that never returns is stopped at its deadline:
//!
//! ```
//! use std::sync::Arc;
//! use functions_runtime::{
//!     GraphSource, Grants, GuestLimits, Invocation, InvokeError, RuntimeConfig, WasmRuntime,
//! };
//!
//! struct NoModels;
//! impl GraphSource for NoModels {
//!     fn graph(&self, _: &str, _: Option<u64>) -> Option<Arc<inference::Model>> {
//!         None
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = WasmRuntime::new(RuntimeConfig::default()).map_err(|e| format!("{e}"))?;
//! let module = runtime.compile(br#"(module (func (export "_start") (loop br 0)))"#)?;
//! let pre = runtime.prepare(&module)?;
//! let call = Invocation {
//!     function: "spin".into(),
//!     args: vec!["spin".into()],
//!     env: Vec::new(),
//!     stdin: Default::default(),
//!     limits: GuestLimits { memory_mib: 16, timeout_ms: 50, fuel: None },
//!     grants: Grants { models: Vec::new().into(), allow_load: false, source: Arc::new(NoModels) },
//! };
//! let err = runtime.invoke(&pre, call).unwrap_err();
//! assert!(matches!(err, InvokeError::Timeout { timeout_ms: 50, .. }));
//! # Ok(())
//! # }
//! ```

mod cache;
mod config;
mod engine;
mod error;
mod invoke;
mod limiter;
pub mod nn;
mod pipe;
mod store;
pub mod wagi;

pub use cache::{check_initial_memory, CachedModule};
pub use config::{Grants, GuestLimits, Invocation, Output, RuntimeConfig};
pub use engine::WasmRuntime;
pub use error::{CompileError, InvokeError};
pub use nn::{GraphSource, ModelGrant, NnCtx, NnErrno, NnLimits};
pub use store::GuestState;
/// A module linked once by [`WasmRuntime::prepare`], instantiated per call.
pub use wasmtime::InstancePre;

#[cfg(test)]
mod tests;
