//! REST API v1. Each resource module exposes `router()`; this module adds bearer
//! auth to `/v1` and mounts the unauthenticated operational routes.

mod body;
mod error;
mod functions;
mod ops;
mod orchestrations;
mod runs;

pub use body::describe_json_error;
pub use error::ApiError;

use crate::config::ApiToken;
use crate::engine::Runs;
use crate::functions::Functions;
use crate::orchestrations::Orchestrations;
use crate::store::Store;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Shared by every handler; clones are cheap (pools and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub functions: Functions,
    pub orchestrations: Orchestrations,
    pub runs: Runs,
    pub token: ApiToken,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .merge(functions::router())
        .merge(orchestrations::router())
        .merge(runs::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .nest("/v1", v1)
        .merge(ops::router())
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
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if state.token.matches(token) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}
