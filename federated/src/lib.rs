//! Federated learning core: strategies, differential privacy, secure aggregation, the local
//! trainer, partitioners and simulation. Pure logic, no I/O.
//!
//! This crate is filled by the federated-learning issues; for now it only holds its place in
//! the workspace so that the dependency graph of DESIGN.md is in force from the start.
#![deny(missing_docs)]
