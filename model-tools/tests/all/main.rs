//! Integration tests of `model-tools`, through the real binary.

mod cli;
mod compare;
mod convert_fp16;
