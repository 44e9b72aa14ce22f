//! `/v1/functions`: upload, settings, list, get, delete, invoke.

use super::body::{ApiJson, UPLOAD_LIMIT, read_limited};
use super::{ApiError, AppState};
use crate::functions::SettingsPatch;
use crate::runtime::{Invocation, LogEntry};
use crate::store::{FunctionRecord, PutOutcome};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/functions", get(list))
        .route(
            "/functions/{function_id}",
            get(fetch).put(upload).patch(update_settings).delete(remove),
        )
        .route("/functions/{function_id}/invoke", post(invoke))
}

async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<FunctionRecord>), ApiError> {
    let bytes = read_limited(body, UPLOAD_LIMIT).await?;
    let outcome = state.functions.upload(&id, bytes).await?;
    let status = match outcome {
        PutOutcome::Created(_) => StatusCode::CREATED,
        PutOutcome::Replaced(_) | PutOutcome::Unchanged(_) => StatusCode::OK,
    };
    Ok((status, Json(outcome.into_record())))
}

async fn update_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<FunctionRecord>, ApiError> {
    Ok(Json(state.functions.update_settings(&id, patch).await?))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "data": state.functions.list().await? })))
}

async fn fetch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FunctionRecord>, ApiError> {
    Ok(Json(state.functions.get(&id).await?))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.functions.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InvokeResponse {
    output: Box<RawValue>,
    logs: Vec<LogEntry>,
    duration_ms: f64,
}

/// The `Idempotency-Key` header, when given, is handed to the function; otherwise
/// each direct call is its own execution with a fresh key.
async fn invoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(params): ApiJson<Box<RawValue>>,
) -> Result<Json<InvokeResponse>, ApiError> {
    // Passed to the function as the text it came in: parsed once, to validate.
    if !params.get().starts_with('{') {
        return Err(ApiError::bad_request(
            "invalid_params",
            "triggerParams must be a JSON object",
        ));
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        // The key identifies an execution, not a payload; 255 bytes fits any UUID,
        // hash or composite key a client might use.
        .filter(|key| !key.is_empty() && key.len() <= 255)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let invocation = Invocation {
        function_id: id,
        run_id: None,
        step_id: None,
        attempt: 1,
        idempotency_key,
    };
    let outcome = state.functions.invoke(&invocation, params.get()).await?;
    Ok(Json(InvokeResponse {
        output: outcome.output,
        logs: outcome.logs,
        duration_ms: outcome.duration.as_secs_f64() * 1000.0,
    }))
}
