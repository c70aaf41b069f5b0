//! Our own host for the legacy `wasi_ephemeral_nn` ABI (what the `wasi-nn` 0.6 crate and
//! WasmEdge speak): `load`, `load_by_name`, `init_execution_context`, `set_input`, `compute`,
//! `get_output`.
//!
//! Every guest pointer and length is checked against the guest's memory before anything is read
//! or written, and every failure is an `nn_errno` code returned to the guest: a host function
//! here never panics, and traps only with [`DeadlinePassed`].
//!
//! The host works on any store: its data only has to hold an [`NnCtx`], handed out by the
//! `get` function given to [`add_to_linker`] (wasmtime-wasi's shape).
//!
//! - `abi`: the module name, `nn_errno` and the enums and bounds of the ABI;
//! - `memory`: bounds-checked guest memory access;
//! - `ctx`: [`NnCtx`], the per-invocation state, and what it is made from;
//! - `calls`: the six calls over guest memory and an [`NnCtx`];
//! - `linker`: the host functions and [`add_to_linker`];
//! - `recent`: each model's last compute time, which decides whether the next one runs inline.

mod abi;
mod calls;
mod ctx;
mod linker;
mod memory;
mod recent;

pub use abi::{NnErrno, MODULE};
pub use ctx::{DeadlinePassed, GraphSource, ModelGrant, NnCtx, NnLimits};
pub use linker::add_to_linker;
