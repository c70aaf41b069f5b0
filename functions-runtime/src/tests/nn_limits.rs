//! The wasi-nn host's per-call bounds: the host memory budget, input type and shape checks,
//! `max_graphs`, and the call's deadline during `compute`.

use std::sync::Arc;

use inference::{LoadOptions, Model};

use super::*;

/// A guest that loads `digits`, makes three contexts, and sets inputs; prints each code.
/// Tensors: 1 MiB of `[4096, 64]` f32 (the model's `[N, 64]`), then tensors of the wrong type,
/// rank and fixed dim, then a small one past the budget.
const NN_BUDGET: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (memory (export "memory") 18)
  (data (i32.const 16) "digits")
  (global $n (mut i32) (i32.const 0))
  (func $rec (param i32)
    (i32.store8 (i32.add (i32.const 1024) (global.get $n)) (i32.add (local.get 0) (i32.const 48)))
    (global.set $n (i32.add (global.get $n) (i32.const 1))))
  ;; tensor at 300: dims at 200 (rank), type, data at 65536 (len)
  (func $set (param $ctx i32) (param $d0 i32) (param $d1 i32) (param $rank i32) (param $ty i32) (param $len i32)
    (i32.store (i32.const 200) (local.get $d0))
    (i32.store (i32.const 204) (local.get $d1))
    (i32.store (i32.const 300) (i32.const 200))
    (i32.store (i32.const 304) (local.get $rank))
    (i32.store (i32.const 308) (local.get $ty))
    (i32.store (i32.const 312) (i32.const 65536))
    (i32.store (i32.const 316) (local.get $len))
    (call $rec (call $set_input (local.get $ctx) (i32.const 0) (i32.const 300))))
  (func (export "_start")
    (call $rec (call $load_by_name (i32.const 16) (i32.const 6) (i32.const 0)))
    (call $rec (call $init (i32.const 0) (i32.const 4)))
    (call $rec (call $init (i32.const 0) (i32.const 4)))
    (call $rec (call $init (i32.const 0) (i32.const 4)))
    ;; 1 MiB into context 0 and 1 (2 MiB held: the budget), then 2: too_large
    (call $set (i32.const 0) (i32.const 4096) (i32.const 64) (i32.const 2) (i32.const 1) (i32.const 1048576))
    (call $set (i32.const 1) (i32.const 4096) (i32.const 64) (i32.const 2) (i32.const 1) (i32.const 1048576))
    (call $set (i32.const 2) (i32.const 4096) (i32.const 64) (i32.const 2) (i32.const 1) (i32.const 1048576))
    ;; replacing context 0's input holds no more: ok
    (call $set (i32.const 0) (i32.const 4096) (i32.const 64) (i32.const 2) (i32.const 1) (i32.const 1048576))
    ;; f64 [1, 64]; f32 [64]; f32 [1, 63]: not the model's input
    (call $set (i32.const 2) (i32.const 1) (i32.const 64) (i32.const 2) (i32.const 2) (i32.const 512))
    (call $set (i32.const 2) (i32.const 64) (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 256))
    (call $set (i32.const 2) (i32.const 1) (i32.const 63) (i32.const 2) (i32.const 1) (i32.const 252))
    ;; a good [1, 64] is still over the budget; after context 1 takes a small one, it fits
    (call $set (i32.const 2) (i32.const 1) (i32.const 64) (i32.const 2) (i32.const 1) (i32.const 256))
    (call $set (i32.const 1) (i32.const 1) (i32.const 64) (i32.const 2) (i32.const 1) (i32.const 256))
    (call $set (i32.const 2) (i32.const 1) (i32.const 64) (i32.const 2) (i32.const 1) (i32.const 256))
    (i32.store (i32.const 512) (i32.const 1024))
    (i32.store (i32.const 516) (global.get $n))
    (drop (call $write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520)))))"#;

#[test]
fn nn_host_memory_is_bounded_by_the_budget_and_inputs_must_fit_the_model() {
    let rt = runtime();
    let grants = [ModelGrant {
        name: "digits".into(),
        version: None,
    }];
    // Not a deadline test: a generous deadline, so that a loaded machine cannot fail it (200 ms
    // ran out once while six builds shared two cores).
    let limits = GuestLimits {
        timeout_ms: 10_000,
        ..LIMITS
    };
    let out = call(&rt, NN_BUDGET, limits, &grants).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "00000070111700");
}

#[test]
fn nn_load_and_load_by_name_stop_at_max_graphs() {
    let rt = runtime_with_nn(NnLimits {
        max_graphs: 1,
        ..RuntimeConfig::default().nn
    });
    let onnx = model_bytes("digits_mlp.onnx");
    let escaped = wat_bytes(&onnx);
    // Builder at 0: (model at 65536, its length). Load it twice (max_graphs is 1), then a
    // graph by name (also over max_graphs).
    let wat = format!(
        r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
      (memory (export "memory") 4)
      (data (i32.const 65536) "{escaped}")
      (data (i32.const 16) "digits")
      (global $n (mut i32) (i32.const 0))
      (func $rec (param i32)
        (i32.store8 (i32.add (i32.const 1024) (global.get $n)) (i32.add (local.get 0) (i32.const 48)))
        (global.set $n (i32.add (global.get $n) (i32.const 1))))
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const {len}))
        (call $rec (call $load (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $load (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
        (call $rec (call $load_by_name (i32.const 16) (i32.const 6) (i32.const 8)))
        (i32.store (i32.const 512) (i32.const 1024))
        (i32.store (i32.const 516) (global.get $n))
        (drop (call $write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520)))))"#,
        len = onnx.len()
    );
    let grants = [ModelGrant {
        name: "digits".into(),
        version: None,
    }];
    let limits = GuestLimits {
        memory_mib: 8,
        timeout_ms: 5000,
        fuel: None,
    };
    let out = call_with(&rt, &wat, limits, &grants, true).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "077");
}

