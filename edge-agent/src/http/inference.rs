//! OIP v2 model routes: metadata, readiness and inference, in JSON or with Triton's binary
//! tensor extension.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use inference::{BackendKind, TensorInfo};
use serde_json::{json, Map, Value};

use super::codec::{self, InferRequestBody, InferResponseBody, ResponseOutput};
use super::error::ApiError;
use super::extract::{Path, Version};
use super::flat::JSON_MEMORY_FACTOR;
use super::AppState;
use crate::service::{InferError, InferRequest, LoadedModel};

/// Header naming the length of the JSON part of a binary request or response.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

fn tensor_metadata(t: &TensorInfo) -> Value {
    json!({
        "name": t.name,
        "datatype": codec::datatype(t.element_type),
        "shape": t.shape_with_wildcards().unwrap_or_default(),
    })
}

fn metadata(state: &AppState, model: &LoadedModel) -> Result<Json<Value>, ApiError> {
    let summary = state.repo.summary(&model.name)?;
    let meta = model.model.metadata();
    Ok(Json(json!({
        "name": model.name,
        "versions": summary.versions.iter().filter(|v| v.ready).map(|v| v.version.to_string()).collect::<Vec<_>>(),
        "platform": match model.model.backend() {
            BackendKind::Tract => "tract_onnx",
            BackendKind::Ort => "onnxruntime_onnx",
        },
        "inputs": meta.inputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
        "outputs": meta.outputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
    })))
}

/// `GET /v2/models/{model}`.
pub async fn model_metadata(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let loaded = state.repo.resolve(&model, None)?;
    metadata(&state, &loaded)
}

/// `GET /v2/models/{model}/versions/{version}`.
pub async fn version_metadata(
    State(state): State<AppState>,
    Path((model, Version(version))): Path<(String, Version)>,
) -> Result<Json<Value>, ApiError> {
    let loaded = state.repo.resolve(&model, Some(version))?;
    metadata(&state, &loaded)
}

/// `GET /v2/models/{model}/ready`.
pub async fn model_ready(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.repo.resolve(&model, None)?;
    Ok(Json(json!({ "name": model, "ready": true })))
}

/// `GET /v2/models/{model}/versions/{version}/ready`.
pub async fn version_ready(
    State(state): State<AppState>,
    Path((model, Version(version))): Path<(String, Version)>,
) -> Result<Json<Value>, ApiError> {
    state.repo.resolve(&model, Some(version))?;
    Ok(Json(json!({ "name": model, "ready": true })))
}

/// `POST /v2/models/{model}/infer`.
pub async fn infer(
    State(state): State<AppState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let loaded = state.repo.resolve(&model, None)?;
    run(&state, loaded, None, &headers, body?).await
}

/// `POST /v2/models/{model}/versions/{version}/infer`.
pub async fn infer_version(
    State(state): State<AppState>,
    Path((model, Version(version))): Path<(String, Version)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let loaded = state.repo.resolve(&model, Some(version))?;
    run(&state, loaded, Some(version), &headers, body?).await
}

/// A decoded request: the call, the id, which outputs go back as binary, and what the body says
/// about its target.
struct Decoded {
    call: InferRequest,
    id: Option<String>,
    model_name: Option<String>,
    model_version: Option<String>,
    unknown_fields: Vec<String>,
    binary_all: bool,
    binary_outputs: Vec<String>,
}

/// Splits a body into its JSON header and the binary tensor data after it.
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    Ok(match headers.get(HEADER_LENGTH) {
        Some(v) => {
            let n: usize = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Inference-Header-Content-Length is not a number")
                })?;
            if n > body.len() {
                return Err(ApiError::bad_request(format!(
                    "Inference-Header-Content-Length is {n} but the body has {} bytes",
                    body.len()
                )));
            }
            body.split_at(n)
        }
        None => (body, &[][..]),
    })
}

/// The memory decoding and computing this body may make the agent hold: see
/// [`JSON_MEMORY_FACTOR`]; binary tensor bytes count twice (the body and the tensor).
fn memory_needed(json_part: &[u8], binary: &[u8]) -> usize {
    json_part
        .len()
        .saturating_mul(JSON_MEMORY_FACTOR)
        .saturating_add(binary.len().saturating_mul(2))
}

