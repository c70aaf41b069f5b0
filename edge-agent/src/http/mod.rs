//! The HTTP API: OIP v2 under `/v2`, the model repository under `/v1`, `/metrics`.

mod auth;
mod codec;
mod content_length;
mod error;
mod extract;
mod flat;
#[cfg(feature = "functions")]
mod functions;
// Without edge functions their routes answer 501 (and unknown paths 404) from a stub.
#[cfg(not(feature = "functions"))]
#[path = "functions_not_built.rs"]
mod functions;
mod health;
mod inference;
mod models;
mod observability;
mod repository;
mod routes;
mod service_errors;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::Router;

pub use auth::{hash_token, Auth, BadTokenHash};
pub use error::ApiError;
pub(crate) use observability::REQUEST_ID;
use routes::Group;
pub use routes::{route_table, Verb};

use crate::config::AgentConfig;
use crate::metrics::Metrics;
#[cfg(feature = "functions")]
use crate::service::Functions;
use crate::service::{Repository, RequestMemory};

/// Everything a handler may need; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Stored and loaded models.
    pub repo: Arc<Repository>,
    /// Deployed functions (in a build with the `functions` feature).
    #[cfg(feature = "functions")]
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

/// The whole API as a router: the routes of [`routes::table`], each group behind its
/// authentication and body limit.
pub fn app(state: AppState) -> Router {
    let limits = &state.config.limits;
    let (mut open, mut infer, mut model_admin, mut function_admin) =
        (Router::new(), Router::new(), Router::new(), Router::new());
    for route in routes::table() {
        let group = match route.group {
            Group::Open => &mut open,
            Group::Infer => &mut infer,
            Group::ModelAdmin => &mut model_admin,
            Group::FunctionAdmin => &mut function_admin,
        };
        *group = std::mem::take(group).route(route.path, route.handler);
    }
    let limited = |router: Router<AppState>, limit: usize, key: &'static str| {
        router
            .layer(DefaultBodyLimit::max(limit))
            .layer(middleware::from_fn_with_state(
                content_length::DeclaredLimit::new(limit, key),
                content_length::refuse_declared_overlong,
            ))
    };
    let infer = limited(infer, limits.max_request_bytes, "limits.max_request_bytes").route_layer(
        middleware::from_fn_with_state(state.clone(), auth::require_infer),
    );
    let admin = limited(
        model_admin,
        limits.max_model_bytes,
        "limits.max_model_bytes",
    )
    .merge(limited(
        function_admin,
        state.config.functions.max_wasm_bytes,
        "functions.max_wasm_bytes",
    ))
    .route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_admin,
    ));
    Router::new()
        .merge(infer)
        .merge(admin)
        .merge(open)
        .fallback(functions::routed)
        .layer(middleware::from_fn(error::error_responses))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observability::track,
        ))
        .with_state(state)
}
