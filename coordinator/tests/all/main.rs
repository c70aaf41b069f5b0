//! Integration tests of the `coordinator` binary.

mod examples;
mod simulate;
