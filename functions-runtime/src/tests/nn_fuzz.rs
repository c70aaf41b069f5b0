//! A seeded, bounded, structure-aware fuzz of the wasi-nn host through the full `WasmRuntime`:
//! one guest instance per round calls the six `wasi_ephemeral_nn` functions with the inputs of
//! [`fuzz_input`](super::fuzz_input). Every call must come back with an `nn_errno` code (never
//! a trap or a host panic), and after each round a valid load, set_input, compute, get_output
//! sequence must still work in the same store. `NN_FUZZ_SEED=<seed>` reproduces a run; a
//! failure names its seed and call.

use std::cell::RefCell;

use super::fuzz_input::{self, Guest, Layout, Run};
use super::*;

/// Reproduce a failure with `NN_FUZZ_SEED=<seed>`.
const DEFAULT_SEED: u64 = 0x5eed_f00d_0bad_cafe;
const ROUNDS: usize = 12;
const CALLS_PER_ROUND: usize = 250;

/// 4 pages (256 KiB): 64 KiB of input data, the model at 128 KiB.
const LAYOUT: Layout = Layout {
    pages: 4,
    data_len: 64 << 10,
    model: 131_072,
};

#[test]
fn nn_host_answers_random_calls_with_codes_and_stays_usable() {
    let seed = fuzz_input::seed(DEFAULT_SEED);
    fuzz_input::run_reporting("nn fuzz", seed, async |at| fuzz(seed, at).await);
}

/// The fuzz proper; `at` always says which call is running.
async fn fuzz(seed: u64, at: &RefCell<String>) {
    let rt = WasmRuntime::new(RuntimeConfig {
        max_instances: 2,
        max_memory_mib: 64,
        nn: NnLimits {
            max_tensor_bytes: 1 << 20,
            max_model_bytes: 1 << 20,
            max_graphs: 256,
            max_contexts: 256,
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let onnx = model_bytes("digits_mlp.onnx");
    let module = rt
        .compile(fuzz_input::guest(LAYOUT, &onnx).as_bytes())
        .unwrap();
    let pre = rt.prepare(&module).unwrap();
    let mut run = Run::new(seed, LAYOUT, &onnx, at);
    for round in 0..ROUNDS {
        let allow_load = round % 2 == 0;
        let invocation = Invocation {
            function: "fuzz".into(),
            args: vec!["fuzz".into()],
            env: Vec::new(),
            stdin: bytes::Bytes::new(),
            limits: GuestLimits {
                memory_mib: 64,
                timeout_ms: 600_000,
                fuel: None,
            },
            grants: Grants {
                models: vec![ModelGrant {
                    name: "digits".into(),
                    version: None,
                }]
                .into(),
                allow_load,
                source: models(),
            },
        };
        let mut store = crate::store::CallStore::new(&rt.engine, rt.config(), invocation)
            .unwrap()
            .store;
        let instance = pre.instantiate_async(&mut store).await.unwrap();
        let guest = Guest::new(&mut store, &instance);
        run.round(&mut store, &guest, round, CALLS_PER_ROUND, allow_load)
            .await;
    }
    let codes = run.codes;
    eprintln!("nn fuzz, seed {seed:#x}: codes per call kind {codes:?}");
    let total: usize = codes.iter().flatten().sum();
    assert_eq!(total, ROUNDS * CALLS_PER_ROUND);
    fuzz_input::assert_all_answered(&codes);
}
