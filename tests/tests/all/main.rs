//! Cross-crate integration tests, one module per topic.

mod conformance;
