//! Runs: start (202), read (optionally waiting until the run settles), list per
//! orchestration, approve or reject a waiting approval step, cancel.

use super::body::{ApiQuery, JSON_LIMIT, read_limited};
use super::{ApiError, AppState};
use crate::engine::RunView;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// A start body holds a run input of up to 1 MiB plus its `{"input": …}` envelope.
const START_LIMIT: usize = crate::engine::MAX_RUN_INPUT_BYTES + 1024;

/// The longest a `GET /v1/runs/{id}?waitMs=` holds the request open.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orchestrations/{id}/runs", get(list).post(start))
        .route("/runs/{run_id}", get(fetch))
        .route("/runs/{run_id}/steps/{step_id}/approve", post(approve))
        .route("/runs/{run_id}/steps/{step_id}/reject", post(reject))
        .route("/runs/{run_id}/cancel", post(cancel))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    input: Option<Value>,
}

async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = read_limited(body, START_LIMIT).await?;
    let body: StartBody = super::body::parse_json(&bytes)?;
    let run = state.runs.start(&id, body.input).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": run.id, "status": run.status })),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FetchQuery {
    /// Hold the request until the run is no longer pending or running, up to this long.
    wait_ms: Option<u64>,
}

async fn fetch(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    ApiQuery(query): ApiQuery<FetchQuery>,
) -> Result<Json<RunView>, ApiError> {
    let run = match query.wait_ms {
        Some(ms) => {
            let wait = Duration::from_millis(ms).min(MAX_WAIT);
            state.runs.wait(&run_id, wait).await?
        }
        None => state.runs.get(&run_id).await?,
    };
    Ok(Json(run))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(json!({ "data": state.runs.list(&id, limit).await? })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    comment: Option<String>,
}

async fn approve(
    State(state): State<AppState>,
    Path((run_id, step_id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<RunView>, ApiError> {
    decide(state, run_id, step_id, true, body).await
}

async fn reject(
    State(state): State<AppState>,
    Path((run_id, step_id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<RunView>, ApiError> {
    decide(state, run_id, step_id, false, body).await
}

async fn decide(
    state: AppState,
    run_id: String,
    step_id: String,
    approved: bool,
    body: Body,
) -> Result<Json<RunView>, ApiError> {
    let bytes = read_limited(body, JSON_LIMIT).await?;
    let body: DecisionBody = super::body::parse_json(&bytes)?;
    Ok(Json(
        state
            .runs
            .decide(&run_id, &step_id, approved, body.comment)
            .await?,
    ))
}

async fn cancel(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(state.runs.cancel(&run_id).await?))
}
