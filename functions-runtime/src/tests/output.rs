//! A guest's stdout is capped: output past `max_stdout_bytes` stops the guest at that write
//! and fails the call by name, never a silently truncated response.

use super::*;

/// A runtime keeping at most `cap` bytes of stdout.
fn runtime_with_stdout(cap: usize) -> WasmRuntime {
    WasmRuntime::new(RuntimeConfig {
        max_instances: 4,
        max_memory_mib: 64,
        max_stdout_bytes: cap,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// Writes `chunks` chunks of 64 KiB of `x` to stdout (`-1`: forever), ignoring every error,
/// then exits cleanly.
fn writer(chunks: i32) -> String {
    format!(
        r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "_start") (local $i i32)
        (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (loop $again
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.or (i32.lt_s (i32.const {chunks}) (i32.const 0))
                                (i32.lt_s (local.get $i) (i32.const {chunks})))))))"#
    )
}

const GENEROUS: GuestLimits = GuestLimits {
    memory_mib: 4,
    timeout_ms: 20_000,
    fuel: None,
};

#[test]
fn stdout_past_the_cap_is_an_error_naming_the_limit() {
    let rt = runtime_with_stdout(1 << 20);
    // 100 MiB, as in the report: an error, not the first 1 MiB with a success.
    let err = call(&rt, &writer(1600), GENEROUS, &[]).unwrap_err();
    assert!(
        matches!(err, InvokeError::OutputTooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("1048576 bytes") && text.contains("functions.max_stdout_bytes"),
        "{text}"
    );
    // Exactly the cap is fine, and the engine keeps working.
    let out = call(&rt, &writer(16), GENEROUS, &[]).unwrap();
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stdout.iter().all(|b| *b == b'x'));
    assert_eq!(call(&rt, ECHO, LIMITS, &[]).unwrap().stdout, b"ping");
}

#[test]
fn a_guest_that_keeps_writing_past_the_cap_is_stopped_at_that_write() {
    let rt = runtime_with_stdout(1 << 20);
    // It would write forever (ignoring errors): only stopping it at the refused write ends the
    // call as output too large rather than at its deadline.
    let err = call(&rt, &writer(-1), GENEROUS, &[]).unwrap_err();
    assert!(matches!(err, InvokeError::OutputTooLarge { .. }), "{err}");
}
