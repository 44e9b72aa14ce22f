//! `/v1/orchestrations`: create, list, get, full replace, delete. Every response is
//! masked: secrets read back as `{ "value": "********", "encrypted": true }`.

use super::body::ApiJson;
use super::openapi::{Operation, Routes};
use super::{ApiError, AppState};
use crate::orchestrations::{Orchestration, OrchestrationsError, body};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use trellis_types::{Definition, List};

/// Said once, for every route that takes a definition.
const DEFINITION_RULES: &str = "Compute steps may carry `encryptedParams`: `{ \"value\": \"…\", \"encrypt\": true }` stores a new secret, encrypted before it reaches the database. Reads show it as `{ \"value\": \"********\", \"encrypted\": true }`; send that entry back unchanged on update to keep the stored secret, omit it to remove it. A step sent without `id` gets one (its functionId, or its type, with `-2`, `-3`… when taken), returned in the response. A missing or invalid field is `400 invalid_definition` naming the step and the field.";

/// What an update adds: a read may be sent back.
const SEND_BACK: &str = "What a read returned may be sent back, edited: `id` must name this orchestration, `version` must still be current (else `409 conflict`: read again), `createdAt` and `updatedAt` are ignored.";

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Operation::post(
                "/orchestrations",
                "createOrchestration",
                "Create an orchestration",
            )
            .describe(DEFINITION_RULES)
            .tag("orchestrations")
            .body::<Definition>()
            .returns::<Orchestration>(StatusCode::CREATED)
            .errors(&[413]),
            create,
        )
        .add(
            Operation::get(
                "/orchestrations",
                "listOrchestrations",
                "List orchestrations, masked",
            )
            .tag("orchestrations")
            .returns::<List<Orchestration>>(StatusCode::OK),
            list,
        )
        .add(
            Operation::get(
                "/orchestrations/{id}",
                "getOrchestration",
                "Get an orchestration, masked",
            )
            .tag("orchestrations")
            .returns::<Orchestration>(StatusCode::OK)
            .errors(&[404]),
            fetch,
        )
        .add(
            Operation::put(
                "/orchestrations/{id}",
                "updateOrchestration",
                "Replace an orchestration (version + 1)",
            )
            .describe(update_description())
            .tag("orchestrations")
            .body::<Definition>()
            .returns::<Orchestration>(StatusCode::OK)
            .errors(&[404, 409, 413]),
            replace,
        )
        .add(
            Operation::delete(
                "/orchestrations/{id}",
                "deleteOrchestration",
                "Delete an orchestration (its runs go on)",
            )
            .tag("orchestrations")
            .returns_nothing(StatusCode::NO_CONTENT)
            .errors(&[404]),
            remove,
        )
}

fn update_description() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| format!("{DEFINITION_RULES} {SEND_BACK}"))
}

/// The definition in a body, with errors that name the step and field.
fn definition(value: Value) -> Result<Definition, ApiError> {
    body::definition(value).map_err(|invalid| OrchestrationsError::Invalid(invalid).into())
}

async fn create(
    State(state): State<AppState>,
    ApiJson(sent): ApiJson<Value>,
) -> Result<(StatusCode, Json<Orchestration>), ApiError> {
    let created = state.orchestrations.create(definition(sent)?).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list(State(state): State<AppState>) -> Result<Json<List<Orchestration>>, ApiError> {
    Ok(Json(List {
        data: state.orchestrations.list().await?,
    }))
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
    ApiJson(sent): ApiJson<Value>,
) -> Result<Json<Orchestration>, ApiError> {
    let body::Update {
        definition,
        read_version,
    } = body::update(sent, &id).map_err(OrchestrationsError::Invalid)?;
    Ok(Json(
        state.orchestrations.update(&id, definition, read_version).await?,
    ))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.orchestrations.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
