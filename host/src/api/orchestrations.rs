//! `/v1/orchestrations`: create, list, get, full replace, delete. Every response is
//! masked: secrets read back as `{ "value": "********", "encrypted": true }`.

use super::body::ApiJson;
use super::{ApiError, AppState};
use crate::orchestrations::Orchestration;
use crate::orchestrations::model::Definition;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orchestrations", get(list).post(create))
        .route("/orchestrations/{id}", get(fetch).put(replace).delete(remove))
}

async fn create(
    State(state): State<AppState>,
    ApiJson(definition): ApiJson<Definition>,
) -> Result<(StatusCode, Json<Orchestration>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.orchestrations.create(definition).await?),
    ))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "data": state.orchestrations.list().await? })))
}

async fn fetch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Orchestration>, ApiError> {
    Ok(Json(state.orchestrations.get(&id).await?))
}

async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(definition): ApiJson<Definition>,
) -> Result<Json<Orchestration>, ApiError> {
    Ok(Json(state.orchestrations.update(&id, definition).await?))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.orchestrations.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
