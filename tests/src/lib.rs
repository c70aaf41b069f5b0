//! Integration tests of the platform live in `tests/all/`; this library is empty.
//!
//! - `conformance`: the ONNX backend node test cases on every backend, with pass floors.
