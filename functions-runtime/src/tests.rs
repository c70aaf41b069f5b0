//! The runtime and the wasi-nn host against hand-written hostile guests.

use std::collections::HashMap;
use std::sync::Arc;

use inference::{LoadOptions, Model};
use sha2::Digest;

use super::*;

mod fuzz_input;
mod nn_fuzz;
mod nn_host_fuzz;
mod nn_limits;
mod output;
mod scheduling;

/// The nn_errno digits `nn_hostile.wat` must print, call by call.
const NN_HOSTILE_EXPECTED: &str = include_str!("../tests/wat/nn_hostile.expected");

/// The bytes of `models/<name>` (the repository's committed sample models).
fn model_bytes(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

struct Models(HashMap<(String, u64), Arc<Model>>);

impl GraphSource for Models {
    fn graph(&self, name: &str, version: Option<u64>) -> Option<Arc<Model>> {
        self.0
            .get(&(name.to_owned(), version.unwrap_or(2)))
            .cloned()
    }
}

fn models() -> Arc<dyn GraphSource> {
    let mlp =
        Arc::new(Model::load(model_bytes("digits_mlp.onnx"), &LoadOptions::default()).unwrap());
    let mut map = HashMap::new();
    for key in [("digits", 1), ("digits", 2), ("secret", 2)] {
        map.insert((key.0.to_owned(), key.1), mlp.clone());
    }
    Arc::new(Models(map))
}

fn runtime() -> WasmRuntime {
    WasmRuntime::new(RuntimeConfig {
        max_instances: 8,
        max_memory_mib: 64,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// A small runtime (4 instances, 64 MiB) with these wasi-nn limits.
fn runtime_with_nn(nn: NnLimits) -> WasmRuntime {
    WasmRuntime::new(RuntimeConfig {
        max_instances: 4,
        max_memory_mib: 64,
        nn,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// `bytes` as a WAT data string (`\\xx` escapes).
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

fn call(
    rt: &WasmRuntime,
    wat: &str,
    limits: GuestLimits,
    grants: &[ModelGrant],
) -> Result<Output, InvokeError> {
    call_with(rt, wat, limits, grants, false)
}

fn call_with(
    rt: &WasmRuntime,
    wat: &str,
    limits: GuestLimits,
    grants: &[ModelGrant],
    allow_load: bool,
) -> Result<Output, InvokeError> {
    let module = rt.compile(wat.as_bytes()).unwrap();
    let pre = rt.prepare(&module).unwrap();
    rt.invoke(
        &pre,
        Invocation {
            function: "t".into(),
            args: vec!["t".into()],
            env: vec![("GREETING".into(), "hi".into())],
            stdin: bytes::Bytes::from_static(b"ping"),
            limits,
            grants: Grants {
                models: grants.to_vec().into(),
                allow_load,
                source: models(),
            },
        },
    )
}

const LIMITS: GuestLimits = GuestLimits {
    memory_mib: 2,
    timeout_ms: 200,
    fuel: None,
};

const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

#[test]
fn stdin_goes_to_stdout() {
    let rt = runtime();
    let out = call(&rt, ECHO, LIMITS, &[]).unwrap();
    assert_eq!(out.stdout, b"ping");
}

#[test]
fn runaway_guests_get_typed_errors_and_the_engine_keeps_working() {
    let rt = runtime();
    let spin = r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#;
    let err = call(&rt, spin, LIMITS, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            InvokeError::Timeout {
                timeout_ms: 200,
                ..
            }
        ),
        "{err}"
    );

    let fueled = GuestLimits {
        fuel: Some(10_000),
        timeout_ms: 10_000,
        ..LIMITS
    };
    let err = call(&rt, spin, fueled, &[]).unwrap_err();
    assert!(matches!(err, InvokeError::OutOfFuel { .. }), "{err}");

    let bomb = r#"(module (memory (export "memory") 1)
      (func (export "_start")
        (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        unreachable))"#;
    let err = call(&rt, bomb, LIMITS, &[]).unwrap_err();
    assert!(
        matches!(err, InvokeError::Memory { limit_mib: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("memory"), "{err}");

    let deep = r#"(module (memory (export "memory") 1)
      (func $f (param i32) (result i32) (call $f (i32.add (local.get 0) (i32.const 1))))
      (func (export "_start") (drop (call $f (i32.const 0)))))"#;
    let err = call(&rt, deep, LIMITS, &[]).unwrap_err();
    assert!(err.to_string().contains("stack"), "{err}");

    let exit = r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "boom")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 4))
        (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $exit (i32.const 3))))"#;
    let err = call(&rt, exit, LIMITS, &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("status 3") && text.contains("boom"), "{text}");

    assert_eq!(call(&rt, ECHO, LIMITS, &[]).unwrap().stdout, b"ping");
}

#[test]
fn a_guest_waiting_in_the_host_is_dropped_at_its_deadline() {
    let rt = runtime();
    // poll_oneoff on the monotonic clock for 60 s.
    let sleep = r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i64.store (i32.const 0) (i64.const 1))
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 1))
        (i64.store (i32.const 24) (i64.const 60000000000))
        (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))"#;
    let started = std::time::Instant::now();
    let err = call(&rt, sleep, LIMITS, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            InvokeError::Timeout {
                timeout_ms: 200,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 30, "it waited out the sleep");
    assert_eq!(call(&rt, ECHO, LIMITS, &[]).unwrap().stdout, b"ping");
}

