//! `413` as soon as a request declares a `Content-Length` over its route's limit, before any
//! of the body is read (the body-limit extractors only notice once the bytes have arrived).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// A route group's body limit and the configuration key that sets it.
#[derive(Debug, Clone, Copy)]
pub struct DeclaredLimit {
    limit: usize,
    key: &'static str,
}

/// `None` unless `headers` declare a body longer than `limit`; then the JSON `413` (with
/// `Connection: close`) naming `key`.
pub fn check_declared_length(headers: &HeaderMap, limit: usize, key: &str) -> Option<Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            let mut response = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request declares a body of {length} bytes, over {key} ({limit} bytes)"
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Some(response)
        }
        _ => None,
    }
}

impl DeclaredLimit {
    /// `limit` bytes, set by the configuration key `key`.
    pub fn new(limit: usize, key: &'static str) -> Self {
        Self { limit, key }
    }
}

/// Middleware: answers `413` to a declared body over the group's limit.
pub async fn refuse_declared_overlong(
    State(limit): State<DeclaredLimit>,
    request: Request,
    next: Next,
) -> Response {
    match check_declared_length(request.headers(), limit.limit, limit.key) {
        None => next.run(request).await,
        Some(response) => response,
    }
}
