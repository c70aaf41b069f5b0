//! `/v1/functions`: deploy, list, activate, roll back and delete functions; `/fn/{name}/...`
//! and manifest routes: call them (WAGI).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use functions_runtime::wagi::CgiRequest;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Multipart, Path, Query, Version};
use super::observability::RequestId;
use super::AppState;
use crate::config::Role;
use crate::service::{DeployRequest, FunctionManifest, FunctionSummary, LoadedFunction};

/// `GET /v1/functions`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<FunctionSummary>>, ApiError> {
    Ok(Json(state.functions.summaries()?))
}

/// `GET /v1/functions/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FunctionSummary>, ApiError> {
    Ok(Json(state.functions.summary(&name)?))
}

/// Query of a deploy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployQuery {
    /// Make the new version active (default true).
    pub activate: Option<bool>,
}

/// `PUT /v1/functions/{name}`: multipart with a `wasm` part (the module), an optional
/// `manifest` part (JSON [`FunctionManifest`]) and an optional `sha256` part. Creates the next
/// version.
pub async fn deploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<DeployQuery>,
    Multipart(mut multipart): Multipart,
) -> Result<(StatusCode, Json<FunctionSummary>), ApiError> {
    let (mut wasm, mut manifest, mut sha256) = (None, None, None);
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        let part = field.name().unwrap_or_default().to_owned();
        match part.as_str() {
            "wasm" => wasm = Some(field.bytes().await.map_err(upload_error)?.to_vec()),
            "manifest" => {
                let text = field.text().await.map_err(upload_error)?;
                manifest = Some(FunctionManifest::from_json(&text)?);
            }
            "sha256" => sha256 = Some(field.text().await.map_err(upload_error)?.trim().to_owned()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected multipart part `{other}`; send `wasm`, `manifest` and optionally `sha256`"
                )))
            }
        }
    }
    let wasm = wasm.ok_or_else(|| ApiError::bad_request("missing the `wasm` part"))?;
    let summary = state
        .functions
        .deploy(DeployRequest {
            name,
            wasm,
            manifest: manifest.unwrap_or_default(),
            activate: query.activate.unwrap_or(true),
            expected_sha256: sha256,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

/// A failed read of a deploy's multipart body; too large names the function upload limit.
fn upload_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "module upload is larger than functions.max_wasm_bytes",
        );
    }
    super::error::multipart_error(&e)
}

/// `POST /v1/functions/{name}/versions/{version}/activate`.
pub async fn activate(
    State(state): State<AppState>,
    Path((name, Version(version))): Path<(String, Version)>,
) -> Result<Json<FunctionSummary>, ApiError> {
    Ok(Json(state.functions.activate(&name, version).await?))
}

/// `POST /v1/functions/{name}/rollback`.
pub async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FunctionSummary>, ApiError> {
    Ok(Json(state.functions.rollback(&name).await?))
}

/// `DELETE /v1/functions/{name}`.
pub async fn delete_function(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.functions.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/functions/{name}/versions/{version}`.
pub async fn delete_version(
    State(state): State<AppState>,
    Path((name, Version(version))): Path<(String, Version)>,
) -> Result<StatusCode, ApiError> {
    state.functions.delete_version(&name, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `ANY /fn/{name}` and `ANY /fn/{name}/{*path}`: calls the active version.
pub async fn invoke(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix("/fn/").unwrap_or_default();
    let (name, path_info) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let function = match state.functions.active(name) {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let script = format!("/fn/{name}");
    call(&state, function, script, path_info.to_owned(), request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The fallback: a manifest route (checked for the `infer` role), else 404.
pub async fn routed(State(state): State<AppState>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let matched = state.functions.route(
        host.as_deref(),
        request.method().as_str(),
        request.uri().path(),
    );
    let Some((function, prefix, path_info)) = matched else {
        return ApiError::not_found(
            "no such route; see /v1/openapi.json, the OIP v2 /v2 routes and /fn/{function}",
        )
        .into_response();
    };
    if let Err(e) = state.auth.check(request.headers(), Role::Infer) {
        return e.into_response();
    }
    call(&state, function, prefix, path_info, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn call(
    state: &AppState,
    function: std::sync::Arc<LoadedFunction>,
    script_name: String,
    path_info: String,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = state.config.limits.max_request_bytes;
    if let Some(refused) = super::content_length::check_declared_length(
        &parts.headers,
        limit,
        "limits.max_request_bytes",
    ) {
        return Ok(refused);
    }
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than limits.max_request_bytes",
        )
    })?;
    let cgi = CgiRequest {
        method: parts.method.to_string(),
        script_name,
        path_info,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        content_length: body.len(),
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
    };
    let tag = format!("{}/{}", function.name, function.version);
    let result = state.functions.call(function, cgi, body).await?;
    let out = result.response;
    let mut response = Response::new(Body::from(out.body));
    *response.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (k, v) in out.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::from_str(&v)) {
            headers.append(k, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&tag) {
        headers.insert("x-function", v);
    }
    Ok(response)
}
