//! Integration tests of `model-tools`, through the real binary.

mod cli;
mod python;
mod quantize_dynamic;
mod quantize_static;
