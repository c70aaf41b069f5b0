//! A guest's stdout: an in-memory pipe with a hard cap. A write that would go past the cap
//! traps the guest at once (so a guest flooding stdout stops early and the host holds at most
//! the cap), and the overflow is remembered, so the call fails with an explicit error instead
//! of answering with a silently truncated body.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Largest permit one `check_write` grants (the p1 adapter writes in 4 KiB chunks anyway).
const PERMIT: usize = 64 << 10;

/// The trap a write past the cap raises.
#[derive(Debug, thiserror::Error)]
#[error("the guest wrote more than {cap} bytes to stdout")]
pub struct OutputOverflow {
    /// The cap.
    pub cap: usize,
}

/// A capped in-memory stdout; clones share the buffer.
#[derive(Clone)]
pub struct CappedPipe {
    cap: usize,
    buffer: Arc<Mutex<Vec<u8>>>,
    overflowed: Arc<AtomicBool>,
}

impl CappedPipe {
    /// An empty pipe that holds at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            buffer: Arc::new(Mutex::new(Vec::new())),
            overflowed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the guest tried to write past the cap.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::SeqCst)
    }

    /// What was written (never more than the cap).
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer())
    }

    /// Appends `bytes` if they fit under the cap; otherwise records the overflow and appends
    /// nothing.
    fn append(&self, bytes: &[u8]) -> Result<(), OutputOverflow> {
        let mut buffer = self.buffer();
        if bytes.len() > self.cap.saturating_sub(buffer.len()) {
            self.overflowed.store(true, Ordering::SeqCst);
            return Err(OutputOverflow { cap: self.cap });
        }
        buffer.extend_from_slice(bytes);
        Ok(())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.overflowed() {
            return Err(StreamError::Trap(wasmtime::Error::new(OutputOverflow {
                cap: self.cap,
            })));
        }
        // Always grant a write, even when full: the write past the cap is what traps.
        Ok(PERMIT)
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_up_to_the_cap_then_refuses_and_remembers() {
        let mut pipe = CappedPipe::new(8);
        assert_eq!(pipe.check_write().unwrap(), PERMIT);
        pipe.write(Bytes::from_static(b"12345678")).unwrap();
        assert!(!pipe.overflowed());
        assert!(pipe.write(Bytes::from_static(b"9")).is_err());
        assert!(pipe.overflowed());
        assert!(pipe.check_write().is_err());
        assert_eq!(pipe.take(), b"12345678");
    }
}
