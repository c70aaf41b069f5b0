//! The wasi-nn host on a bare store: no WASI, no `WasmRuntime`, only a `Store<Host>` whose data
//! holds an [`NnCtx`] and a linker with [`nn::add_to_linker`]. A small guest exports its memory
//! and one trampoline per import; the test calls them thousands of times with random pointers
//! (negative, out of bounds, straddling the end of memory), lengths, handles, encodings,
//! targets, tensor types and tensor structs, seeded (`NN_FUZZ_SEED=<seed>` reproduces a run;
//! a failure names its seed and call). Every call must return an `nn_errno` without a panic,
//! and after each round a valid load, init, set_input, compute, get_output must still work in
//! the same store.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use functions_runtime::nn::{self, DeadlinePassed, GraphSource, ModelGrant, NnCtx, NnLimits};
use inference::{LoadOptions, Model};
use wasmtime::{Engine, Instance, Linker, Memory, Module, Store, TypedFunc};

/// Reproduce a failure with `NN_FUZZ_SEED=<seed>` (decimal or `0x` hex).
const DEFAULT_SEED: u64 = 0x0bad_5eed_1234_abcd;
const ROUNDS: usize = 24;
const CALLS_PER_ROUND: usize = 500;

/// Guest memory layout (2 pages, 128 KiB).
const MEM: i32 = 2 * 65536;
/// "digits" at 16, "digits:1" at 32, "secret" at 48, bad UTF-8 at 64, "digits:x" at 80.
const NAMES: i32 = 16;
const TENSOR: i32 = 128;
const DIMS: i32 = 192;
const BUILDER: i32 = 256;
const HANDLES: i32 = 512;
const OUT: i32 = 1024;
const OUT_LEN: u32 = 4096;
const DATA: i32 = 8192;
const DATA_LEN: usize = 32 << 10;
const MODEL: i32 = 65536;

/// The store's data: nothing but the wasi-nn state.
struct Host {
    nn: NnCtx,
}

/// The repository's sample models by name: `digits` is the MLP, at versions 1 and 2.
struct Models(Arc<Model>);

impl GraphSource for Models {
    fn graph(&self, name: &str, version: Option<u64>) -> Option<Arc<Model>> {
        (name == "digits" && matches!(version, None | Some(1) | Some(2))).then(|| self.0.clone())
    }
}

