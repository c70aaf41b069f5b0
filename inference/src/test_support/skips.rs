//! Tests that skip say so where a person looks: a `SKIPPED` line as they skip (written past
//! libtest's output capture, so it shows for passing tests too) and, when the test binary
//! exits, a summary under libtest's own `test result: ok` line. A plain `cargo test` that
//! skips the ONNX Runtime, conformance or guest tests therefore never looks fully green.

use std::io::Write;
use std::sync::{Mutex, Once};

/// `(test, why)` for every test of this process that skipped.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();

extern "C" {
    /// The C library's `atexit`: runs `f` when the process exits, after libtest's summary.
    fn atexit(f: extern "C" fn()) -> std::os::raw::c_int;
}

/// Records that `test` skipped because of `why`, prints it now, and makes sure the summary
/// is printed when the test binary exits.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (scripts/test.sh sets it up)"
    );
    SKIPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((test.to_owned(), why.to_owned()));
    REGISTER.call_once(|| {
        #[allow(
            unsafe_code,
            reason = "atexit is the one way to print after libtest's summary; the handler only writes to stderr"
        )]
        // SAFETY: `print_summary` is a plain `extern "C" fn` that neither unwinds nor
        // touches thread-locals; registering it has no other effect.
        unsafe {
            atexit(print_summary);
        }
    });
}

/// The summary lines for `skipped` (empty when nothing skipped).
pub fn summary(skipped: &[(String, String)]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nwarning: {} test(s) of this binary SKIPPED (counted as passed above); \
         scripts/test.sh runs them:\n",
        skipped.len()
    );
    for (test, why) in skipped {
        out.push_str(&format!("  SKIPPED {test}: {why}\n"));
    }
    out
}

extern "C" fn print_summary() {
    // Never panic across the C boundary: a poisoned lock still holds the list.
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let _ = std::io::stderr().write_all(summary(&skipped).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_skipped_test_and_why() {
        assert_eq!(summary(&[]), "");
        let text = summary(&[
            ("conformance".into(), "ONNX_NODE_TESTS is not set".into()),
            ("triton".into(), "EDGE_ML_PYTHON is not set".into()),
        ]);
        assert!(text.contains("2 test(s) of this binary SKIPPED"), "{text}");
        assert!(
            text.contains("SKIPPED conformance: ONNX_NODE_TESTS is not set"),
            "{text}"
        );
        assert!(
            text.contains("SKIPPED triton: EDGE_ML_PYTHON is not set"),
            "{text}"
        );
    }
}
