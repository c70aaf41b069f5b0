//! What the two wasi-nn fuzzers share: the guest (its memory layout, sample names and model
//! bytes, and one `call` export that runs any of the six imports), a seeded generator of
//! structure-aware calls (random pointers, lengths, handles, enums and tensor structs, often
//! built on valid prefixes so the deeper checks run), the loop that makes a round of such calls,
//! the valid sequence that must still work after it, and the report that names the seed and the
//! call of a failure. `nn_fuzz` drives it through the full `WasmRuntime`, `nn_host_fuzz` on a
//! bare store.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;

use wasmtime::{Instance, Memory, Store, TypedFunc};

use super::wat_bytes;

/// Where the sample names start: "digits" at 16, "digits:1" at 32, "secret" at 48, bad UTF-8
/// at 64, "digits:x" at 80.
pub(super) const NAMES: i32 = 16;
/// A 20-byte tensor struct.
pub(super) const TENSOR: i32 = 128;
/// Up to 8 u32 dims.
pub(super) const DIMS: i32 = 192;
/// A (ptr, len) graph builder, and a second one after it.
pub(super) const BUILDER: i32 = 256;
/// Graph and context handles (and output lengths) written by the host.
pub(super) const HANDLES: i32 = 512;
/// get_output's buffer.
pub(super) const OUT: i32 = 1024;
/// The size of get_output's buffer.
pub(super) const OUT_LEN: u32 = 4096;
/// Input data.
pub(super) const DATA: i32 = 8192;

/// The call kinds, in the ABI's order: `call(kind, ..)` runs import `CALLS[kind]`.
pub(super) const CALLS: [&str; 6] = [
    "load",
    "load_by_name",
    "init_execution_context",
    "set_input",
    "compute",
    "get_output",
];
/// The kind after the imports: `call(READ, ptr, ..)` returns the i32 at `ptr`.
pub(super) const READ: usize = 6;

/// What differs between the two fuzzers' guests: the memory size, how much input data the
/// tensors may point at (from [`DATA`]), and where the ONNX bytes for `load` lie.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    /// Guest memory in 64 KiB pages.
    pub(super) pages: u32,
    /// Bytes of input data at [`DATA`].
    pub(super) data_len: usize,
    /// Where the model's bytes start.
    pub(super) model: i32,
}

impl Layout {
    /// The guest memory's size in bytes.
    pub(super) fn mem(&self) -> i32 {
        self.pages as i32 * 65536
    }
}

/// The guest: the layout's memory with the sample names and `model` in it, and
/// `call(kind, a, b, c, d, e)` that runs import `CALLS[kind]` (or [`READ`]s the i32 at `a`).
pub(super) fn guest(layout: Layout, model: &[u8]) -> String {
    format!(
        r#"(module
  (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  (data (i32.const 16) "digits")
  (data (i32.const 32) "digits:1")
  (data (i32.const 48) "secret")
  (data (i32.const 64) "\ff\fe\fd")
  (data (i32.const 80) "digits:x")
  (data (i32.const {at}) "{model}")
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
        pages = layout.pages,
        at = layout.model,
        model = wat_bytes(model)
    )
}

/// The guest's exports.
pub(super) struct Guest {
    /// Its memory.
    pub(super) memory: Memory,
    call: TypedFunc<(i32, i32, i32, i32, i32, i32), i32>,
}

impl Guest {
    /// The exports of an instance of [`guest`].
    pub(super) fn new<T>(store: &mut Store<T>, instance: &Instance) -> Self {
        Self {
            memory: instance.get_memory(&mut *store, "memory").unwrap(),
            call: instance.get_typed_func(&mut *store, "call").unwrap(),
        }
    }

    /// Calls import `kind` (0 to 5, in the ABI's order; [`READ`] reads memory) with `args`.
    pub(super) async fn call<T: Send>(
        &self,
        store: &mut Store<T>,
        kind: usize,
        args: [i32; 5],
    ) -> wasmtime::Result<i32> {
        let [a, b, c, d, e] = args;
        self.call
            .call_async(store, (kind as i32, a, b, c, d, e))
            .await
    }
}

/// `NN_FUZZ_SEED` (decimal or `0x` hex), else `default`.
pub(super) fn seed(default: u64) -> u64 {
    match std::env::var("NN_FUZZ_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("NN_FUZZ_SEED={s}: {e}"))
        }
        Err(_) => default,
    }
}

