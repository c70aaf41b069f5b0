//! `/v2/health/*` and `/v2`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// `GET /v2/health/live`: the process answers.
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// `GET /v2/health/ready`: the agent is not shutting down and, with `readiness.strict` (the
/// default), no model fails its requests because a load failed (its active version, or the
/// model-dir model as a whole: see [`crate::service::Repository::unready`]). The body says
/// which models failed and why (`unavailable`), also when strictness is off and the answer is
/// 200.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let serving = state.ready.load(Ordering::Acquire);
    let unavailable = state.repo.unready();
    let ready = serving && (unavailable.is_empty() || !state.config.readiness.strict);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({ "ready": ready });
    if !serving {
        body["reason"] = json!("shutting down");
    }
    if !unavailable.is_empty() {
        body["unavailable"] = json!(unavailable);
    }
    (status, Json(body))
}

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "edge-agent",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_repository"],
    }))
}
