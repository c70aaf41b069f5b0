//! Edge functions: WebAssembly guests run by wasmtime, calling models through wasi-nn.
//!
//! - [`WasmRuntime`] holds one engine (pooling allocator, epoch interruption driven by a ticker
//!   thread, fuel metering) and one linker (WASI preview 1 with in-memory stdio and no
//!   preopens, plus our `wasi_ephemeral_nn` host in [`nn`]). Each call gets its own `Store`
//!   with a deadline, fuel and a memory cap.
//! - [`wagi`] turns an HTTP request into a CGI environment and stdout back into a response.

mod error;
pub mod nn;
mod runtime;
pub mod wagi;

pub use error::{CompileError, InvokeError};
pub use nn::{GraphSource, ModelGrant, NnLimits};
pub use runtime::{
    Grants, GuestLimits, GuestState, Invocation, Output, RuntimeConfig, WasmRuntime,
};

#[cfg(test)]
mod tests;
