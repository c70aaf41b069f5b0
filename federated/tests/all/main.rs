//! Integration tests of the federated core.

mod gradients;
mod training;
