//! The HTTP API: OIP v2 under `/v2`, the model repository under `/v1`, `/metrics`.

mod auth;
mod codec;
mod content_length;
mod error;
mod flat;
mod functions;
mod health;
mod inference;
mod models;
mod observability;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, get, post, put};
use axum::Router;

pub use auth::{hash_token, Auth, BadTokenHash};
pub use error::ApiError;
pub(crate) use observability::REQUEST_ID;

use crate::config::AgentConfig;
use crate::metrics::Metrics;
use crate::service::{Functions, Repository, RequestMemory};

/// Everything a handler may need; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Stored and loaded models.
    pub repo: Arc<Repository>,
    /// Deployed functions.
    pub functions: Arc<Functions>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Accepted tokens.
    pub auth: Arc<Auth>,
    /// The configuration the agent runs with.
    pub config: Arc<AgentConfig>,
    /// False once shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// Source of request ids.
    pub request_ids: Arc<AtomicU64>,
    /// The memory budget of in-flight infer requests.
    pub request_memory: RequestMemory,
}

/// The whole API as a router.
pub fn app(state: AppState) -> Router {
    let limits = &state.config.limits;
    let infer_routes = Router::new()
        .route("/v2", get(health::server_metadata))
        .route("/v2/models/{model}", get(inference::model_metadata))
        .route("/v2/models/{model}/ready", get(inference::model_ready))
        .route("/v2/models/{model}/infer", post(inference::infer))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(inference::version_metadata),
        )
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(inference::version_ready),
        )
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(inference::infer_version),
        )
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", get(models::get))
        .route(
            "/v1/models/{model}/versions/{version}",
            get(models::get_version),
        )
        .route("/v1/functions", get(functions::list))
        .route("/v1/functions/{name}", get(functions::get))
        .route("/fn/{name}", any(functions::invoke))
        .route("/fn/{name}/{*path}", any(functions::invoke))
        .layer(DefaultBodyLimit::max(limits.max_request_bytes))
        .layer(middleware::from_fn_with_state(
            content_length::DeclaredLimit::new(
                limits.max_request_bytes,
                "limits.max_request_bytes",
            ),
            content_length::refuse_declared_overlong,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_infer,
        ));
    let admin_routes = Router::new()
        .route(
            "/v1/models/{model}",
            axum::routing::delete(models::delete_model),
        )
        .route(
            "/v1/models/{model}/versions/{version}",
            put(models::push).delete(models::delete_version),
        )
        .route(
            "/v1/models/{model}/versions/{version}/activate",
            post(models::activate),
        )
        .route("/v1/models/{model}/rollback", post(models::rollback))
        .layer(DefaultBodyLimit::max(limits.max_model_bytes))
        .layer(middleware::from_fn_with_state(
            content_length::DeclaredLimit::new(limits.max_model_bytes, "limits.max_model_bytes"),
            content_length::refuse_declared_overlong,
        ));
    let function_admin = Router::new()
        .route(
            "/v1/functions/{name}",
            put(functions::deploy).delete(functions::delete_function),
        )
        .route(
            "/v1/functions/{name}/versions/{version}",
            axum::routing::delete(functions::delete_version),
        )
        .route(
            "/v1/functions/{name}/versions/{version}/activate",
            post(functions::activate),
        )
        .route("/v1/functions/{name}/rollback", post(functions::rollback))
        .layer(DefaultBodyLimit::max(state.config.functions.max_wasm_bytes))
        .layer(middleware::from_fn_with_state(
            content_length::DeclaredLimit::new(
                state.config.functions.max_wasm_bytes,
                "functions.max_wasm_bytes",
            ),
            content_length::refuse_declared_overlong,
        ));
    let admin_routes =
        admin_routes
            .merge(function_admin)
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_admin,
            ));
    let open_routes = Router::new()
        .route("/v2/health/live", get(health::live))
        .route("/v2/health/ready", get(health::ready))
        .route("/metrics", get(observability::metrics))
        .route("/v1/openapi.json", get(observability::openapi));
    Router::new()
        .merge(infer_routes)
        .merge(admin_routes)
        .merge(open_routes)
        .fallback(functions::routed)
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observability::track,
        ))
        .with_state(state)
}
