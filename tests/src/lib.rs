//! Integration tests of the platform live in `tests/all/`; this library holds what they share
//! with the benches.
//!
//! - `conformance`: the ONNX backend node test cases on every backend, with pass floors.
//! - `real_models`: third-party models from PyPI wheels and the ONNX wheel's model cases on
//!   every backend, against python onnxruntime's outputs, with floors; the case reader and
//!   comparison are [`real_models`], and the measured table is
//!   [`real_models_table`], printed by `tests/src/bin/real-models.rs`.
//! - [`digits_cnn`]: the architecture and training recipe of `models/digits_cnn_trained.onnx`,
//!   which `tests/src/bin/train-digits-cnn.rs` runs.

pub mod digits_cnn;
pub mod real_model_setups;
pub mod real_models;
pub mod real_models_table;
