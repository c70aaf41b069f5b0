//! The FL wire format under structure-aware fuzzing: random bytes behind the magic, and valid
//! encodings truncated, bit-flipped, spliced and given huge declared counts, lengths and dims.
//! Decoding never panics, accepts only what re-encodes to the same bytes, and never makes an
//! allocation sized by a declared length the bytes cannot back.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use federated::wire::{decode, encode, WireError};
use federated::{ParamTensor, Parameters};
use proptest::prelude::*;

/// The system allocator, remembering the largest single allocation made on each thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[allow(
    unsafe_code,
    reason = "a global allocator that only records sizes before delegating to System"
)]
// SAFETY: every method delegates to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Decodes and returns the result with the largest allocation decoding made.
fn decode_measured(bytes: &[u8], max_values: usize) -> (Result<Parameters, WireError>, usize) {
    LARGEST.with(|l| l.set(0));
    let result = decode(bytes, max_values);
    (result, LARGEST.with(Cell::get))
}

/// Decoding `bytes` may allocate in proportion to them (a tensor struct per 3 bytes, at
/// worst), never in proportion to what they declare.
fn allocation_bound(bytes: &[u8]) -> usize {
    32 * bytes.len() + 1024
}

/// Checks the properties every input must have: no panic, a bounded allocation, and an
/// accepted input that is exactly the encoding of what it decodes to.
fn check(bytes: &[u8], max_values: usize) -> Result<(), TestCaseError> {
    let (result, largest) = decode_measured(bytes, max_values);
    prop_assert!(
        largest <= allocation_bound(bytes),
        "decoding {} bytes allocated {largest} bytes at once ({result:?})",
        bytes.len()
    );
    if let Ok(params) = result {
        let total: usize = params.tensors().iter().map(|t| t.data.len()).sum();
        prop_assert!(total <= max_values);
        prop_assert_eq!(encode(&params).unwrap(), bytes);
    }
    Ok(())
}

fn tensor() -> impl Strategy<Value = ParamTensor> {
    ("[a-z.]{0,12}", proptest::collection::vec(0usize..4, 0..4)).prop_flat_map(|(name, shape)| {
        let n = shape.iter().product::<usize>();
        proptest::collection::vec(-1e6f32..1e6, n).prop_map(move |data| ParamTensor {
            name: name.clone(),
            shape: shape.clone(),
            data,
        })
    })
}

fn parameters() -> impl Strategy<Value = Parameters> {
    proptest::collection::vec(tensor(), 0..4).prop_map(|mut tensors| {
        for (i, t) in tensors.iter_mut().enumerate() {
            t.name = format!("{i}{}", t.name);
        }
        Parameters::new(tensors).expect("unique names, finite values")
    })
}

/// One structural change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    FlipBit(usize, u8),
    /// Overwrites 4 bytes (a count, a dimension, or part of a length) with a value.
    SetU32(usize, u32),
    /// Overwrites 2 bytes (a name length) with a value.
    SetU16(usize, u16),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Appends the bytes after the header again (a second copy of the tensors).
    RepeatTensors,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop_oneof![
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0x4000_0000),
        Just(65_536),
        any::<u32>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), huge).prop_map(|(i, v)| Mutation::SetU32(i, v)),
        (any::<usize>(), any::<u16>()).prop_map(|(i, v)| Mutation::SetU16(i, v)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        Just(Mutation::RepeatTensors),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Truncate(i) => bytes.truncate(at(*i, bytes.len() + 1)),
        Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            bytes[i] ^= 1 << bit;
        }
        Mutation::SetU32(i, v) if bytes.len() >= 4 => {
            let i = at(*i, bytes.len() - 3);
            bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        Mutation::SetU16(i, v) if bytes.len() >= 2 => {
            let i = at(*i, bytes.len() - 1);
            bytes[i..i + 2].copy_from_slice(&v.to_le_bytes());
        }
        Mutation::Insert(i, b) => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Remove(i, n) if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::RepeatTensors if bytes.len() > 8 => {
            let tail = bytes[8..].to_vec();
            bytes.extend_from_slice(&tail);
        }
        _ => {}
    }
}

fn max_values() -> impl Strategy<Value = usize> {
    prop_oneof![Just(usize::MAX), Just(1 << 20), Just(3), 0usize..64]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_behind_the_magic_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        max in max_values(),
    ) {
        let mut bytes = b"FLP1".to_vec();
        bytes.extend_from_slice(&body);
        check(&bytes, max)?;
        check(&body, max)?;
    }

    #[test]
    fn mutated_encodings_are_refused_or_exact(
        params in parameters(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        max in max_values(),
    ) {
        let mut bytes = encode(&params).unwrap();
        check(&bytes, usize::MAX)?;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes, max)?;
    }
}

/// A header declaring one tensor with this name length, rank and dims, followed by `rest`.
fn declared(name_len: u16, dims: &[u32], rest: &[u8]) -> Vec<u8> {
    let mut b = b"FLP1".to_vec();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&name_len.to_le_bytes());
    b.extend(std::iter::repeat_n(b'a', usize::from(name_len).min(4)));
    b.push(dims.len() as u8);
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(rest);
    b
}

#[test]
fn declared_sizes_larger_than_the_bytes_are_refused_before_allocating() {
    let cases = [
        // 2^62 values: their byte length overflows usize (a panic before the fix).
        declared(1, &[1 << 30, 1 << 30, 4], &[0; 16]),
        // 2^64 values: the count itself overflows.
        declared(1, &[u32::MAX, u32::MAX, 2], &[0; 16]),
        // 4 Gi values declared, 16 bytes sent.
        declared(1, &[u32::MAX], &[0; 16]),
        // A name of 65535 bytes declared, 4 sent.
        declared(u16::MAX, &[], &[]),
        // u32::MAX tensors declared.
        {
            let mut b = b"FLP1".to_vec();
            b.extend_from_slice(&u32::MAX.to_le_bytes());
            b.extend_from_slice(&[0; 64]);
            b
        },
    ];
    for bytes in cases {
        for max in [usize::MAX, 1 << 20] {
            let (result, largest) = decode_measured(&bytes, max);
            assert!(result.is_err(), "{bytes:?} decoded");
            assert!(
                largest <= allocation_bound(&bytes),
                "{largest} bytes allocated for {} bytes: {result:?}",
                bytes.len()
            );
        }
    }
}

#[test]
fn what_the_format_cannot_hold_is_not_encoded() {
    let long = ParamTensor {
        name: "x".repeat(70_000),
        shape: vec![1],
        data: vec![1.0],
    };
    let err = encode(&Parameters::new(vec![long]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("65535"), "{err}");
    let deep = ParamTensor {
        name: "x".into(),
        shape: vec![1; 9],
        data: vec![1.0],
    };
    let err = encode(&Parameters::new(vec![deep]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("rank 9"), "{err}");
}

#[test]
fn a_shape_whose_size_overflows_is_a_length_error_not_a_panic() {
    let t = ParamTensor {
        name: "x".into(),
        shape: vec![usize::MAX, 2],
        data: vec![],
    };
    assert!(matches!(
        Parameters::new(vec![t]),
        Err(federated::ParamError::Length { .. })
    ));
    let empty = ParamTensor {
        name: "x".into(),
        shape: vec![usize::MAX, usize::MAX, 0],
        data: vec![],
    };
    assert!(Parameters::new(vec![empty]).is_ok());
}
