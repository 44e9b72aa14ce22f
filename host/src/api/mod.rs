//! REST API v1. Each resource module exposes `routes()`: its handlers registered
//! together with their OpenAPI description ([`openapi`]), so the document served at
//! `/openapi.json` is the router's own. This module adds bearer auth to `/v1` and
//! `/mcp` and mounts the unauthenticated operational routes.
//!
//! Handlers talk to the services only ([`crate::functions`],
//! [`crate::orchestrations`], [`crate::runs`]): each resource module here is the
//! HTTP face of the service of the same name.

mod body;
mod error;
mod functions;
mod mcp;
pub mod openapi;
mod ops;
mod orchestrations;
mod runs;

pub use body::JSON_LIMIT;
pub use error::ApiError;
pub use mcp::McpEndpoint;

use crate::config::ApiToken;
use crate::functions::Functions;
use crate::orchestrations::Orchestrations;
use crate::runs::Runs;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use openapi::Routes;
use std::sync::OnceLock;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Shared by every handler; clones are cheap (pools and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// `sqlite` or `postgres`, for `/healthz`.
    pub backend: &'static str,
    pub functions: Functions,
    pub orchestrations: Orchestrations,
    pub runs: Runs,
    pub token: ApiToken,
    pub mcp: McpEndpoint,
}

/// Every route, with `authenticate` applied to those that need a token.
fn routes(authenticate: impl Fn(Router<AppState>) -> Router<AppState>) -> Routes {
    let v1 = functions::routes()
        .merge(orchestrations::routes())
        .merge(runs::routes())
        .map_router(&authenticate);
    Routes::new()
        .nest("/v1", v1)
        .merge(mcp::routes().map_router(&authenticate))
        .merge(ops::routes())
}

/// The OpenAPI 3.1 document of every route, as served at `/openapi.json`.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let document = openapi::document(routes(|router| router).operations());
        serde_json::to_string_pretty(&document).expect("the document is JSON")
    })
}

pub fn router(state: AppState) -> Router {
    let auth_state = state.clone();
    routes(move |router| {
        router.route_layer(middleware::from_fn_with_state(auth_state.clone(), require_token))
    })
    .into_router()
    .fallback(|| async {
        ApiError::NotFound {
            code: "route_not_found",
            message: "no such route".into(),
        }
    })
    .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
    .with_state(state)
    // Request spans at DEBUG; failures too, because a 5xx here is usually a guest
    // trap or timeout, which is the caller's business. Our own faults are logged
    // at ERROR by `ApiError::Internal`.
    .layer(
        TraceLayer::new_for_http()
            .on_response(DefaultOnResponse::new().level(Level::DEBUG))
            .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
    )
}

async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match bearer_token(request.headers()) {
        Some(token) if state.token.matches(token) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
}