/// splitmix64 (small, seeded, good enough to drive a fuzzer), aware of the guest's layout.
pub(super) struct Rng {
    state: u64,
    layout: Layout,
}

impl Rng {
    /// A generator for guests with `layout`.
    pub(super) fn new(seed: u64, layout: Layout) -> Self {
        Self {
            state: seed,
            layout,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
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
        let mem = self.layout.mem();
        match self.below(12) {
            0..=5 => meaningful,
            6 => self.pick(&[-1, -4, -20, i32::MIN, i32::MAX, 0, mem, mem + 4]),
            7 => mem - 1 - self.below(u64::from(len.max(1))) as i32,
            8 => self.below(mem as u64) as i32,
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
        let mem = self.layout.mem() as u32;
        match self.below(10) {
            0..=5 => meaningful,
            6 => meaningful.wrapping_add(1),
            7 => meaningful.wrapping_sub(1),
            8 => self.pick(&[0, u32::MAX, u32::MAX / 2, 1 << 31, mem, 1 << 20]),
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

/// Writes `values` little-endian from `at`.
pub(super) fn write_u32s(mem: &mut [u8], at: i32, values: &[u32]) {
    for (i, v) in values.iter().enumerate() {
        let at = at as usize + 4 * i;
        mem[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

/// Writes a tensor struct at [`TENSOR`] (dims at [`DIMS`], data at [`DATA`]): mostly the
/// model's `[N, 64]` f32 input with matching data (N up to all the data and one past it) and
/// one or two fields made wrong, sometimes twenty random bytes.
fn write_tensor(rng: &mut Rng, mem: &mut [u8]) {
    if rng.chance(15) {
        let garbage: Vec<u32> = (0..5).map(|_| rng.next() as u32).collect();
        write_u32s(mem, TENSOR, &garbage);
        return;
    }
    let data_len = rng.layout.data_len;
    let all = (data_len / 256) as u32;
    let rows = rng.pick(&[1u32, 1, 1, 2, 4, 0, all, all + 1]);
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
    mem[DATA as usize..DATA as usize + data_len].fill(fill % 64);
    write_u32s(mem, TENSOR, &fields);
}

/// One random call: its kind and arguments, after preparing memory for it.
fn random_call(rng: &mut Rng, mem: &mut [u8], model_len: u32) -> (usize, [i32; 5]) {
    let model = rng.layout.model;
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
            let ptr = rng.pointer(model, len) as u32;
            write_u32s(mem, BUILDER, &[ptr, len, model as u32, model_len]);
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

/// How often each call kind answered each `nn_errno` code: `codes[kind][code]`.
pub(super) type Codes = [[usize; 9]; 6];

/// A fuzz run: its seed and generator, the codes its calls answered, and a cell that always
/// says which call is running (for the report of a host panic, see [`run_reporting`]).
pub(super) struct Run<'a> {
    /// The seed of `rng`, named by every failure.
    seed: u64,
    rng: Rng,
    /// What the random calls answered so far.
    pub(super) codes: Codes,
    at: &'a RefCell<String>,
    onnx: &'a [u8],
}

impl<'a> Run<'a> {
    /// A run from `seed` for guests with `layout` and the model `onnx` in it.
    pub(super) fn new(seed: u64, layout: Layout, onnx: &'a [u8], at: &'a RefCell<String>) -> Self {
        Self {
            seed,
            rng: Rng::new(seed, layout),
            codes: [[0; 9]; 6],
            at,
            onnx,
        }
    }

    /// Says what runs now.
    pub(super) fn at(&self, what: impl Into<String>) {
        *self.at.borrow_mut() = what.into();
    }

    /// Where the run is, for a failure message.
    fn whereabouts(&self) -> String {
        format!("seed {:#x} {}", self.seed, self.at.borrow())
    }

    /// One random call: its kind and arguments, after preparing `mem` for it.
    pub(super) fn random_call(&mut self, mem: &mut [u8]) -> (usize, [i32; 5]) {
        random_call(&mut self.rng, mem, self.onnx.len() as u32)
    }

    /// One round in a fresh store: `calls` random calls, each must answer an `nn_errno`; then
    /// the store must still run a valid sequence (loading the model's bytes if `allow_load`).
    pub(super) async fn round<T: Send>(
        &mut self,
        store: &mut Store<T>,
        guest: &Guest,
        round: usize,
        calls: usize,
        allow_load: bool,
    ) {
        for i in 0..calls {
            self.at(format!("round {round} call {i}: making it"));
            let mem = guest.memory.data_mut(&mut *store);
            let (kind, args) = self.random_call(mem);
            self.at(format!("round {round} call {i}: {}{args:?}", CALLS[kind]));
            let code = guest
                .call(store, kind, args)
                .await
                .unwrap_or_else(|e| panic!("{}: trapped: {e:#}", self.whereabouts()));
            assert!(
                (0..=8).contains(&code),
                "{}: returned {code}, not an nn_errno",
                self.whereabouts()
            );
            self.codes[kind][code as usize] += 1;
        }
        self.at(format!("round {round}: the valid sequence"));
        let layout = self.rng.layout;
        valid_sequence(store, guest, layout, self.onnx, allow_load)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.whereabouts()));
    }
}

/// The valid prefixes reached every call's success path, and its refusals.
pub(super) fn assert_all_answered(codes: &Codes) {
    for (kind, counts) in codes.iter().enumerate() {
        assert!(counts[0] > 0, "{} never succeeded: {counts:?}", CALLS[kind]);
        assert!(
            counts[1..].iter().sum::<usize>() > 0,
            "{} never refused: {counts:?}",
            CALLS[kind]
        );
    }
}

/// Calls import `kind` and expects success.
async fn expect_ok<T: Send>(
    store: &mut Store<T>,
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

/// The i32 at `ptr`, read by the guest.
async fn read<T: Send>(store: &mut Store<T>, guest: &Guest, ptr: i32) -> Result<i32, String> {
    let result = guest.call(store, READ, [ptr, 0, 0, 0, 0]).await;
    result.map_err(|e| format!("reading {ptr} trapped: {e:#}"))
}

/// load (the model's bytes when `load` is allowed, else by name), init, set_input of one
/// zero row, compute, get_output of the 10 logits.
async fn valid_sequence<T: Send>(
    store: &mut Store<T>,
    guest: &Guest,
    layout: Layout,
    onnx: &[u8],
    allow_load: bool,
) -> Result<(), String> {
    // Random writes may have gone anywhere: lay out what the sequence reads again.
    let model = layout.model;
    let mem = guest.memory.data_mut(&mut *store);
    mem[NAMES as usize..NAMES as usize + 6].copy_from_slice(b"digits");
    mem[model as usize..model as usize + onnx.len()].copy_from_slice(onnx);
    write_u32s(mem, BUILDER, &[model as u32, onnx.len() as u32]);
    write_u32s(mem, DIMS, &[1, 64]);
    write_u32s(mem, TENSOR, &[DIMS as u32, 2, 1, DATA as u32, 256]);
    mem[DATA as usize..DATA as usize + 256].fill(0);
    if allow_load {
        expect_ok(store, guest, 0, [BUILDER, 1, 1, 0, HANDLES]).await?;
    } else {
        expect_ok(store, guest, 1, [NAMES, 6, HANDLES, 0, 0]).await?;
    }
    let graph = read(store, guest, HANDLES).await?;
    expect_ok(store, guest, 2, [graph, HANDLES + 4, 0, 0, 0]).await?;
    let ctx = read(store, guest, HANDLES + 4).await?;
    expect_ok(store, guest, 3, [ctx, 0, TENSOR, 0, 0]).await?;
    expect_ok(store, guest, 4, [ctx, 0, 0, 0, 0]).await?;
    expect_ok(store, guest, 5, [ctx, 0, OUT, OUT_LEN as i32, HANDLES + 8]).await?;
    let written = read(store, guest, HANDLES + 8).await?;
    if written != 40 {
        return Err(format!(
            "get_output wrote {written} bytes, not 10 f32 logits"
        ));
    }
    Ok(())
}

/// Runs `fuzz` (given a cell that always says what it is doing) on a two-thread runtime; a
/// panic is reported again as `<name> failed with NN_FUZZ_SEED=<seed> at <where>: <what>`.
pub(super) fn run_reporting(name: &str, seed: u64, fuzz: impl AsyncFnOnce(&RefCell<String>)) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let at = RefCell::new(String::from("setting up"));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(fuzz(&at))));
    if let Err(panic) = outcome {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        panic!(
            "{name} failed with NN_FUZZ_SEED={seed:#x} at {}: {what}",
            at.borrow()
        );
    }
}
