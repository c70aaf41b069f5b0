//! The function routes of an agent built without edge functions (cargo feature `functions`
//! off: no wasmtime, no cranelift). The routes stay in the table, so the API is the same in
//! every build, and answer 501 Not Implemented saying why; the fallback answers 404 like any
//! unknown path, since no function can have declared a route.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// What every function route answers in this build.
pub const NOT_BUILT: &str = "this agent was built without edge functions (cargo feature \
    `functions` of edge-agent); /v1/functions and /fn are not available";

fn not_built() -> Response {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, NOT_BUILT).into_response()
}

/// `GET /v1/functions`: 501.
pub async fn list() -> Response {
    not_built()
}

/// `GET /v1/functions/{name}`: 501.
pub async fn get() -> Response {
    not_built()
}

/// `PUT /v1/functions/{name}`: 501.
pub async fn deploy() -> Response {
    not_built()
}

/// `POST /v1/functions/{name}/versions/{version}/activate`: 501.
pub async fn activate() -> Response {
    not_built()
}

/// `POST /v1/functions/{name}/rollback`: 501.
pub async fn rollback() -> Response {
    not_built()
}

/// `DELETE /v1/functions/{name}`: 501.
pub async fn delete_function() -> Response {
    not_built()
}

/// `DELETE /v1/functions/{name}/versions/{version}`: 501.
pub async fn delete_version() -> Response {
    not_built()
}

/// `/fn/{name}/...`, every method: 501.
pub async fn invoke() -> Response {
    not_built()
}

/// The fallback: 404, as for any unknown path.
pub async fn routed() -> Response {
    ApiError::not_found("no such route; see /v1/openapi.json and the OIP v2 /v2 routes")
        .into_response()
}
