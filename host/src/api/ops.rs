//! Unauthenticated operational routes: liveness and Prometheus metrics. Neither
//! reveals anything about stored functions or their data.

use super::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok", "backend": state.store.backend() }))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let runtime = state.functions.runtime();
    let mut text = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "trellis_component_compilations_total",
        "Components compiled by this process (artifact cache misses).",
        runtime.compilations(),
    );
    counter(
        "trellis_artifact_cache_hits_total",
        "Components loaded from the on-disk artifact cache without compiling.",
        runtime.artifact_cache_hits(),
    );
    counter(
        "trellis_run_transactions_total",
        "Database transactions this process issued for runs (start, claim, step changes, lease renewals, decisions).",
        crate::store::RUN_TRANSACTIONS.load(std::sync::atomic::Ordering::Relaxed),
    );
    let _ = writeln!(
        text,
        "# HELP trellis_invocations_in_flight Invocations holding a slot now.\n# TYPE trellis_invocations_in_flight gauge\ntrellis_invocations_in_flight {}",
        runtime.in_flight()
    );
    let pooling = u64::from(runtime.allocator() == crate::runtime::Allocator::Pooling);
    let _ = writeln!(
        text,
        "# HELP trellis_pooling_allocator 1 when the pooling allocator is in use.\n# TYPE trellis_pooling_allocator gauge\ntrellis_pooling_allocator {pooling}"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