#[test]
fn deploy_checks_name_the_problem() {
    let rt = runtime();
    let err = rt.compile(b"\0asm garbage").unwrap_err();
    assert!(matches!(err, CompileError::Invalid { .. }), "{err}");
    let forbidden = r#"(module (import "env" "secret" (func)) (func (export "_start")))"#;
    let err = rt.compile(forbidden.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("`env::secret`"), "{err}");
    let unknown_wasi = r#"(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (func (export "_start")))"#;
    let err = rt.compile(unknown_wasi.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("no_such_call"), "{err}");
    let err = rt.compile(b"(module)").unwrap_err();
    assert!(matches!(err, CompileError::NoStart), "{err}");
    let err = rt
        .compile(br#"(module (func (export "_start") (param i32) (result i64) i64.const 0))"#)
        .unwrap_err();
    assert!(matches!(err, CompileError::StartSignature { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("`_start`") && text.contains("(i32)") && text.contains("(i64)"),
        "{text}"
    );
    let table = r#"(module (table (export "_start") 1 funcref))"#;
    let err = rt.compile(table.as_bytes()).unwrap_err();
    assert!(matches!(err, CompileError::NoStart), "{err}");
}

#[test]
fn artifacts_are_cached_per_engine() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (_, compiled) = rt.load_cached(dir.path(), "abc", ECHO.as_bytes()).unwrap();
    assert!(compiled);
    let (module, compiled) = rt.load_cached(dir.path(), "abc", ECHO.as_bytes()).unwrap();
    assert!(!compiled);
    rt.prepare(&module).unwrap();
    let other = WasmRuntime::new(RuntimeConfig {
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert_ne!(other.engine_hash(), rt.engine_hash());
    let (_, compiled) = other
        .load_cached(dir.path(), "abc", ECHO.as_bytes())
        .unwrap();
    assert!(compiled);
}

#[test]
fn artifacts_load_only_with_the_recorded_digest() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let first = runtime();
    let written = first
        .load_verified(&cache, "abc", ECHO.as_bytes(), None)
        .unwrap();
    assert!(written.compiled);
    let digest = written.written.expect("the artifact was written");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let path = cache.join(format!("abc-{}.cwasm", first.engine_hash()));

    // A fresh runtime (a restart) trusts the artifact only with its digest.
    let rt = runtime();
    let cached = rt
        .load_verified(&cache, "abc", ECHO.as_bytes(), Some(&digest))
        .unwrap();
    assert!(!cached.compiled && cached.written.is_none());
    let unknown = runtime()
        .load_verified(&cache, "abc", ECHO.as_bytes(), None)
        .unwrap();
    assert!(unknown.compiled);

    // Swap in another module's artifact (valid, but not what was written for `abc`).
    let spin = r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#;
    let other = rt.compile(spin.as_bytes()).unwrap().serialize().unwrap();
    std::fs::write(&path, &other).unwrap();
    let rt = runtime();
    let reloaded = rt
        .load_verified(&cache, "abc", ECHO.as_bytes(), Some(&digest))
        .unwrap();
    assert!(reloaded.compiled, "a tampered artifact was loaded");
    let rewritten = reloaded.written.expect("rewritten");
    assert_eq!(
        hex::encode(sha2::Sha256::digest(std::fs::read(&path).unwrap())),
        rewritten
    );
    let pre = rt.prepare(&reloaded.module).unwrap();
    let out = rt
        .invoke(
            &pre,
            Invocation {
                function: "t".into(),
                args: vec!["t".into()],
                env: Vec::new(),
                stdin: bytes::Bytes::from_static(b"ping"),
                limits: LIMITS,
                grants: Grants {
                    models: Vec::new().into(),
                    allow_load: false,
                    source: models(),
                },
            },
        )
        .unwrap();
    assert_eq!(out.stdout, b"ping");

    // A symlink to the right bytes is refused too.
    let real = dir.path().join("real.cwasm");
    std::fs::rename(&path, &real).unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    let linked = runtime()
        .load_verified(&cache, "abc", ECHO.as_bytes(), Some(&rewritten))
        .unwrap();
    assert!(linked.compiled, "a symlinked artifact was loaded");
}

#[test]
fn a_cache_that_cannot_be_written_only_costs_a_recompile() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let rt = runtime();
    let cached = rt
        .load_verified(&not_a_dir, "abc", ECHO.as_bytes(), None)
        .unwrap();
    assert!(cached.compiled && cached.written.is_none());
    rt.prepare(&cached.module).unwrap();
}

#[test]
fn nn_calls_with_garbage_get_error_codes() {
    let rt = runtime();
    let grants = [ModelGrant {
        name: "digits".into(),
        version: Some(1),
    }];
    let wat = include_str!("../tests/wat/nn_hostile.wat");
    let out = call(&rt, wat, LIMITS, &grants).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), NN_HOSTILE_EXPECTED);
}

