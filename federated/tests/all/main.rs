//! Integration tests of the federated core.

mod gradients;
mod simulation;
mod training;
