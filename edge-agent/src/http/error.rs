//! One error type for every handler: a status and `{"error": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use functions_runtime::InvokeError;

use crate::service::{CallError, InferError, MemoryError, RepositoryError};

/// An HTTP error with its JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    bearer_challenge: bool,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            bearer_challenge: false,
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

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        }
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
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
        response
    }
}

impl From<RepositoryError> for ApiError {
    fn from(e: RepositoryError) -> Self {
        match e {
            RepositoryError::NotFound(m) => Self::not_found(m),
            RepositoryError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            RepositoryError::Rejected(m) => Self::bad_request(m),
            RepositoryError::Internal(m) => {
                tracing::error!(error = %m, "internal failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
            }
            RepositoryError::Storage(source) => {
                tracing::error!(error = ?source, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal storage error; see the agent's log",
                )
            }
        }
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        let message = e.to_string();
        match e {
            InferError::Overloaded {
                retry_after_secs, ..
            } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            },
            InferError::Unloaded(_) => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            },
            InferError::Invalid(_) => Self::bad_request(message),
            InferError::Failed(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        let message = e.to_string();
        match e {
            MemoryError::TooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, message),
            MemoryError::Busy { .. } => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            },
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(status, "request body is larger than the configured limit (limits.max_request_bytes or limits.max_model_bytes)");
        }
        Self::new(status, r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(r: axum::extract::multipart::MultipartRejection) -> Self {
        Self::new(
            r.status(),
            format!(
                "{}; send the model as multipart/form-data with a `model` part",
                r.body_text()
            ),
        )
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

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let message = e.to_string();
        match e {
            CallError::BadOutput(_) | CallError::Invoke(InvokeError::OutputTooLarge { .. }) => {
                Self::new(StatusCode::BAD_GATEWAY, message)
            }
            CallError::Invoke(InvokeError::Timeout { .. }) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, message)
            }
            CallError::Invoke(InvokeError::Busy { .. }) => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            },
            CallError::Invoke(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

/// The most bytes of a non-JSON error body that [`json_errors`] wraps; longer text is cut.
const MAX_WRAPPED_ERROR: usize = 4096;

/// Makes every error response JSON: axum's own rejections (a path that is not UTF-8, a method
/// the route does not serve, a malformed query) answer `text/plain`; this wraps their text as
/// `{"error": "..."}`. A function's own response (marked `x-function`) is left as the guest
/// wrote it.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || response.headers().contains_key("x-function")
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_WRAPPED_ERROR).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let body = serde_json::to_vec(&serde_json::json!({ "error": text }))
        .unwrap_or_else(|_| br#"{"error":"request failed"}"#.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}
