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
        backend: state.backend,
    })
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi_json(),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let functions = state.functions.metrics();
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
        functions.compilations,
    );
    counter(
        "trellis_artifact_cache_hits_total",
        "Components loaded from the on-disk artifact cache without compiling.",
        functions.artifact_cache_hits,
    );
    counter(
        "trellis_run_transactions_total",
        "Database transactions this process issued for runs (start, claim, step changes, lease renewals, decisions).",
        state.runs.transactions(),
    );
    let _ = writeln!(
        text,
        "# HELP trellis_invocations_in_flight Invocations holding a slot now.\n# TYPE trellis_invocations_in_flight gauge\ntrellis_invocations_in_flight {}",
        functions.in_flight
    );
    let pooling = u64::from(functions.pooling_allocator);
    let _ = writeln!(
        text,
        "# HELP trellis_pooling_allocator 1 when the pooling allocator is in use.\n# TYPE trellis_pooling_allocator gauge\ntrellis_pooling_allocator {pooling}"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
