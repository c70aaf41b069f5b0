//! The request body as handlers see it (timed: a stalled or trickling body ends in an
//! error and a 408), the lingering drain of a body a handler answered without reading, and
//! the response body that keeps its connection busy until it is written.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::conn::BusyGuard;

/// How a request body must arrive, and how long an unread one is drained.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRules {
    /// The longest stall between two chunks (and the grace before the rate counts).
    pub timeout: Duration,
    /// The slowest average rate after the grace; 0: no rate.
    pub min_bytes_per_sec: u64,
    /// How long an unread body is drained after the handler dropped it.
    pub linger: Duration,
}

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The connection failed or the client broke the framing.
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// The body stalled or arrived too slowly.
    #[error("the request body stalled or arrived too slowly")]
    TimedOut,
}

/// A request body read under [`BodyRules`].
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    rules: BodyRules,
    started: Option<Instant>,
    last: Instant,
    received: u64,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
    expect_continue: bool,
    busy: Option<BusyGuard>,
}

impl RequestBody {
    /// Wraps `inner`; `timed_out` is set when the rules end it; `busy` is held until the
    /// body is read, dropped, or drained.
    pub(crate) fn new(
        inner: Incoming,
        rules: BodyRules,
        timed_out: Arc<AtomicBool>,
        expect_continue: bool,
        busy: BusyGuard,
    ) -> Self {
        Self {
            inner: Some(inner),
            rules,
            started: None,
            last: Instant::now(),
            received: 0,
            sleep: None,
            timed_out,
            expect_continue,
            busy: Some(busy),
        }
    }

    /// When the body times out if no more bytes arrive.
    fn deadline(&self) -> Instant {
        let stall = self.last + self.rules.timeout;
        let Some(started) = self.started else {
            return stall;
        };
        if self.rules.min_bytes_per_sec == 0 {
            return stall;
        }
        let allowance =
            Duration::from_secs_f64(self.received as f64 / self.rules.min_bytes_per_sec as f64);
        stall.min(started + self.rules.timeout + allowance)
    }

    fn finish(&mut self) {
        self.inner = None;
        self.sleep = None;
        self.busy = None;
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let now = Instant::now();
        if this.started.is_none() {
            this.started = Some(now);
            this.last = now;
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.last = now;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.deadline();
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.store(true, Ordering::Release);
                    // Dropping the body makes hyper stop reading and close after the answer.
                    this.finish();
                    return Poll::Ready(Some(Err(BodyError::TimedOut)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for RequestBody {
    /// A body the handler did not read to its end is drained in the background (for at
    /// most `linger`, and only while it keeps arriving), so that hyper keeps reading it
    /// while the answer goes out instead of closing a socket with unread bytes, which
    /// resets the connection and can destroy the answer before the client reads it.
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        // A client waiting for `100 Continue` has not sent its body: do not invite it.
        let never_polled_expectation = self.expect_continue && self.started.is_none();
        if inner.is_end_stream() || self.rules.linger.is_zero() || never_polled_expectation {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(linger(inner, self.rules, self.busy.take()));
    }
}

async fn linger(mut body: Incoming, rules: BodyRules, _busy: Option<BusyGuard>) {
    let until = Instant::now() + rules.linger;
    let mut drained = 0u64;
    loop {
        let stall = (Instant::now() + rules.timeout).min(until);
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout_at(stall, frame).await {
            Ok(Some(Ok(frame))) => {
                drained += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => {
                tracing::debug!(drained, "stopped draining an unread request body");
                break;
            }
        }
    }
}

/// A response body that holds its connection busy until hyper has taken all of it.
pub(crate) struct ResponseBody {
    inner: axum::body::Body,
    _busy: BusyGuard,
}

impl ResponseBody {
    /// Wraps a router's response body.
    pub(crate) fn new(inner: axum::body::Body, busy: BusyGuard) -> Self {
        Self { inner, _busy: busy }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
