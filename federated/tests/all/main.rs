//! Integration tests of the federated core.

mod gradients;
mod secagg;
mod simulation;
mod training;
mod wire;
