//! Unauthenticated operational routes: liveness, Prometheus metrics and the OpenAPI
//! document. None reveals anything about stored functions or their data.

use super::AppState;
use super::openapi::{Operation, Routes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use schemars::JsonSchema;
use serde::Serialize;
use std::fmt::Write;

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Operation::get("/healthz", "health", "Liveness and the storage backend")
                .public()
                .returns::<Health>(StatusCode::OK),
            healthz,
        )
        .add(
            Operation::get("/metrics", "metrics", "Prometheus metrics (text format)")
                .public()
                .returns_nothing(StatusCode::OK),
            metrics,
        )
        .add(
            Operation::get("/openapi.json", "openapi", "This document (OpenAPI 3.1)")
                .public()
                .returns_nothing(StatusCode::OK),
            openapi,
        )
}

#[derive(Serialize, JsonSchema)]
struct Health {
    /// Always `ok` when the server answers.
    status: &'static str,
    /// `sqlite` or `postgres`.
    backend: &'static str,
}

async fn healthz(State(state): State<AppState>) -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        backend: state.store.backend(),
    })
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi_json(),
    )
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
