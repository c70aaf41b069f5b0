//! Cross-crate integration tests, one module per topic.

mod conformance;
mod real_models;
mod trained_cnn;
