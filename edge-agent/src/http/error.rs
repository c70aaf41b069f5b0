//! One error type for every handler: a status and `{"error": "..."}`; and the middleware that
//! logs each error response once and keeps internal text out of `500` bodies.
//!
//! The rules, in one place:
//!
//! - **Bodies.** Every error response is JSON `{"error": "..."}` (axum's own text rejections
//!   are wrapped too). A failure of the agent itself ([`ApiError::internal`]: storage, the
//!   inference backend, a host-side fault, a bug) answers `500` with
//!   `internal error (request id <id>)`; its detail (paths, backend messages) goes only to the
//!   log, where the request id finds it. Other 5xx (`502` a guest's bad output, `503`
//!   overloaded or busy, `504` a deadline, `500` a guest's own trap) carry a sentence the agent
//!   composes about the caller's request or function, never the agent's internals.
//! - **Logs.** [`error_responses`] logs every error response once, in the request's span (so
//!   with its request id and route): `error` for an internal failure, `warn` for another 5xx,
//!   `debug` for a 4xx (the caller's mistake; the `served` line already records its status).
//!   Handlers and the mapping from service errors do not log.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::observability::RequestId;

/// The body text of every internal failure, before the request id.
pub const INTERNAL_ERROR: &str = "internal error";

/// An HTTP error with its JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// The body's text; for an internal error, the detail that only the log sees.
    message: String,
    internal: bool,
    retry_after: Option<u64>,
    bearer_challenge: bool,
}

/// What [`ApiError::into_response`] leaves for [`error_responses`]: the text to log, and
/// whether the body must become [`INTERNAL_ERROR`] with the request id.
#[derive(Debug, Clone)]
struct ErrorDetail {
    text: String,
    internal: bool,
}

impl ApiError {
    /// An error with this status and message (the message is the body: write it for the
    /// caller).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            internal: false,
            retry_after: None,
            bearer_challenge: false,
        }
    }

    /// `500` for a failure of the agent itself: the body says only "internal error" and the
    /// request id; `detail` goes to the log.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            internal: true,
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
        }
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            bearer_challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// This error with a `Retry-After` of `secs` seconds.
    pub fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.internal {
            INTERNAL_ERROR
        } else {
            &self.message
        };
        let mut response =
            (self.status, Json(serde_json::json!({ "error": body }))).into_response();
        if self.bearer_challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorDetail {
            text: self.message,
            internal: self.internal,
        });
        response
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(status, "request body is larger than the configured limit (limits.max_request_bytes or limits.max_model_bytes)");
        }
        if status.is_server_error() {
            return Self::internal(r.body_text());
        }
        Self::new(status, r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "model upload is larger than limits.max_model_bytes",
            );
        }
        multipart_error(&e)
    }
}

/// A multipart body that cannot be read to its end: a malformed part, or a body cut short
/// (axum calls a body that ends early a stream read failure, 500; it is the client's: 400).
pub fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    use std::error::Error as _;
    let mut detail = e.body_text();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        source = cause.source();
    }
    ApiError::bad_request(format!("malformed or truncated multipart upload: {detail}"))
}

/// The most bytes of a non-JSON error body that [`error_responses`] wraps; longer text is cut.
const MAX_WRAPPED_ERROR: usize = 4096;

/// The body of an internal failure: no detail, the request id to find it in the log.
fn internal_body(request_id: &str) -> String {
    format!("{INTERNAL_ERROR} (request id {request_id})")
}

/// Middleware, inside the request's span: logs each error response once (see the module
/// rules), makes every error body JSON (axum's own rejections, a method the route does not
/// serve, answer `text/plain`), and replaces an internal failure's body with
/// [`INTERNAL_ERROR`] and the request id. A function's own response (marked `x-function`) and
/// a handler's own JSON (`/v2/health/ready`'s `503`) pass untouched.
pub async fn error_responses(request: Request, next: Next) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key("x-function")
    {
        return response;
    }
    let detail = match response.extensions_mut().remove::<ErrorDetail>() {
        Some(detail) => detail,
        None => {
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if is_json {
                return response;
            }
            let (parts, body) = response.into_parts();
            let text = match axum::body::to_bytes(body, MAX_WRAPPED_ERROR).await {
                Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
                _ => status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_owned(),
            };
            let internal = status == StatusCode::INTERNAL_SERVER_ERROR;
            let shown = if internal {
                internal_body(&request_id)
            } else {
                text.clone()
            };
            response = json_body(parts, &shown);
            ErrorDetail { text, internal }
        }
    };
    log(status, &detail);
    if detail.internal {
        let (parts, _) = response.into_parts();
        response = json_body(parts, &internal_body(&request_id));
    }
    response
}

/// One log line per error response, at the level the module rules give.
fn log(status: StatusCode, detail: &ErrorDetail) {
    let (status, error) = (status.as_u16(), detail.text.as_str());
    if detail.internal {
        tracing::error!(status, error, "request failed: internal error");
    } else if (500..600).contains(&status) {
        tracing::warn!(status, error, "request failed");
    } else {
        tracing::debug!(status, error, "request refused");
    }
}

/// `parts` with the JSON body `{"error": text}`.
fn json_body(mut parts: axum::http::response::Parts, text: &str) -> Response {
    let body = serde_json::to_vec(&serde_json::json!({ "error": text }))
        .unwrap_or_else(|_| br#"{"error":"request failed"}"#.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}
