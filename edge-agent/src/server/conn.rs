//! One connection: what it is doing (waiting for a head, serving, idle), the watchdog that
//! closes it when a head or an idle period takes too long, and the service that runs the
//! router for each request with a timed request body.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower_service::Service;

use super::body::{BodyRules, RequestBody, ResponseBody};
use super::{ConnPermit, Shared};
use crate::http::ApiError;

/// What a connection is doing.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head: since accept, or since the first byte of a
    /// later request.
    Head { since: Instant },
    /// `guards` holders (the request in the router, its body, its response body) are busy.
    Busy { guards: usize },
    /// Between requests, with nothing received since `since`.
    Idle { since: Instant },
}

/// What the watchdog looks at.
#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Since when the client has not taken the bytes the agent is sending.
    write_blocked_since: Option<Instant>,
}

/// Shared by the connection's I/O, its service and its watchdog.
#[derive(Debug)]
pub(crate) struct ConnState {
    inner: Mutex<Inner>,
    changed: Notify,
}

impl ConnState {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                phase: Phase::Head {
                    since: Instant::now(),
                },
                write_blocked_since: None,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the state itself is always valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: on an idle connection they start the next request's head.
    fn on_read(&self) {
        let mut inner = self.lock();
        if let Phase::Idle { .. } = inner.phase {
            inner.phase = Phase::Head {
                since: Instant::now(),
            };
            drop(inner);
            self.changed.notify_one();
        }
    }

    /// A write made progress (`true`) or found the client's window full (`false`).
    fn on_write(&self, progressed: bool) {
        let mut inner = self.lock();
        match (progressed, inner.write_blocked_since) {
            (true, Some(_)) => inner.write_blocked_since = None,
            (false, None) => {
                inner.write_blocked_since = Some(Instant::now());
                drop(inner);
                self.changed.notify_one();
            }
            _ => {}
        }
    }

    /// Marks the connection busy until the guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> BusyGuard {
        let mut inner = self.lock();
        inner.phase = match inner.phase {
            Phase::Busy { guards } => Phase::Busy { guards: guards + 1 },
            _ => Phase::Busy { guards: 1 },
        };
        drop(inner);
        self.changed.notify_one();
        BusyGuard(self.clone())
    }

    fn release(&self) {
        let mut inner = self.lock();
        if let Phase::Busy { guards } = inner.phase {
            inner.phase = if guards <= 1 {
                Phase::Idle {
                    since: Instant::now(),
                }
            } else {
                Phase::Busy { guards: guards - 1 }
            };
        }
        drop(inner);
        self.changed.notify_one();
    }

    /// When the connection must be closed if nothing changes, and which timeout that is.
    fn deadline(&self, shared: &Shared) -> Option<(Instant, &'static str)> {
        let config = &shared.config;
        let inner = self.lock();
        let phase = match inner.phase {
            Phase::Head { since } => Some((since + config.header_read_timeout(), "header")),
            Phase::Idle { since } => Some((since + config.keep_alive_timeout(), "keep_alive")),
            Phase::Busy { .. } => None,
        };
        let send = inner
            .write_blocked_since
            .map(|since| (since + config.send_timeout(), "send"));
        match (phase, send) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Resolves with the timeout's name once the connection has waited too long for a head,
    /// sat idle too long, or the client stopped taking what the agent sends.
    async fn watchdog(&self, shared: &Shared) -> &'static str {
        loop {
            match self.deadline(shared) {
                Some((at, reason)) if at <= Instant::now() => return reason,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// Keeps its connection out of the head and idle timeouts while held.
#[derive(Debug)]
pub(crate) struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The socket, telling the connection's state when bytes arrive.
struct TrackedIo {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.on_read();
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.state.on_write(result.is_ready());
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.state.on_write(result.is_ready());
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Runs the router for each request of one connection.
#[derive(Clone)]
struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.state.busy();
        let timed_out = Arc::new(AtomicBool::new(false));
        let expect_continue = request
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let config = &self.shared.config;
        let rules = BodyRules {
            timeout: config.body_read_timeout(),
            min_bytes_per_sec: config.min_body_bytes_per_sec,
            linger: config.linger(),
        };
        let body_guard = self.state.busy();
        let request = request.map(|incoming| {
            axum::body::Body::new(RequestBody::new(
                incoming,
                rules,
                timed_out.clone(),
                expect_continue,
                body_guard,
            ))
        });
        let mut router = self.router.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = match router.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let response = if timed_out.load(Ordering::Acquire) {
                shared.metrics.count_connection_timeout("body");
                body_timeout_response(&response, shared.config.body_read_timeout_ms)
            } else {
                response
            };
            Ok(response.map(|body| ResponseBody::new(body, busy)))
        })
    }
}

/// The JSON 408 that replaces whatever a handler answered once its body timed out.
fn body_timeout_response(
    original: &Response<axum::body::Body>,
    timeout_ms: u64,
) -> Response<axum::body::Body> {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body stalled or arrived too slowly (server.body_read_timeout_ms = \
             {timeout_ms}, server.min_body_bytes_per_sec); the connection is closed"
        ),
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(id) = original.headers().get(crate::http::REQUEST_ID) {
        headers.insert(crate::http::REQUEST_ID, id.clone());
    }
    response
}

/// Serves one accepted connection until it ends, a timeout closes it, or shutdown drains it.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<()>,
    _permit: ConnPermit,
) {
    let state = ConnState::new();
    let io = TokioIo::new(TrackedIo {
        stream,
        state: state.clone(),
    });
    let service = ConnService {
        router,
        state: state.clone(),
        shared: shared.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Our watchdog times heads and idle periods; hyper's own timer would start at the end of
    // each response and so could not tell an idle keep-alive from a slow head.
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let watchdog = state.watchdog(&shared);
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            reason = &mut watchdog => {
                shared.metrics.count_connection_timeout(reason);
                tracing::debug!(%peer, timeout = reason, "closing a connection that timed out");
                break;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
