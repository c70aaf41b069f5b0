//! Integration tests of the `inference` crate, one module per topic, run on both backends.

mod auto_backend;
mod concurrency;
mod dims;
mod element_types;
mod external_data;
mod graph_rules;
mod malformed;
mod open_shapes;
mod ort_library;
mod sample_models;
mod support;
