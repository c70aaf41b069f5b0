//! A seeded, bounded, structure-aware fuzz of the wasi-nn host: one guest instance calls the
//! six `wasi_ephemeral_nn` functions thousands of times with random pointers, lengths,
//! handles, enums and tensor structs, often built on valid prefixes (a granted model name, a
//! real graph and context, a well-formed tensor) so the deeper checks run. Every call must come
//! back with an `nn_errno` code (never a trap or a host panic), and after each round a valid
//! load, set_input, compute, get_output sequence must still work in the same store.

use super::*;

/// Reproduce a failure with `NN_FUZZ_SEED=<seed>`.
const DEFAULT_SEED: u64 = 0x5eed_f00d_0bad_cafe;
const ROUNDS: usize = 12;
const CALLS_PER_ROUND: usize = 250;

/// Guest memory layout (the guest has 4 pages, 256 KiB).
const MEM: i32 = 4 * 65536;
const NAMES: i32 = 16; // "digits" at 16, "digits:1" at 32, "secret" at 48, bad UTF-8 at 64
const TENSOR: i32 = 128; // a 20-byte tensor struct
const DIMS: i32 = 192; // up to 8 u32 dims
const BUILDER: i32 = 256; // a (ptr, len) graph builder
const HANDLES: i32 = 512; // graph and context handles written by the host
const OUT: i32 = 1024; // get_output's buffer, 4 KiB
const DATA: i32 = 8192; // input data, up to 64 KiB
const MODEL: i32 = 131_072; // the ONNX bytes for `load`

/// `call(kind, a, b, c, d, e)` runs one wasi-nn function; kind 6 reads the graph handle the
/// last successful load left at `HANDLES` (so later calls can use it).
fn guest(model: &[u8]) -> String {
    format!(
        r#"(module
  (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 16) "digits")
  (data (i32.const 32) "digits:1")
  (data (i32.const 48) "secret")
  (data (i32.const 64) "\ff\fe\fd")
  (data (i32.const {MODEL}) "{model}")
  (func (export "_start"))
  (func (export "call") (param $k i32) (param $a i32) (param $b i32) (param $c i32) (param $d i32) (param $e i32) (result i32)
    (block $six (block $five (block $four (block $three (block $two (block $one (block $zero
      (br_table $zero $one $two $three $four $five $six (local.get $k)))
      (return (call $load (local.get $a) (local.get $b) (local.get $c) (local.get $d) (local.get $e))))
      (return (call $load_by_name (local.get $a) (local.get $b) (local.get $c))))
      (return (call $init (local.get $a) (local.get $b))))
      (return (call $set_input (local.get $a) (local.get $b) (local.get $c))))
      (return (call $compute (local.get $a))))
      (return (call $get_output (local.get $a) (local.get $b) (local.get $c) (local.get $d) (local.get $e))))
    (i32.load (local.get $a))))"#,
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

    /// A pointer: mostly a meaningful one, else a boundary or random value.
    fn pointer(&mut self, meaningful: i32) -> i32 {
        match self.below(10) {
            0..=5 => meaningful,
            6 => self.pick(&[-1, -4, i32::MIN, i32::MAX, MEM - 4, MEM - 1, MEM, 0]),
            7 => self.below(MEM as u64) as i32,
            _ => self.next() as i32,
        }
    }

    /// A handle or index: mostly 0 or 1, sometimes anything.
    fn handle(&mut self) -> i32 {
        if self.chance(85) {
            self.pick(&[0, 0, 0, 1, 1, 2, 3])
        } else {
            self.pick(&[-1, i32::MAX, i32::MIN, 64, 1 << 20])
        }
    }

    /// A length: mostly `meaningful`, else off by one, zero, huge or random.
    fn length(&mut self, meaningful: u32) -> u32 {
        match self.below(10) {
            0..=5 => meaningful,
            6 => meaningful.wrapping_add(1),
            7 => meaningful.wrapping_sub(1),
            8 => self.pick(&[0, u32::MAX, u32::MAX / 2, 1 << 30, MEM as u32]),
            _ => self.next() as u32,
        }
    }
}