fn model_bytes(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// The guest: its memory, the sample names and model bytes, and a trampoline per import.
fn guest(model: &[u8]) -> String {
    format!(
        r#"(module
  (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "digits")
  (data (i32.const 32) "digits:1")
  (data (i32.const 48) "secret")
  (data (i32.const 64) "\ff\fe\fd")
  (data (i32.const 80) "digits:x")
  (data (i32.const {MODEL}) "{model}")
  (func (export "load") (param i32 i32 i32 i32 i32) (result i32)
    (call $load (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "load_by_name") (param i32 i32 i32) (result i32)
    (call $load_by_name (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32) (result i32)
    (call $init (local.get 0) (local.get 1)))
  (func (export "set_input") (param i32 i32 i32) (result i32)
    (call $set_input (local.get 0) (local.get 1) (local.get 2)))
  (func (export "compute") (param i32) (result i32)
    (call $compute (local.get 0)))
  (func (export "get_output") (param i32 i32 i32 i32 i32) (result i32)
    (call $get_output (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4))))"#,
        model = wat_bytes(model)
    )
}

/// splitmix64: small, seeded, good enough to drive a fuzzer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A pointer to a region of `len` bytes: mostly `meaningful`, else negative, past the
    /// end, straddling the end, anywhere in memory, or any `i32`.
    fn pointer(&mut self, meaningful: i32, len: u32) -> i32 {
        match self.below(12) {
            0..=5 => meaningful,
            6 => self.pick(&[-1, -4, -20, i32::MIN, i32::MAX, 0, MEM, MEM + 4]),
            7 => MEM - 1 - self.below(u64::from(len.max(1))) as i32,
            8 => self.below(MEM as u64) as i32,
            9 => meaningful.wrapping_add(self.pick(&[1, -1, 3, 4096])),
            _ => self.next() as i32,
        }
    }

    /// A handle or index: mostly a small one, sometimes anything.
    fn handle(&mut self) -> i32 {
        if self.chance(85) {
            self.below(5) as i32
        } else {
            let any = self.next() as i32;
            self.pick(&[-1, i32::MIN, i32::MAX, 511, 512, 1 << 20, any])
        }
    }

    /// An input or output index: mostly 0 (the model has one of each), else any handle.
    fn index(&mut self) -> i32 {
        if self.chance(70) {
            0
        } else {
            self.handle()
        }
    }

    /// A length: mostly `meaningful`, else off by one, zero, huge, or random.
    fn length(&mut self, meaningful: u32) -> u32 {
        match self.below(10) {
            0..=5 => meaningful,
            6 => meaningful.wrapping_add(1),
            7 => meaningful.wrapping_sub(1),
            8 => self.pick(&[0, u32::MAX, u32::MAX / 2, 1 << 31, MEM as u32, 1 << 20]),
            _ => self.next() as u32,
        }
    }

    /// An enum value: mostly `valid`, else another valid one or one out of range.
    fn enumeration(&mut self, valid: i32, max: i32) -> i32 {
        match self.below(10) {
            0..=6 => valid,
            7 => self.below(max as u64 + 1) as i32,
            8 => self.pick(&[-1, max + 1, max + 2, i32::MIN, i32::MAX, 255, 256]),
            _ => self.next() as i32,
        }
    }
}

fn write_u32s(mem: &mut [u8], at: i32, values: &[u32]) {
    for (i, v) in values.iter().enumerate() {
        let at = at as usize + 4 * i;
        mem[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

fn read_u32(mem: &[u8], at: i32) -> i32 {
    let at = at as usize;
    i32::from_le_bytes([mem[at], mem[at + 1], mem[at + 2], mem[at + 3]])
}

/// Writes a tensor struct at `TENSOR` (dims at `DIMS`, data at `DATA`): mostly the model's
/// `[N, 64]` f32 input with matching data and one or two fields made wrong, sometimes twenty
/// random bytes.
fn write_tensor(rng: &mut Rng, mem: &mut [u8]) {
    if rng.chance(15) {
        let garbage: Vec<u32> = (0..5).map(|_| rng.next() as u32).collect();
        write_u32s(mem, TENSOR, &garbage);
        return;
    }
    let rows = rng.pick(&[1u32, 1, 1, 2, 4, 0, 128, 129]);
    let mut dims = vec![rows, 64];
    let mut fields = [DIMS as u32, 2, 1, DATA as u32, rows * 256];
    for _ in 0..rng.below(3) {
        match rng.below(7) {
            0 => fields[0] = rng.pointer(DIMS, 8) as u32,
            1 => fields[1] = rng.length(2),
            2 => fields[2] = rng.enumeration(1, 5) as u32,
            3 => fields[3] = rng.pointer(DATA, fields[4]) as u32,
            4 => fields[4] = rng.length(rows * 256),
            5 if !dims.is_empty() => {
                let i = rng.below(dims.len() as u64) as usize;
                dims[i] = rng.pick(&[0, 3, 63, 65, u32::MAX, 1 << 30, 1 << 16]);
            }
            5 => {}
            _ => {
                let rank = rng.pick(&[0usize, 1, 3, 8, 9]);
                dims = (0..rank)
                    .map(|_| rng.pick(&[1, 2, 64, 0, u32::MAX]))
                    .collect();
                fields[1] = rank as u32;
            }
        }
    }
    write_u32s(mem, DIMS, &dims);
    let fill = rng.next() as u8;
    mem[DATA as usize..DATA as usize + DATA_LEN].fill(fill % 64);
    write_u32s(mem, TENSOR, &fields);
}

/// The guest's exports.
struct Guest {
    memory: Memory,
    load: TypedFunc<(i32, i32, i32, i32, i32), i32>,
    load_by_name: TypedFunc<(i32, i32, i32), i32>,
    init: TypedFunc<(i32, i32), i32>,
    set_input: TypedFunc<(i32, i32, i32), i32>,
    compute: TypedFunc<i32, i32>,
    get_output: TypedFunc<(i32, i32, i32, i32, i32), i32>,
}

impl Guest {
    fn new(store: &mut Store<Host>, instance: &Instance) -> Self {
        Self {
            memory: instance.get_memory(&mut *store, "memory").unwrap(),
            load: instance.get_typed_func(&mut *store, "load").unwrap(),
            load_by_name: instance
                .get_typed_func(&mut *store, "load_by_name")
                .unwrap(),
            init: instance.get_typed_func(&mut *store, "init").unwrap(),
            set_input: instance.get_typed_func(&mut *store, "set_input").unwrap(),
            compute: instance.get_typed_func(&mut *store, "compute").unwrap(),
            get_output: instance.get_typed_func(&mut *store, "get_output").unwrap(),
        }
    }

    /// Calls import `kind` (0 to 5, in the ABI's order) with `args`.
    async fn call(
        &self,
        store: &mut Store<Host>,
        kind: usize,
        args: [i32; 5],
    ) -> wasmtime::Result<i32> {
        let [a, b, c, d, e] = args;
        match kind {
            0 => self.load.call_async(store, (a, b, c, d, e)).await,
            1 => self.load_by_name.call_async(store, (a, b, c)).await,
            2 => self.init.call_async(store, (a, b)).await,
            3 => self.set_input.call_async(store, (a, b, c)).await,
            4 => self.compute.call_async(store, a).await,
            _ => self.get_output.call_async(store, (a, b, c, d, e)).await,
        }
    }
}

const CALLS: [&str; 6] = [
    "load",
    "load_by_name",
    "init_execution_context",
    "set_input",
    "compute",
    "get_output",
];

/// One random call: its kind and arguments, after preparing memory for it.
fn random_call(rng: &mut Rng, mem: &mut [u8], model_len: u32) -> (usize, [i32; 5]) {
    let kind = rng.below(6) as usize;
    let slot = HANDLES + 4 * rng.below(8) as i32;
    let handle_ptr = rng.pointer(slot, 4);
    let args = match kind {
        0 => {
            let len = if rng.chance(70) {
                rng.length(model_len)
            } else {
                rng.below(64) as u32
            };
            let ptr = rng.pointer(MODEL, len) as u32;
            write_u32s(mem, BUILDER, &[ptr, len, MODEL as u32, model_len]);
            let count = if rng.chance(80) {
                1
            } else {
                rng.pick(&[0, 2, -1, i32::MAX, i32::MIN])
            };
            [
                rng.pointer(BUILDER, 8 * count.clamp(1, 2) as u32),
                count,
                rng.enumeration(1, 5),
                rng.enumeration(0, 3),
                handle_ptr,
            ]
        }
        1 => {
            let (name, len) =
                rng.pick(&[(NAMES, 6), (32, 8), (48, 6), (64, 3), (80, 8), (NAMES, 7)]);
            let len = rng.length(len);
            [rng.pointer(name, len), len as i32, handle_ptr, 0, 0]
        }
        2 => [rng.handle(), handle_ptr, 0, 0, 0],
        3 => {
            write_tensor(rng, mem);
            [rng.handle(), rng.index(), rng.pointer(TENSOR, 20), 0, 0]
        }
        4 => [rng.handle(), 0, 0, 0, 0],
        _ => {
            let max = rng.length(OUT_LEN);
            [
                rng.handle(),
                rng.index(),
                rng.pointer(OUT, max),
                max as i32,
                handle_ptr,
            ]
        }
    };
    (kind, args)
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

fn ctx(source: &Arc<Models>, allow_load: bool, deadline: Instant) -> NnCtx {
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

/// The fuzz proper; `at` always says which call is running, for the report of a panic.
async fn fuzz(seed: u64, at: &RefCell<String>) {
    let mut rng = Rng(seed);
    let onnx = model_bytes("digits_mlp.onnx");
    let model = Arc::new(Model::load(onnx.clone(), &LoadOptions::default()).unwrap());
    let source = Arc::new(Models(model));
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    nn::add_to_linker(&mut linker, |h: &mut Host| &mut h.nn).unwrap();
    let module = Module::new(&engine, guest(&onnx)).unwrap();
    let far = Instant::now() + Duration::from_secs(3600);
    // codes[kind][code]: how often each call answered each code.
    let mut codes = [[0usize; 9]; 6];
    for round in 0..ROUNDS {
        let allow_load = round % 2 == 0;
        let (mut store, guest) =
            instantiate(&engine, &linker, &module, ctx(&source, allow_load, far)).await;
        for i in 0..CALLS_PER_ROUND {
            *at.borrow_mut() = format!("round {round} call {i}: making it");
            let mem = guest.memory.data_mut(&mut store);
            let (kind, args) = random_call(&mut rng, mem, onnx.len() as u32);
            *at.borrow_mut() = format!("round {round} call {i}: {}{args:?}", CALLS[kind]);
            let code = guest
                .call(&mut store, kind, args)
                .await
                .unwrap_or_else(|e| panic!("seed {seed:#x} {}: trapped: {e:#}", at.borrow()));
            assert!(
                (0..=8).contains(&code),
                "seed {seed:#x} {}: returned {code}, not an nn_errno",
                at.borrow()
            );
            codes[kind][code as usize] += 1;
        }
        *at.borrow_mut() = format!("round {round}: the valid sequence");
        valid_sequence(&mut store, &guest, &onnx, allow_load)
            .await
            .unwrap_or_else(|e| panic!("seed {seed:#x} {}: {e}", at.borrow()));
    }
    eprintln!("nn host fuzz (bare store), seed {seed:#x}: codes per call {codes:?}");
    // The valid prefixes reach every call's success path, and its refusals.
    for (kind, counts) in codes.iter().enumerate() {
        assert!(counts[0] > 0, "{} never succeeded: {counts:?}", CALLS[kind]);
        assert!(
            counts[1..].iter().sum::<usize>() > 0,
            "{} never refused: {counts:?}",
            CALLS[kind]
        );
    }
    *at.borrow_mut() = "a store past its deadline".into();
    late_store(
        &engine,
        &linker,
        &module,
        &source,
        &mut rng,
        onnx.len() as u32,
    )
    .await;
}

/// Calls import `kind` and expects success.
async fn expect_ok(
    store: &mut Store<Host>,
    guest: &Guest,
    kind: usize,
    args: [i32; 5],
) -> Result<(), String> {
    let code = guest
        .call(store, kind, args)
        .await
        .map_err(|e| format!("{} trapped: {e:#}", CALLS[kind]))?;
    if code != 0 {
        return Err(format!("{}{args:?} returned {code}", CALLS[kind]));
    }
    Ok(())
}

/// load (the model's bytes when `load` is allowed, else by name), init, set_input of one
/// zero row, compute, get_output of the 10 logits.
async fn valid_sequence(
    store: &mut Store<Host>,
    guest: &Guest,
    onnx: &[u8],
    allow_load: bool,
) -> Result<(), String> {
    // Random writes may have gone anywhere: lay out what the sequence reads again.
    let mem = guest.memory.data_mut(&mut *store);
    mem[NAMES as usize..NAMES as usize + 6].copy_from_slice(b"digits");
    mem[MODEL as usize..MODEL as usize + onnx.len()].copy_from_slice(onnx);
    write_u32s(mem, BUILDER, &[MODEL as u32, onnx.len() as u32]);
    write_u32s(mem, DIMS, &[1, 64]);
    write_u32s(mem, TENSOR, &[DIMS as u32, 2, 1, DATA as u32, 256]);
    mem[DATA as usize..DATA as usize + 256].fill(0);
    if allow_load {
        expect_ok(store, guest, 0, [BUILDER, 1, 1, 0, HANDLES]).await?;
    } else {
        expect_ok(store, guest, 1, [NAMES, 6, HANDLES, 0, 0]).await?;
    }
    let graph = read_u32(guest.memory.data(&*store), HANDLES);
    expect_ok(store, guest, 2, [graph, HANDLES + 4, 0, 0, 0]).await?;
    let ctx = read_u32(guest.memory.data(&*store), HANDLES + 4);
    expect_ok(store, guest, 3, [ctx, 0, TENSOR, 0, 0]).await?;
    expect_ok(store, guest, 4, [ctx, 0, 0, 0, 0]).await?;
    expect_ok(store, guest, 5, [ctx, 0, OUT, OUT_LEN as i32, HANDLES + 8]).await?;
    let written = read_u32(guest.memory.data(&*store), HANDLES + 8);
    if written != 40 {
        return Err(format!(
            "get_output wrote {written} bytes, not 10 f32 logits"
        ));
    }
    Ok(())
}

/// Past the deadline: `load` and `compute` that get as far as the model trap with
/// [`DeadlinePassed`] (a clean trap that ends the call), every other call answers a code, and
/// the store keeps answering after those traps.
async fn late_store(
    engine: &Engine,
    linker: &Linker<Host>,
    module: &Module,
    source: &Arc<Models>,
    rng: &mut Rng,
    model_len: u32,
) {
    let (mut store, guest) =
        instantiate(engine, linker, module, ctx(source, true, Instant::now())).await;
    let mut traps = 0;
    for _ in 0..CALLS_PER_ROUND {
        let mem = guest.memory.data_mut(&mut store);
        let (kind, args) = random_call(rng, mem, model_len);
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

fn seed() -> u64 {
    match std::env::var("NN_FUZZ_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("NN_FUZZ_SEED={s}: {e}"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

#[test]
fn nn_host_on_a_bare_store_answers_random_calls_with_codes_and_stays_usable() {
    let seed = seed();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let at = RefCell::new(String::from("setting up"));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(fuzz(seed, &at))));
    if let Err(panic) = outcome {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        panic!(
            "nn host fuzz failed with NN_FUZZ_SEED={seed:#x} at {}: {what}",
            at.borrow()
        );
    }
}

#[test]
fn every_call_from_a_guest_without_memory_is_missing_memory() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::default();
        let mut linker = Linker::new(&engine);
        nn::add_to_linker(&mut linker, |h: &mut Host| &mut h.nn).unwrap();
        // The guest memory is not exported: the host cannot see it.
        let wat = guest(b"").replace(r#"(memory (export "memory") 2)"#, "(memory 2)");
        let module = Module::new(&engine, wat).unwrap();
        let model =
            Arc::new(Model::load(model_bytes("digits_mlp.onnx"), &LoadOptions::default()).unwrap());
        let source = Arc::new(Models(model));
        let far = Instant::now() + Duration::from_secs(3600);
        let mut store = Store::new(
            &engine,
            Host {
                nn: ctx(&source, true, far),
            },
        );
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        for (kind, name) in CALLS.iter().enumerate() {
            let export = [
                "load",
                "load_by_name",
                "init",
                "set_input",
                "compute",
                "get_output",
            ][kind];
            let func = instance.get_func(&mut store, export).unwrap();
            let params = vec![wasmtime::Val::I32(0); func.ty(&store).params().len()];
            let mut result = [wasmtime::Val::I32(-1)];
            func.call_async(&mut store, &params, &mut result)
                .await
                .unwrap();
            assert_eq!(result[0].unwrap_i32(), 3, "{name}: missing_memory");
        }
    });
}
