//! The edge agent: an Open Inference Protocol v2 model server with a model repository, and a
//! WebAssembly runtime whose guests call models through wasi-nn.
//!
//! The server arrives with the edge-agent issue; the crate already depends on `inference` and
//! `federated`, as DESIGN.md lays out.
#![deny(missing_docs)]

pub use inference;