#[test]
fn a_guest_computing_past_its_deadline_is_stopped_when_compute_returns() {
    // A 10 s epoch tick: only the wasi-nn host's own deadline check can stop this guest soon.
    let rt = WasmRuntime::new(RuntimeConfig {
        max_instances: 4,
        max_memory_mib: 64,
        epoch_tick_ms: 10_000,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let grants = [ModelGrant {
        name: "digits".into(),
        version: None,
    }];
    // Sets a [1, 64] input, then calls compute for as long as it succeeds.
    let wat = r#"(module
      (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "digits")
      (func (export "_start")
        (if (call $load_by_name (i32.const 16) (i32.const 6) (i32.const 0)) (then unreachable))
        (if (call $init (i32.const 0) (i32.const 4)) (then unreachable))
        (i32.store (i32.const 200) (i32.const 1))
        (i32.store (i32.const 204) (i32.const 64))
        (i32.store (i32.const 300) (i32.const 200))
        (i32.store (i32.const 304) (i32.const 2))
        (i32.store (i32.const 308) (i32.const 1))
        (i32.store (i32.const 312) (i32.const 4096))
        (i32.store (i32.const 316) (i32.const 256))
        (if (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)) (then unreachable))
        (loop (br_if 0 (i32.eqz (call $compute (i32.const 0)))))
        unreachable))"#;
    let limits = GuestLimits {
        memory_mib: 2,
        timeout_ms: 50,
        fuel: None,
    };
    let started = std::time::Instant::now();
    let err = call(&rt, wat, limits, &grants).unwrap_err();
    assert!(
        matches!(err, InvokeError::Timeout { timeout_ms: 50, .. }),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it ran until the epoch tick: {:?}",
        started.elapsed()
    );
}

struct Cnn(Arc<Model>);

impl GraphSource for Cnn {
    fn graph(&self, _: &str, _: Option<u64>) -> Option<Arc<Model>> {
        Some(self.0.clone())
    }
}

#[test]
fn the_deadline_ends_a_call_while_its_compute_still_runs() {
    const N: usize = 262_144;
    let cnn =
        Arc::new(Model::load(model_bytes("digits_cnn.onnx"), &LoadOptions::default()).unwrap());
    // How long the model takes on this machine: the call must end well before that.
    let input = inference::Tensor::from_le_bytes(
        inference::ElementType::F32,
        &[N, 1, 8, 8],
        &vec![0u8; N * 256],
    )
    .unwrap();
    let started = std::time::Instant::now();
    cnn.run([("input", input)]).unwrap();
    let direct = started.elapsed();

    let rt = WasmRuntime::new(RuntimeConfig {
        max_instances: 4,
        max_memory_mib: 128,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let wat = format!(
        r#"(module
      (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
      (memory (export "memory") 1026)
      (data (i32.const 16) "cnn")
      (data (i32.const 200) "\00\00\04\00\01\00\00\00\08\00\00\00\08\00\00\00")
      (func (export "_start")
        (if (call $load_by_name (i32.const 16) (i32.const 3) (i32.const 0)) (then unreachable))
        (if (call $init (i32.const 0) (i32.const 4)) (then unreachable))
        (i32.store (i32.const 300) (i32.const 200))
        (i32.store (i32.const 304) (i32.const 4))
        (i32.store (i32.const 308) (i32.const 1))
        (i32.store (i32.const 312) (i32.const 65536))
        (i32.store (i32.const 316) (i32.const {len}))
        (if (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)) (then unreachable))
        (drop (call $compute (i32.const 0)))))"#,
        len = N * 256
    );
    let module = rt.compile(wat.as_bytes()).unwrap();
    let pre = rt.prepare(&module).unwrap();
    // Long enough to set the input, about half the model's run.
    let timeout_ms = (direct.as_millis() as u64 / 2).max(1);
    let started = std::time::Instant::now();
    let err = rt
        .invoke(
            &pre,
            Invocation {
                function: "t".into(),
                args: vec!["t".into()],
                env: Vec::new(),
                stdin: bytes::Bytes::new(),
                limits: GuestLimits {
                    memory_mib: 100,
                    timeout_ms,
                    fuel: None,
                },
                grants: Grants {
                    models: vec![ModelGrant {
                        name: "cnn".into(),
                        version: None,
                    }]
                    .into(),
                    allow_load: false,
                    source: Arc::new(Cnn(cnn)),
                },
            },
        )
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err}");
    assert!(
        elapsed < direct * 4 / 5,
        "the call took {elapsed:?}; the model alone takes {direct:?}"
    );
}