#[test]
fn nn_without_memory_is_missing_memory() {
    let rt = runtime();
    // Exits cleanly only if `compute` answered `missing_memory` (3).
    let wat = r#"(module
      (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
      (func (export "_start")
        (if (i32.ne (call $compute (i32.const 0)) (i32.const 3)) (then unreachable))))"#;
    call(&rt, wat, LIMITS, &[]).unwrap();
}

#[test]
fn nn_load_takes_onnx_bytes_only_when_granted_and_checks_them() {
    let rt = runtime_with_nn(NnLimits {
        max_model_bytes: 1 << 20,
        ..RuntimeConfig::default().nn
    });
    let onnx = model_bytes("digits_mlp.onnx");
    let escaped = wat_bytes(&onnx);
    // Builders at 0: (model at 65536, its length); at 16: (garbage at 32, 8 bytes); at 48:
    // (65536, 2 MiB); at 56: (model pointer out of bounds). Codes go to stdout as digits.
    let wat = format!(
        r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
      (memory (export "memory") 4)
      (data (i32.const 65536) "{escaped}")
      (data (i32.const 32) "garbage!")
      (global $n (mut i32) (i32.const 0))
      (func $rec (param i32)
        (i32.store8 (i32.add (i32.const 1024) (global.get $n)) (i32.add (local.get 0) (i32.const 48)))
        (global.set $n (i32.add (global.get $n) (i32.const 1))))
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const {len}))
        (i32.store (i32.const 16) (i32.const 32))
        (i32.store (i32.const 20) (i32.const 8))
        (i32.store (i32.const 48) (i32.const 65536))
        (i32.store (i32.const 52) (i32.const 2097152))
        (i32.store (i32.const 56) (i32.const 262100))
        (i32.store (i32.const 60) (i32.const 100))
        (call $rec (call $load (i32.const 16) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $load (i32.const 48) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $load (i32.const 56) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $load (i32.const 0) (i32.const 2) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $load (i32.const 262140) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $load (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $init (i32.load (i32.const 8)) (i32.const 12)))
        (i32.store (i32.const 512) (i32.const 1024))
        (i32.store (i32.const 516) (global.get $n))
        (drop (call $write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520)))))"#,
        len = onnx.len()
    );
    let limits = GuestLimits {
        memory_mib: 8,
        timeout_ms: 5000,
        fuel: None,
    };
    // garbage: invalid_encoding; over max_model_bytes: too_large; out of bounds (model, then
    // the builder array): invalid_argument; two builders: invalid_argument; the model: ok.
    let out = call_with(&rt, &wat, limits, &[], true).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2711100");
    let out = call_with(&rt, &wat, limits, &[], false).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6666661");
}
