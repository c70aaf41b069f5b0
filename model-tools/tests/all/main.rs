//! Integration tests of `model-tools`, through the real binary.

mod agents;
mod bench;
mod calibration;
mod calibration_models;
mod cli;
mod compare;
mod convert_fp16;
mod push;
mod python;
mod quantize_dynamic;
mod quantize_static;
