//! The `wasi_ephemeral_nn` ABI as the guest sees it: the module name, `nn_errno`, the enums
//! passed as integers, and the bounds we put on what a guest passes.

use inference::ElementType;

/// The module name of the ABI.
pub const MODULE: &str = "wasi_ephemeral_nn";

/// `nn_errno`, in the order of the witx (and the `wasi-nn` 0.6 crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum NnErrno {
    /// Success.
    Success = 0,
    /// A bad handle, index, pointer, length or value.
    InvalidArgument = 1,
    /// A graph encoding we do not run.
    InvalidEncoding = 2,
    /// The guest exports no memory.
    MissingMemory = 3,
    /// A resource is busy.
    Busy = 4,
    /// The model failed to run.
    RuntimeError = 5,
    /// Not supported here.
    UnsupportedOperation = 6,
    /// A tensor, buffer or count is over its bound.
    TooLarge = 7,
    /// No such model (or not one the function was granted).
    NotFound = 8,
}

/// The outcome of one call before it becomes the `nn_errno` the guest gets.
pub(super) type Code = Result<(), NnErrno>;

/// `graph_encoding`: the values the ABI defines (`openvino` to `autodetect`).
pub(super) const ENCODINGS: std::ops::RangeInclusive<i32> = 0..=5;
/// `graph_encoding::onnx`, the only encoding `load` takes.
pub(super) const ENCODING_ONNX: i32 = 1;
/// `execution_target`: the values the ABI defines (`cpu` to `autodetect`).
pub(super) const TARGETS: std::ops::RangeInclusive<i32> = 0..=3;

/// Largest tensor rank accepted.
pub(super) const MAX_RANK: usize = 8;
/// Longest model name accepted by `load_by_name`.
pub(super) const MAX_NAME: usize = 256;
/// The size of a `tensor` struct on wasm32: `dims_ptr` (4 bytes), `dims_len` (4), `type` (1
/// byte, then 3 bytes of padding that the host ignores), `data_ptr` (4), `data_len` (4).
pub(super) const TENSOR_SIZE: u64 = 20;
/// Where the tensor struct's one-byte `type` sits. The witx ABI (and the `wasi-nn` crate's
/// `#[repr(C)]` struct holding a `TensorType(u8)`) makes it one byte followed by padding, which
/// a C guest need not zero.
pub(super) const TENSOR_TYPE_OFFSET: i32 = 8;

/// `tensor_type` (one byte) as an element type.
pub(super) fn element_type(raw: u8) -> Result<ElementType, NnErrno> {
    Ok(match raw {
        0 => ElementType::F16,
        1 => ElementType::F32,
        2 => ElementType::F64,
        3 => ElementType::U8,
        4 => ElementType::I32,
        5 => ElementType::I64,
        _ => return Err(NnErrno::InvalidArgument),
    })
}