fn write_u32s(mem: &mut [u8], at: i32, values: &[u32]) {
    for (i, v) in values.iter().enumerate() {
        let at = at as usize + 4 * i;
        mem[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

/// Writes a tensor struct at `TENSOR` (dims at `DIMS`, data at `DATA`): the model's `[N, 64]`
/// f32 input with matching data, and half the time one field (or the dims) made wrong.
fn write_tensor(rng: &mut Rng, mem: &mut [u8]) {
    let rows = rng.pick(&[1u32, 1, 2, 4, 0, 256]);
    let mut dims = vec![rows, 64];
    let mut fields = [DIMS as u32, 2, 1, DATA as u32, rows * 256];
    if rng.chance(50) {
        match rng.below(7) {
            0 => fields[0] = rng.pointer(DIMS) as u32,
            1 => fields[1] = rng.length(2),
            2 => fields[2] = rng.below(9) as u32,
            3 => fields[3] = rng.pointer(DATA) as u32,
            4 => fields[4] = rng.length(rows * 256),
            5 => dims[rng.below(2) as usize] = rng.pick(&[0, 3, 63, 65, u32::MAX, 1 << 30]),
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
    mem[DATA as usize..DATA as usize + 65536].fill(fill % 64);
    write_u32s(mem, TENSOR, &fields);
}

/// One random call: its kind and arguments, after preparing memory for it.
fn random_call(rng: &mut Rng, mem: &mut [u8], model_len: u32) -> (i32, [i32; 5]) {
    let kind = rng.below(6) as i32;
    let slot = HANDLES + 4 * rng.below(8) as i32;
    let handle_ptr = rng.pointer(slot);
    let args = match kind {
        0 => {
            let ptr = rng.pointer(MODEL) as u32;
            let len = if rng.chance(70) {
                rng.length(model_len)
            } else {
                rng.below(64) as u32
            };
            write_u32s(mem, BUILDER, &[ptr, len]);
            let count = if rng.chance(80) {
                1
            } else {
                rng.pick(&[0, 2, -1, i32::MAX])
            };
            let encoding = if rng.chance(80) {
                1
            } else {
                rng.pick(&[0, 2, 5, 6, -1])
            };
            let target = if rng.chance(80) {
                0
            } else {
                rng.pick(&[1, 3, 4, -1])
            };
            [rng.pointer(BUILDER), count, encoding, target, handle_ptr]
        }
        1 => {
            let (name, len) = rng.pick(&[(NAMES, 6), (32, 8), (48, 6), (64, 3), (NAMES, 7)]);
            let len = rng.length(len) as i32;
            [rng.pointer(name), len, handle_ptr, 0, 0]
        }
        2 => [rng.handle(), handle_ptr, 0, 0, 0],
        3 => {
            write_tensor(rng, mem);
            [rng.handle(), rng.handle(), rng.pointer(TENSOR), 0, 0]
        }
        4 => [rng.handle(), 0, 0, 0, 0],
        _ => {
            let max = rng.length(4096) as i32;
            [
                rng.handle(),
                rng.handle(),
                rng.pointer(OUT),
                max,
                handle_ptr,
            ]
        }
    };
    (kind, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nn_host_answers_random_calls_with_codes_and_stays_usable() {
    let seed = std::env::var("NN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut rng = Rng(seed);
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
    let module = rt.compile(guest(&onnx).as_bytes()).unwrap();
    let pre = rt.prepare(&module).unwrap();
    // codes[kind][code]: how often each call answered each code.
    let mut codes = [[0usize; 9]; 6];
    for round in 0..ROUNDS {
        let invocation = Invocation {
            function: "fuzz".into(),
            args: vec!["fuzz".into()],
            env: Vec::new(),
            stdin: Vec::new(),
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
                allow_load: round % 2 == 0,
                source: models(),
            },
        };
        let mut store = crate::store::CallStore::new(&rt.engine, rt.config(), invocation)
            .unwrap()
            .store;
        let instance = pre.instantiate_async(&mut store).await.unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let call = instance
            .get_typed_func::<(i32, i32, i32, i32, i32, i32), i32>(&mut store, "call")
            .unwrap();
        for i in 0..CALLS_PER_ROUND {
            let (kind, args) =
                random_call(&mut rng, memory.data_mut(&mut store), onnx.len() as u32);
            let [a, b, c, d, e] = args;
            let code = call
                .call_async(&mut store, (kind, a, b, c, d, e))
                .await
                .unwrap_or_else(|err| {
                    panic!("seed {seed:#x} round {round} call {i}: kind {kind} {args:?} trapped: {err:#}")
                });
            assert!(
                (0..=8).contains(&code),
                "seed {seed:#x} round {round} call {i}: kind {kind} {args:?} gave {code}"
            );
            codes[kind as usize][code as usize] += 1;
        }
        // The store still works: a valid sequence on a fresh graph and context (the name is
        // written again: random pointers may have had the host write over it).
        memory.data_mut(&mut store)[NAMES as usize..NAMES as usize + 6].copy_from_slice(b"digits");
        let mut run = async |kind: i32, args: [i32; 5], what: &str| {
            let [a, b, c, d, e] = args;
            let result = call.call_async(&mut store, (kind, a, b, c, d, e)).await;
            result.unwrap_or_else(|err| panic!("seed {seed:#x} round {round}: {what}: {err:#}"))
        };
        assert_eq!(run(1, [NAMES, 6, HANDLES, 0, 0], "load_by_name").await, 0);
        let graph = run(6, [HANDLES, 0, 0, 0, 0], "graph").await;
        assert_eq!(run(2, [graph, HANDLES + 4, 0, 0, 0], "init").await, 0);
        let ctx = run(6, [HANDLES + 4, 0, 0, 0, 0], "context").await;
        let mem = memory.data_mut(&mut store);
        write_u32s(mem, DIMS, &[1, 64]);
        write_u32s(mem, TENSOR, &[DIMS as u32, 2, 1, DATA as u32, 256]);
        mem[DATA as usize..DATA as usize + 256].fill(0);
        let mut run = async |kind: i32, args: [i32; 5], what: &str| {
            let [a, b, c, d, e] = args;
            let result = call.call_async(&mut store, (kind, a, b, c, d, e)).await;
            result.unwrap_or_else(|err| panic!("seed {seed:#x} round {round}: {what}: {err:#}"))
        };
        assert_eq!(run(3, [ctx, 0, TENSOR, 0, 0], "set_input").await, 0);
        assert_eq!(run(4, [ctx, 0, 0, 0, 0], "compute").await, 0);
        assert_eq!(
            run(5, [ctx, 0, OUT, 4096, HANDLES + 8], "get_output").await,
            0
        );
        assert_eq!(
            run(6, [HANDLES + 8, 0, 0, 0, 0], "written").await,
            40,
            "10 logits"
        );
    }
    eprintln!("nn fuzz, seed {seed:#x}: codes per call kind {codes:?}");
    let total: usize = codes.iter().flatten().sum();
    assert_eq!(total, ROUNDS * CALLS_PER_ROUND);
    // The valid prefixes reach every function's success path, and its refusals.
    for (kind, counts) in codes.iter().enumerate() {
        assert!(counts[0] > 0, "kind {kind} never succeeded: {counts:?}");
        assert!(
            counts[1..].iter().sum::<usize>() > 0,
            "kind {kind} never refused: {counts:?}"
        );
    }
}
