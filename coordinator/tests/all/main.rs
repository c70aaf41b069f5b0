//! Integration tests of the `coordinator` binary.

mod simulate;
