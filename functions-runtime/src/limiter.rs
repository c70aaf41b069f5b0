//! The per-call memory cap: a `ResourceLimiter` that refuses growth past it and remembers the
//! refusal, so the error can say it was memory.

use wasmtime::ResourceLimiter;

/// Caps memory growth and remembers a refusal, so the error can say it was memory.
pub(crate) struct MemoryLimiter {
    /// The most bytes a linear memory may have.
    pub(crate) cap: usize,
    /// The size a refused grow asked for.
    pub(crate) refused: Option<usize>,
}

impl MemoryLimiter {
    /// A limiter capping memories at `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, refused: None }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
