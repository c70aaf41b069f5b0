//! Guest memory access: every pointer and length is checked against the memory's size before
//! anything is read or written, without overflow (a negative `i32` is a large address).

use std::ops::Range;

use super::abi::{Code, NnErrno};

/// The bytes `[ptr, ptr + len)` of guest memory, if they are all inside it.
pub(super) fn range(memory: &[u8], ptr: i32, len: u64) -> Result<Range<usize>, NnErrno> {
    let start = u64::from(ptr as u32);
    let end = start.checked_add(len).ok_or(NnErrno::InvalidArgument)?;
    if end > memory.len() as u64 {
        return Err(NnErrno::InvalidArgument);
    }
    Ok(start as usize..end as usize)
}

/// The byte at `ptr`.
pub(super) fn read_u8(memory: &[u8], ptr: i32) -> Result<u8, NnErrno> {
    Ok(memory[range(memory, ptr, 1)?.start])
}

/// The little-endian `u32` at `ptr`.
pub(super) fn read_u32(memory: &[u8], ptr: i32) -> Result<u32, NnErrno> {
    let r = range(memory, ptr, 4)?;
    let mut b = [0u8; 4];
    b.copy_from_slice(&memory[r]);
    Ok(u32::from_le_bytes(b))
}

/// Writes `value` little-endian at `ptr`.
pub(super) fn write_u32(memory: &mut [u8], ptr: i32, value: u32) -> Code {
    let r = range(memory, ptr, 4)?;
    memory[r].copy_from_slice(&value.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        let memory = vec![0u8; 16];
        assert_eq!(range(&memory, 0, 16), Ok(0..16));
        assert_eq!(range(&memory, 12, 4), Ok(12..16));
        assert_eq!(range(&memory, 13, 4), Err(NnErrno::InvalidArgument));
        assert_eq!(range(&memory, -1, 1), Err(NnErrno::InvalidArgument));
        assert_eq!(range(&memory, 1, u64::MAX), Err(NnErrno::InvalidArgument));
        assert_eq!(read_u32(&memory, 14), Err(NnErrno::InvalidArgument));
        assert_eq!(read_u8(&memory, 15), Ok(0));
        assert_eq!(read_u8(&memory, 16), Err(NnErrno::InvalidArgument));
        assert_eq!(read_u8(&memory, -1), Err(NnErrno::InvalidArgument));
    }
}
