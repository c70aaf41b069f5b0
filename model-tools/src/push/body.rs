//! An upload body that reports how many bytes it has handed to the connection, for the
//! progress bar.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Bytes handed over per frame: small enough for a smooth bar, large enough to cost nothing.
const CHUNK: usize = 64 << 10;

/// Called with the bytes handed over so far.
pub(crate) type OnSent = Arc<dyn Fn(u64) + Send + Sync>;

/// `data` in chunks of [`CHUNK`], calling `on_sent` after each.
pub(crate) struct ProgressBody {
    data: Bytes,
    sent: usize,
    on_sent: OnSent,
}

impl ProgressBody {
    pub(crate) fn new(data: Bytes, on_sent: OnSent) -> Self {
        Self {
            data,
            sent: 0,
            on_sent,
        }
    }
}

impl Body for ProgressBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.sent >= this.data.len() {
            return Poll::Ready(None);
        }
        let end = (this.sent + CHUNK).min(this.data.len());
        let chunk = this.data.slice(this.sent..end);
        this.sent = end;
        (this.on_sent)(end as u64);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() - self.sent) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn every_byte_is_handed_over_once_and_reported() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 7)).map(|i| i as u8).collect();
        let last = Arc::new(AtomicU64::new(0));
        let seen = last.clone();
        let mut body = ProgressBody::new(
            Bytes::from(data.clone()),
            Arc::new(move |n| seen.store(n, Ordering::Relaxed)),
        );
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut got = Vec::new();
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(got, data);
        assert!(body.is_end_stream());
        assert_eq!(last.load(Ordering::Relaxed), data.len() as u64);
    }
}