fn decode(json_part: &[u8], mut binary: &[u8]) -> Result<Decoded, ApiError> {
    let request: InferRequestBody = serde_json::from_slice(json_part)
        .map_err(|e| ApiError::bad_request(format!("malformed infer request JSON: {e}")))?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for mut input in request.inputs {
        let ty = codec::element_type(&input.datatype).ok_or_else(|| {
            ApiError::bad_request(format!(
                "input `{}`: unknown datatype `{}`; use BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES",
                input.name, input.datatype
            ))
        })?;
        let (shape, count) =
            codec::element_count(&input.name, &input.shape).map_err(ApiError::bad_request)?;
        let tensor = match input.parameters.get("binary_data_size") {
            Some(size) => {
                let size = size
                    .as_u64()
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "input `{}`: binary_data_size must be a non-negative integer",
                            input.name
                        ))
                    })?;
                if size > binary.len() {
                    return Err(ApiError::bad_request(format!(
                        "input `{}`: binary_data_size is {size} but only {} binary bytes remain",
                        input.name,
                        binary.len()
                    )));
                }
                let (raw, rest) = binary.split_at(size);
                binary = rest;
                codec::tensor_from_binary(&input.name, ty, &shape, count, raw)
            }
            None => {
                let data = input.data.take().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "input `{}` has neither `data` nor parameters.binary_data_size",
                        input.name
                    ))
                })?;
                codec::tensor_from_json(&input.name, ty, &shape, count, data)
            }
        }
        .map_err(ApiError::bad_request)?;
        inputs.push((input.name, tensor));
    }
    if !binary.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} bytes of binary data follow the inputs that no input claims",
            binary.len()
        )));
    }
    let flag =
        |p: &Map<String, Value>, key: &str| p.get(key).and_then(Value::as_bool).unwrap_or(false);
    let binary_all = flag(&request.parameters, "binary_data_output");
    let binary_outputs = request
        .outputs
        .iter()
        .flatten()
        .filter(|o| flag(&o.parameters, "binary_data"))
        .map(|o| o.name.clone())
        .collect();
    Ok(Decoded {
        call: InferRequest {
            inputs,
            outputs: request
                .outputs
                .map(|o| o.into_iter().map(|o| o.name).collect()),
        },
        id: request.id,
        model_name: request.model_name,
        model_version: request.model_version,
        unknown_fields: request.unknown_fields,
        binary_all,
        binary_outputs,
    })
}

/// Refuses a body whose `model_name` or `model_version` contradicts the request's target: the
/// model in the path, and the version in the path or, when the path has none, the served one.
fn check_target(
    decoded: &Decoded,
    model: &str,
    version: u64,
    path_version: Option<u64>,
) -> Result<(), ApiError> {
    if let Some(name) = decoded.model_name.as_deref().filter(|n| *n != model) {
        return Err(ApiError::bad_request(format!(
            "the body's model_name `{name}` contradicts the model in the path, `{model}`"
        )));
    }
    let Some(text) = decoded.model_version.as_deref() else {
        return Ok(());
    };
    let Version(wanted) = Version::parse(text)
        .map_err(|e| ApiError::bad_request(format!("the body's model_version: {e}")))?;
    if wanted == version {
        return Ok(());
    }
    Err(ApiError::bad_request(match path_version {
        Some(v) => format!("the body's model_version `{text}` contradicts version {v} in the path"),
        None => format!(
            "the body's model_version `{text}` contradicts the path, which names no version: \
             `{model}` serves version {version}; POST /v2/models/{model}/versions/{wanted}/infer \
             to run another"
        ),
    }))
}

async fn run(
    state: &AppState,
    loaded: Arc<LoadedModel>,
    path_version: Option<u64>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (name, version) = (loaded.name.clone(), loaded.version);
    let (json_part, binary) = match split_body(headers, &body) {
        Ok(parts) => parts,
        Err(e) => {
            state.metrics.count_request(&name, version, "invalid");
            return Err(e);
        }
    };
    let memory = state
        .request_memory
        .reserve(memory_needed(json_part, binary))
        .await;
    let _memory = match memory {
        Ok(r) => r,
        Err(e) => {
            state.metrics.count_request(&name, version, "overloaded");
            return Err(e.into());
        }
    };
    let decoded = match decode(json_part, binary)
        .and_then(|d| check_target(&d, &name, version, path_version).map(|()| d))
    {
        Ok(d) => d,
        Err(e) => {
            state.metrics.count_request(&name, version, "invalid");
            return Err(e);
        }
    };
    if !decoded.unknown_fields.is_empty() {
        tracing::debug!(
            model = %name,
            fields = ?decoded.unknown_fields,
            "infer request: ignoring unknown top-level fields"
        );
    }
    drop(body);
    let result = loaded.infer(decoded.call).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(InferError::Invalid(_)) => "invalid",
        Err(InferError::Overloaded { .. } | InferError::Unloaded(_)) => "overloaded",
        Err(InferError::Failed(_)) => "error",
    };
    state.metrics.count_request(&name, version, outcome);
    let response = result?;

    let mut binary = Vec::new();
    let outputs = response
        .outputs
        .into_iter()
        .map(|(out_name, tensor)| {
            let as_binary = decoded.binary_all || decoded.binary_outputs.contains(&out_name);
            let mut parameters = Map::new();
            let data = if as_binary {
                let bytes = codec::tensor_to_binary(&tensor);
                parameters.insert("binary_data_size".to_owned(), bytes.len().into());
                binary.extend_from_slice(&bytes);
                None
            } else {
                Some(codec::tensor_to_json(&tensor))
            };
            ResponseOutput {
                name: out_name,
                shape: tensor.shape().to_vec(),
                datatype: codec::datatype(tensor.element_type()),
                parameters,
                data,
            }
        })
        .collect();
    let body = InferResponseBody {
        model_name: name,
        model_version: version.to_string(),
        id: decoded.id,
        parameters: Map::new(),
        outputs,
    };
    let json = serde_json::to_vec(&body)
        .map_err(|e| ApiError::internal(format!("cannot encode the infer response: {e}")))?;
    if binary.is_empty() {
        return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
    }
    let header_len = json.len();
    let mut bytes = json;
    bytes.extend_from_slice(&binary);
    let mut response =
        ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response();
    response
        .headers_mut()
        .insert(HEADER_LENGTH, HeaderValue::from(header_len));
    Ok(response)
}

#[cfg(test)]
#[path = "inference_tests.rs"]
mod tests;
