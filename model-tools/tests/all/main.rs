//! Integration tests of `model-tools`, through the real binary.

mod cli;
mod quantize_dynamic;
