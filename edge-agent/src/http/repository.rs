//! `POST /v2/repository/index`: Triton's model repository index (its `model_repository`
//! extension): every version of every model, pushed or from `--model-dir`, loaded or not, with
//! its state and, when it did not load, why.
//!
//! Models only: functions are not models a Triton client could load, infer on or ask about,
//! and they have their own listing (`/v1/functions`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::AppState;
use crate::service::ModelSummary;

/// Triton's state of a model version: `READY` (loaded, it serves), `UNAVAILABLE` (it failed to
/// load; `reason` says why) or `LOADING` (being pushed: stored, not yet listed as loaded).
/// Triton's `UNLOADING` never shows: dropping a version is immediate, in-flight requests
/// finish on the copy they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VersionState {
    /// Loaded; it serves.
    Ready,
    /// It failed to load.
    Unavailable,
    /// Stored a moment ago and not yet listed as loaded.
    Loading,
}

/// One row of the index, as Triton writes it.
#[derive(Debug, Clone, Serialize)]
pub struct IndexEntry {
    /// The model's name.
    pub name: String,
    /// The version, as a string (Triton's shape); absent for a model without any version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its state.
    pub state: VersionState,
    /// Why it is in that state; empty when it is ready.
    pub reason: String,
}

/// The body of an index request: Triton's `{"ready": bool}`, every field optional, the body
/// itself too (tritonclient sends none). Unknown fields are ignored, as Triton does.
fn ready_only(body: &[u8]) -> Result<bool, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the index request is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::bad_request(
            "the index request must be a JSON object, like {\"ready\": true}",
        ));
    };
    match fields.get("ready") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid value for `ready`: expected a boolean, got {other}"
        ))),
    }
}

/// The rows of one model: one per version, or one without a version when it has none.
fn rows(model: ModelSummary) -> Vec<IndexEntry> {
    if model.versions.is_empty() {
        return vec![IndexEntry {
            name: model.name,
            version: None,
            state: VersionState::Unavailable,
            reason: model.reason.unwrap_or_default(),
        }];
    }
    let name = model.name;
    model
        .versions
        .into_iter()
        .map(|v| {
            let state = match (v.ready, &v.reason) {
                (true, _) => VersionState::Ready,
                (false, Some(_)) => VersionState::Unavailable,
                (false, None) => VersionState::Loading,
            };
            IndexEntry {
                name: name.clone(),
                version: Some(v.version.to_string()),
                state,
                reason: v.reason.unwrap_or_default(),
            }
        })
        .collect()
}

/// `POST /v2/repository/index`: every model version with its state and reason, by name then
/// version; with `{"ready": true}`, only the ready ones.
pub async fn index(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<IndexEntry>>, ApiError> {
    let ready_only = ready_only(&body?)?;
    let rows = state
        .repo
        .summaries()?
        .into_iter()
        .flat_map(rows)
        .filter(|r| !ready_only || r.state == VersionState::Ready)
        .collect();
    Ok(Json(rows))
}

#[cfg(test)]
mod tests {
    use super::ready_only;

    #[test]
    fn the_request_body_is_optional_and_ready_must_be_a_boolean() {
        for (body, want) in [
            ("", Some(false)),
            ("  \n", Some(false)),
            ("{}", Some(false)),
            (r#"{"ready": true}"#, Some(true)),
            (r#"{"ready": false, "other": 1}"#, Some(false)),
            (r#"{"ready": null}"#, Some(false)),
            (r#"{"ready": "yes"}"#, None),
            (r#"{"ready": 1}"#, None),
            ("[true]", None),
            ("true", None),
            ("{", None),
            ("\u{feff}{}", None),
        ] {
            let got = ready_only(body.as_bytes()).ok();
            assert_eq!(got, want, "{body:?}");
        }
    }
}
