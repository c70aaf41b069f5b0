//! Every route the agent serves, in one table: [`super::app`] builds the router from it, and
//! a test (`tests/all/routes.rs`) checks it against `openapi.json` both ways.
//!
//! Manifest routes of functions are not here: they are the router's fallback, resolved per
//! request from what is deployed.

use axum::handler::Handler;
use axum::routing::{any, delete, get, post, put, MethodRouter};

use super::{functions, health, inference, models, observability, repository, AppState};

/// Who may call a route, and which body limit applies: each group is one sub-router with its
/// own layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// No token: health, `/metrics`, the OpenAPI document.
    Open,
    /// The `infer` role; bodies up to `limits.max_request_bytes`.
    Infer,
    /// The `admin` role; bodies up to `limits.max_model_bytes`.
    ModelAdmin,
    /// The `admin` role; bodies up to `functions.max_wasm_bytes`.
    FunctionAdmin,
}

/// The HTTP method(s) a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET` (and `HEAD`).
    Get,
    /// `PUT`.
    Put,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
    /// Every method (a function call).
    Any,
}

/// One route: its group, method and path (axum syntax), and its handler.
pub struct Route {
    /// Who may call it.
    pub group: Group,
    /// Its method.
    pub verb: Verb,
    /// Its path, e.g. `/v1/models/{model}`.
    pub path: &'static str,
    /// The handler for `verb`.
    pub handler: MethodRouter<AppState>,
}

fn route<H, T>(group: Group, verb: Verb, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let handler = match verb {
        Verb::Get => get(handler),
        Verb::Put => put(handler),
        Verb::Post => post(handler),
        Verb::Delete => delete(handler),
        Verb::Any => any(handler),
    };
    Route {
        group,
        verb,
        path,
        handler,
    }
}

/// Each route's method and path, as the router serves them (axum path syntax), in table order.
pub fn route_table() -> Vec<(Verb, &'static str)> {
    table().into_iter().map(|r| (r.verb, r.path)).collect()
}

/// The table.
pub fn table() -> Vec<Route> {
    use Group::{FunctionAdmin, Infer, ModelAdmin, Open};
    use Verb::{Any, Delete, Get, Post, Put};
    vec![
        route(Open, Get, "/v2/health/live", health::live),
        route(Open, Get, "/v2/health/ready", health::ready),
        route(Open, Get, "/metrics", observability::metrics),
        route(Open, Get, "/v1/openapi.json", observability::openapi),
        route(Infer, Get, "/v2", health::server_metadata),
        route(Infer, Get, "/v2/models/{model}", inference::model_metadata),
        route(
            Infer,
            Get,
            "/v2/models/{model}/ready",
            inference::model_ready,
        ),
        route(Infer, Post, "/v2/models/{model}/infer", inference::infer),
        route(
            Infer,
            Get,
            "/v2/models/{model}/versions/{version}",
            inference::version_metadata,
        ),
        route(
            Infer,
            Get,
            "/v2/models/{model}/versions/{version}/ready",
            inference::version_ready,
        ),
        route(
            Infer,
            Post,
            "/v2/models/{model}/versions/{version}/infer",
            inference::infer_version,
        ),
        route(Infer, Post, "/v2/repository/index", repository::index),
        route(Infer, Get, "/v1/models", models::list),
        route(Infer, Get, "/v1/models/{model}", models::get),
        route(
            Infer,
            Get,
            "/v1/models/{model}/versions/{version}",
            models::get_version,
        ),
        route(Infer, Get, "/v1/functions", functions::list),
        route(Infer, Get, "/v1/functions/{name}", functions::get),
        route(Infer, Any, "/fn/{name}", functions::invoke),
        route(Infer, Any, "/fn/{name}/{*path}", functions::invoke),
        route(
            ModelAdmin,
            Delete,
            "/v1/models/{model}",
            models::delete_model,
        ),
        route(
            ModelAdmin,
            Put,
            "/v1/models/{model}/versions/{version}",
            models::push,
        ),
        route(
            ModelAdmin,
            Delete,
            "/v1/models/{model}/versions/{version}",
            models::delete_version,
        ),
        route(
            ModelAdmin,
            Post,
            "/v1/models/{model}/versions/{version}/activate",
            models::activate,
        ),
        route(
            ModelAdmin,
            Post,
            "/v1/models/{model}/rollback",
            models::rollback,
        ),
        route(
            FunctionAdmin,
            Put,
            "/v1/functions/{name}",
            functions::deploy,
        ),
        route(
            FunctionAdmin,
            Delete,
            "/v1/functions/{name}",
            functions::delete_function,
        ),
        route(
            FunctionAdmin,
            Delete,
            "/v1/functions/{name}/versions/{version}",
            functions::delete_version,
        ),
        route(
            FunctionAdmin,
            Post,
            "/v1/functions/{name}/versions/{version}/activate",
            functions::activate,
        ),
        route(
            FunctionAdmin,
            Post,
            "/v1/functions/{name}/rollback",
            functions::rollback,
        ),
    ]
}
