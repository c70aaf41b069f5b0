//! Integration tests of `model-tools`, through the real binary.

mod agents;
mod bench;
mod cli;
mod python;
mod push;
mod quantize_dynamic;
mod quantize_static;
mod compare;
mod convert_fp16;
