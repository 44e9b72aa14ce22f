//! `/v1/functions`: upload, settings, list, get, delete, invoke.

use super::body::{ApiJson, UPLOAD_LIMIT, read_limited};
use super::openapi::{Operation, Routes};
use super::{ApiError, AppState};
use crate::functions::{FunctionRecord, Invocation, PutOutcome};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::value::RawValue;
use trellis_types::{InvokeResult, List, SettingsPatch};

/// The longest `Idempotency-Key` passed on (a longer one is replaced by a fresh key).
/// The key identifies an execution, not a payload; 255 bytes fits any UUID, hash or
/// composite key a client might use.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Operation::get("/functions", "listFunctions", "List functions, sorted by id")
                .tag("functions")
                .returns::<List<FunctionRecord>>(StatusCode::OK),
            list,
        )
        .add(
            Operation::get("/functions/{functionId}", "getFunction", "Get a function's record and settings")
                .tag("functions")
                .returns::<FunctionRecord>(StatusCode::OK)
                .errors(&[404]),
            fetch,
        )
        .add(
            Operation::put("/functions/{functionId}", "uploadFunction", "Upload or replace a component")
                .describe("The body is the component's bytes (`application/wasm`, up to 50 MiB). It is validated and compiled before it is stored: 201 when created, 200 when replaced or unchanged.")
                .tag("functions")
                .wasm_body()
                .returns::<FunctionRecord>(StatusCode::CREATED)
                .errors(&[400, 413]),
            upload,
        )
        .add(
            Operation::patch("/functions/{functionId}", "updateFunctionSettings", "Change some settings, keeping the others")
                .tag("functions")
                .body::<SettingsPatch>()
                .returns::<FunctionRecord>(StatusCode::OK)
                .errors(&[404, 413]),
            update_settings,
        )
        .add(
            Operation::delete("/functions/{functionId}", "deleteFunction", "Delete a function")
                .tag("functions")
                .returns_nothing(StatusCode::NO_CONTENT)
                .errors(&[404]),
            remove,
        )
        .add(
            Operation::post("/functions/{functionId}/invoke", "invokeFunction", "Invoke a function")
                .describe("The body is the triggerParams object. A function error is 422 with its code, message, `retryable` and logs; a timeout is 504. An `Idempotency-Key` header is passed to the function.")
                .tag("functions")
                .body::<serde_json::Map<String, serde_json::Value>>()
                .returns::<InvokeResult>(StatusCode::OK)
                .errors(&[404, 413, 422, 503, 504]),
            invoke,
        )
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

async fn list(State(state): State<AppState>) -> Result<Json<List<FunctionRecord>>, ApiError> {
    Ok(Json(List {
        data: state.functions.list().await?,
    }))
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

/// The `Idempotency-Key` header, when given, is handed to the function; otherwise
/// each direct call is its own execution with a fresh key.
async fn invoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(params): ApiJson<Box<RawValue>>,
) -> Result<Json<InvokeResult<Box<RawValue>>>, ApiError> {
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
        .filter(|key| !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_BYTES)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let invocation = Invocation {
        function_id: id,
        run_id: None,
        step_id: None,
        attempt: 1,
        idempotency_key,
    };
    let outcome = state.functions.invoke(&invocation, params.get()).await?;
    Ok(Json(InvokeResult {
        output: outcome.output,
        logs: outcome.logs,
        duration_ms: outcome.duration.as_secs_f64() * 1000.0,
    }))
}
