//! The federated-learning coordinator: jobs, rounds and the client registry over HTTP, and the
//! `simulate` command for experiments on one machine.
//!
//! Filled by the federated-learning issues; it depends on `federated` only, as DESIGN.md lays
//! out.
#![deny(missing_docs)]

pub use federated;
