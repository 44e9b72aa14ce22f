//! Runs: start (202), read (optionally waiting until the run settles), list per
//! orchestration, approve or reject a waiting approval step, cancel.

use super::body::{ApiQuery, JSON_LIMIT, read_limited};
use super::openapi::{Operation, Routes};
use super::{ApiError, AppState};
use crate::runs::{MAX_RUN_INPUT_BYTES, RunView};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;
use trellis_types::{Decision, List, Run, RunFilter, StartRun, StartedRun};

/// A start body holds a run input of up to 1 MiB plus its `{"input": …}` envelope.
const START_LIMIT: usize = MAX_RUN_INPUT_BYTES + 1024;

/// The longest a `GET /v1/runs/{id}?waitMs=` holds the request open.
const MAX_WAIT: Duration = Duration::from_millis(trellis_types::MAX_WAIT_MS);

/// Runs a list returns when no `limit` is given, and at most.
const DEFAULT_LIST_LIMIT: u32 = 100;
const MAX_LIST_LIMIT: u32 = 1000;

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Operation::post("/orchestrations/{id}/runs", "startRun", "Start a run of the orchestration's current version")
                .tag("runs")
                .body::<StartRun>()
                .returns::<StartedRun>(StatusCode::ACCEPTED)
                .errors(&[404, 413]),
            start,
        )
        .add(
            Operation::get("/orchestrations/{id}/runs", "listRuns", "List an orchestration's runs, newest first, without their steps")
                .tag("runs")
                .query::<RunFilter>()
                .returns::<List<Run>>(StatusCode::OK)
                .errors(&[404]),
            list,
        )
        .add(
            Operation::get("/runs/{runId}", "getRun", "Get a run with every step")
                .describe("With `waitMs`, the request is held until the run is no longer `pending` or `running` (it finished, or waits on an approval), up to that long (at most 60000), so clients need not poll.")
                .tag("runs")
                .query::<FetchQuery>()
                .returns::<Run>(StatusCode::OK)
                .errors(&[404]),
            fetch,
        )
        .add(
            Operation::post("/runs/{runId}/steps/{stepId}/approve", "approveStep", "Approve a waiting approval step")
                .tag("runs")
                .body::<Decision>()
                .returns::<Run>(StatusCode::OK)
                .errors(&[404, 409, 413]),
            approve,
        )
        .add(
            Operation::post("/runs/{runId}/steps/{stepId}/reject", "rejectStep", "Reject a waiting approval step")
                .tag("runs")
                .body::<Decision>()
                .returns::<Run>(StatusCode::OK)
                .errors(&[404, 409, 413]),
            reject,
        )
        .add(
            Operation::post("/runs/{runId}/cancel", "cancelRun", "Cancel an unfinished run")
                .tag("runs")
                .returns::<Run>(StatusCode::OK)
                .errors(&[404, 409]),
            cancel,
        )
}

async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<StartedRun>), ApiError> {
    let bytes = read_limited(body, START_LIMIT).await?;
    let body: StartRun = super::body::parse_json(&bytes)?;
    let run = state.runs.start(&id, body.input).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StartedRun {
            id: run.id,
            status: run.status,
        }),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FetchQuery {
    /// Hold the request until the run is no longer pending or running, up to this
    /// many milliseconds (at most 60000).
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

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RunFilter>,
) -> Result<Json<List<RunView>>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT).clamp(1, MAX_LIST_LIMIT);
    Ok(Json(List {
        data: state.runs.list(&id, query.status, limit).await?,
    }))
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
    let body: Decision = super::body::parse_json(&bytes)?;
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
