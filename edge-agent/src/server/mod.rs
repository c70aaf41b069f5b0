//! The HTTP/1.1 server: our own accept loop over hyper, so that every connection is under
//! the `[server]` rules (see [`crate::config::ServerConfig`]):
//!
//! - caps on open connections, in all and per client IP address: over a cap a new
//!   connection is closed at once and counted in `edge_agent_refused_connections`;
//! - a head timeout (from accept, or from a later request's first byte) and a keep-alive
//!   idle timeout, and a send timeout (a client that stops reading its response), enforced by
//!   a per-connection watchdog that closes the socket;
//! - a request-body timeout (stall and minimum rate) that answers a JSON `408`;
//! - a lingering drain of bodies answered unread, so a `401` or `413` sent before the body
//!   reaches the client instead of a connection reset;
//! - `TCP_NODELAY`, and accept errors (`EMFILE`...) met with a bounded back-off.
//!
//! Graceful shutdown is axum's: stop accepting, let every connection finish the request it
//! is serving, close idle ones, and return once all are closed.

mod body;
mod conn;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// What every connection of one server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    config: ServerConfig,
    metrics: Metrics,
    open: Mutex<OpenConnections>,
    all_closed: Notify,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A connection's place under the caps, given back on drop.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, OpenConnections> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for a connection from `ip`, or the cap that refuses it.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, &'static str> {
        let mut open = self.open();
        if open.total >= self.config.max_connections {
            return Err("max_connections");
        }
        let from_ip = open.per_ip.entry(ip).or_default();
        if *from_ip >= self.config.max_connections_per_ip {
            return Err("max_connections_per_ip");
        }
        *from_ip += 1;
        open.total += 1;
        self.metrics.open_connections().inc();
        Ok(ConnPermit {
            shared: self.clone(),
            ip,
        })
    }

    async fn wait_all_closed(&self) {
        loop {
            let closed = self.all_closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open().total == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.shared.open();
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
        let none_left = open.total == 0;
        drop(open);
        self.shared.metrics.open_connections().dec();
        if none_left {
            self.shared.all_closed.notify_waiters();
        }
    }
}

/// Errors of one incoming connection, not of the listener: accept the next at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The first back-off after a failed accept, doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait between two accepts while accepting fails (out of descriptors...).
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets every
/// connection finish what it is serving, and returns once all are closed.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared {
        config,
        metrics,
        open: Mutex::new(OpenConnections::default()),
        all_closed: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; retrying after a back-off");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        backoff = Duration::ZERO;
        let ip = peer.ip().to_canonical();
        let permit = match shared.admit(ip) {
            Ok(permit) => permit,
            Err(cap) => {
                shared.metrics.count_refused_connection(cap);
                tracing::debug!(%peer, cap, "connection refused: server.{cap} reached");
                drop(stream);
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(conn::serve(
            stream,
            peer,
            router.clone(),
            shared.clone(),
            stop_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(());
    shared.wait_all_closed().await;
}
