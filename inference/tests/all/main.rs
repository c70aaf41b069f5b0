//! Integration tests of the `inference` crate, one module per topic, run on both backends.

mod concurrency;
mod element_types;
mod malformed;
mod ort_library;
mod sample_models;
mod support;
