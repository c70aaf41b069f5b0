//! The wasi-nn host on a bare store: no WASI, no `WasmRuntime`, only a `Store<Host>` whose data
//! holds an [`NnCtx`] and a linker with [`nn::add_to_linker`]. The guest of
//! [`fuzz_input`](super::fuzz_input) exports its memory and a trampoline to every import; the
//! test calls them thousands of times with random pointers (negative, out of bounds,
//! straddling the end of memory), lengths, handles, encodings, targets, tensor types and
//! tensor structs, seeded (`NN_FUZZ_SEED=<seed>` reproduces a run; a failure names its seed
//! and call). Every call must return an `nn_errno` without a panic, and after each round a
//! valid load, init, set_input, compute, get_output must still work in the same store.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Linker, Module, Store};

use super::fuzz_input::{self, Guest, Layout, Run, CALLS, HANDLES, NAMES};
use super::{model_bytes, models};
use crate::nn::{self, DeadlinePassed, GraphSource, ModelGrant, NnCtx, NnLimits};

/// Reproduce a failure with `NN_FUZZ_SEED=<seed>` (decimal or `0x` hex).
const DEFAULT_SEED: u64 = 0x0bad_5eed_1234_abcd;
const ROUNDS: usize = 24;
const CALLS_PER_ROUND: usize = 500;

/// 2 pages (128 KiB): 32 KiB of input data, the model at 64 KiB.
const LAYOUT: Layout = Layout {
    pages: 2,
    data_len: 32 << 10,
    model: 65536,
};

/// The store's data: nothing but the wasi-nn state.
struct Host {
    nn: NnCtx,
}

/// A fresh store and instance with this wasi-nn state.
async fn instantiate(
    engine: &Engine,
    linker: &Linker<Host>,
    module: &Module,
    nn: NnCtx,
) -> (Store<Host>, Guest) {
    let mut store = Store::new(engine, Host { nn });
    let instance = linker.instantiate_async(&mut store, module).await.unwrap();
    let guest = Guest::new(&mut store, &instance);
    (store, guest)
}

fn limits() -> NnLimits {
    NnLimits {
        max_tensor_bytes: 16 << 10,
        max_model_bytes: 1 << 20,
        max_graphs: 1024,
        max_contexts: 1024,
    }
}

fn ctx(source: &Arc<dyn GraphSource>, allow_load: bool, deadline: Instant) -> NnCtx {
    let grants: Arc<[ModelGrant]> = vec![ModelGrant {
        name: "digits".into(),
        version: None,
    }]
    .into();
    NnCtx::new(
        grants,
        allow_load,
        source.clone(),
        limits(),
        64 << 20,
        deadline,
    )
}

/// A linker with nothing but the wasi-nn host.
fn linker(engine: &Engine) -> Linker<Host> {
    let mut linker = Linker::new(engine);
    nn::add_to_linker(&mut linker, |h: &mut Host| &mut h.nn).unwrap();
    linker
}

/// The fuzz proper; `at` always says which call is running.
async fn fuzz(seed: u64, at: &RefCell<String>) {
    let onnx = model_bytes("digits_mlp.onnx");
    let source = models();
    let engine = Engine::default();
    let linker = linker(&engine);
    let module = Module::new(&engine, fuzz_input::guest(LAYOUT, &onnx)).unwrap();
    let far = Instant::now() + Duration::from_secs(3600);
    let mut run = Run::new(seed, LAYOUT, &onnx, at);
    for round in 0..ROUNDS {
        let allow_load = round % 2 == 0;
        let (mut store, guest) =
            instantiate(&engine, &linker, &module, ctx(&source, allow_load, far)).await;
        run.round(&mut store, &guest, round, CALLS_PER_ROUND, allow_load)
            .await;
    }
    eprintln!(
        "nn host fuzz (bare store), seed {seed:#x}: codes per call {:?}",
        run.codes
    );
    fuzz_input::assert_all_answered(&run.codes);
    run.at("a store past its deadline");
    late_store(&engine, &linker, &module, &source, &mut run).await;
}

/// Past the deadline: `load` and `compute` that get as far as the model trap with
/// [`DeadlinePassed`] (a clean trap that ends the call), every other call answers a code, and
/// the store keeps answering after those traps.
async fn late_store(
    engine: &Engine,
    linker: &Linker<Host>,
    module: &Module,
    source: &Arc<dyn GraphSource>,
    run: &mut Run<'_>,
) {
    let (mut store, guest) =
        instantiate(engine, linker, module, ctx(source, true, Instant::now())).await;
    let mut traps = 0;
    for _ in 0..CALLS_PER_ROUND {
        let mem = guest.memory.data_mut(&mut store);
        let (kind, args) = run.random_call(mem);
        match guest.call(&mut store, kind, args).await {
            Ok(code) => assert!((0..=8).contains(&code), "{}{args:?}: {code}", CALLS[kind]),
            Err(e) => {
                assert!(
                    matches!(kind, 0 | 4) && e.downcast_ref::<DeadlinePassed>().is_some(),
                    "{}{args:?} trapped with {e:#}",
                    CALLS[kind]
                );
                traps += 1;
            }
        }
    }
    assert!(traps > 0, "no load or compute noticed the deadline");
    let code = guest
        .call(&mut store, 1, [NAMES, 6, HANDLES, 0, 0])
        .await
        .unwrap();
    assert_eq!(code, 0, "load_by_name after the traps");
}

#[test]
fn nn_host_on_a_bare_store_answers_random_calls_with_codes_and_stays_usable() {
    let seed = fuzz_input::seed(DEFAULT_SEED);
    fuzz_input::run_reporting("nn host fuzz", seed, async |at| fuzz(seed, at).await);
}

#[test]
fn every_call_from_a_guest_without_memory_is_missing_memory() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::default();
        let linker = linker(&engine);
        // The guest memory is not exported: the host cannot see it.
        let wat = fuzz_input::guest(LAYOUT, b"");
        let hidden = wat.replace(r#"(memory (export "memory") 2)"#, "(memory 2)");
        assert_ne!(hidden, wat, "the guest's memory is still exported");
        let module = Module::new(&engine, hidden).unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        let mut store = Store::new(
            &engine,
            Host {
                nn: ctx(&models(), true, far),
            },
        );
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        let call = instance
            .get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut store, "call")
            .unwrap();
        for (kind, name) in CALLS.iter().enumerate() {
            let code = call
                .call_async(&mut store, (kind as i32, 0, 0, 0, 0, 0))
                .await
                .unwrap();
            assert_eq!(code, 3, "{name}: missing_memory");
        }
    });
}
