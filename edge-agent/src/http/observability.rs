//! `/metrics`, the OpenAPI document, and the middleware that gives every request an id, a
//! span and a place in the in-flight gauge.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::gauge::Gauge;
use tracing::Instrument;

use super::AppState;
use crate::metrics::Metrics;

/// The request-id header, read from the client or generated.
pub const REQUEST_ID: &str = "x-request-id";

/// The id of the request being served (an extension set by [`track`]).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /v1/openapi.json`: the `/v1` API described.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}

/// Assigns the request id, logs the request in a span with it, and counts it in flight.
pub async fn track(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:016x}", state.request_ids.fetch_add(1, Ordering::Relaxed)));
    request.extensions_mut().insert(RequestId(id.clone()));
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route);
    let in_flight = InFlight::enter(&state.metrics);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(in_flight);
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "served"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// A request's place in the in-flight gauge: counted while this lives. A guard and not an
/// `inc` / `dec` pair, because a client that disconnects drops the request's future between
/// the two, and the gauge would never come down.
struct InFlight(Gauge<i64, AtomicI64>);

impl InFlight {
    fn enter(metrics: &Metrics) -> Self {
        let gauge = metrics.in_flight().clone();
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
