//! `/v1/models`: the mutable model repository.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Multipart, Path, Query, Version};
use super::AppState;
use crate::model_config::ModelConfig;
use crate::service::{ModelSummary, PushRequest};

/// `GET /v1/models`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ModelSummary>>, ApiError> {
    Ok(Json(state.repo.summaries()?))
}

/// `GET /v1/models/{model}`.
pub async fn get(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelSummary>, ApiError> {
    Ok(Json(state.repo.summary(&model)?))
}

/// `GET /v1/models/{model}/versions/{version}`.
pub async fn get_version(
    State(state): State<AppState>,
    Path((model, Version(version))): Path<(String, Version)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let summary = state.repo.summary(&model)?;
    let v = summary
        .versions
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| ApiError::not_found(format!("model `{model}` has no version {version}")))?;
    Ok(Json(serde_json::json!({
        "name": model,
        "active": summary.active_version == Some(version),
        "version": v,
    })))
}

/// Query of a push.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushQuery {
    /// Make the new version active (default true).
    pub activate: Option<bool>,
}

/// `PUT /v1/models/{model}/versions/{version}`: multipart with a `model` part (the ONNX
/// bytes), an optional `config` part (JSON [`ModelConfig`]) and an optional `sha256` part.
pub async fn push(
    State(state): State<AppState>,
    Path((model, Version(version))): Path<(String, Version)>,
    Query(query): Query<PushQuery>,
    Multipart(mut multipart): Multipart,
) -> Result<(StatusCode, Json<ModelSummary>), ApiError> {
    let (mut bytes, mut config, mut sha256) = (None, None, None);
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "model" => bytes = Some(field.bytes().await?.to_vec()),
            "config" => {
                let text = field.text().await?;
                let parsed: ModelConfig = serde_json::from_str(&text)
                    .map_err(|e| ApiError::bad_request(format!("invalid `config` part: {e}")))?;
                config = Some(parsed);
            }
            "sha256" => sha256 = Some(field.text().await?.trim().to_owned()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown multipart part `{other}`; expected `model`, `config` or `sha256`"
                )))
            }
        }
    }
    let bytes = bytes.ok_or_else(|| {
        ApiError::bad_request("the upload has no `model` part with the ONNX bytes")
    })?;
    let summary = state
        .repo
        .push(PushRequest {
            name: model,
            version,
            bytes,
            config: config.unwrap_or_default(),
            expected_sha256: sha256,
            activate: query.activate.unwrap_or(true),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

/// `POST /v1/models/{model}/versions/{version}/activate`.
pub async fn activate(
    State(state): State<AppState>,
    Path((model, Version(version))): Path<(String, Version)>,
) -> Result<Json<ModelSummary>, ApiError> {
    Ok(Json(state.repo.activate(&model, version).await?))
}

/// `POST /v1/models/{model}/rollback`.
pub async fn rollback(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelSummary>, ApiError> {
    Ok(Json(state.repo.rollback(&model).await?))
}

/// `DELETE /v1/models/{model}/versions/{version}`.
pub async fn delete_version(
    State(state): State<AppState>,
    Path((model, Version(version))): Path<(String, Version)>,
) -> Result<StatusCode, ApiError> {
    state.repo.delete_version(&model, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/models/{model}`.
pub async fn delete_model(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.repo.delete_model(&model).await?;
    Ok(StatusCode::NO_CONTENT)
}
