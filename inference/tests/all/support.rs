//! What the test modules share: the backends to run on.

use inference::test_support::ort_library;
use inference::{BackendKind, LoadOptions};

/// Load options for each backend that can run here: tract always, ONNX Runtime when present
/// (required under CI and scripts/test.sh).
pub fn backends(test: &str) -> Vec<LoadOptions> {
    let mut all = vec![LoadOptions::new(BackendKind::Tract)];
    if let Some(lib) = ort_library(test) {
        all.push(LoadOptions::new(BackendKind::Ort).with_ort_library(lib));
    }
    all
}
