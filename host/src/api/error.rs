//! The one error type at the HTTP edge: a stable snake_case `code`, a message meant
//! for the caller, one status per variant. Internal details are logged, never
//! returned.

use crate::functions::{FunctionsError, InvokeError, LogEntry};
use crate::orchestrations::OrchestrationsError;
use crate::runs::RunsError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or names something invalid.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no bearer token, or the wrong one.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 409: the resource changed underneath the request, or is not in a state that
    /// allows it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 404.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 405: the route exists, the method does not.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 413: the body is over the route's limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 413: a part of the body is over its own limit.
    #[error("{0}")]
    PayloadTooLargeBecause(String),
    /// 422, 500 or 504: the function ran and failed; carries its logs.
    #[error(transparent)]
    Invoke(InvokeError),
    /// 500: our fault; the details go to the log only.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl From<FunctionsError> for ApiError {
    fn from(error: FunctionsError) -> Self {
        match error {
            FunctionsError::NotFound(_) => Self::NotFound {
                code: "function_not_found",
                message: error.to_string(),
            },
            FunctionsError::InvalidId(_) => Self::bad_request("invalid_function_id", error.to_string()),
            FunctionsError::InvalidComponent(_) => Self::bad_request("invalid_wasm", error.to_string()),
            FunctionsError::InvalidSettings(message) => Self::bad_request("invalid_settings", message),
            FunctionsError::Invoke(InvokeError::Internal(internal)) | FunctionsError::Internal(internal) => {
                Self::Internal(internal)
            }
            FunctionsError::Invoke(invoke) => Self::Invoke(invoke),
        }
    }
}

impl From<OrchestrationsError> for ApiError {
    fn from(error: OrchestrationsError) -> Self {
        let message = error.to_string();
        match error {
            OrchestrationsError::NotFound(_) => Self::NotFound {
                code: "orchestration_not_found",
                message,
            },
            OrchestrationsError::Invalid(_) => Self::bad_request("invalid_definition", message),
            OrchestrationsError::InvalidParam(_) => Self::bad_request("invalid_encrypted_params", message),
            OrchestrationsError::UnknownFunction { .. } => Self::bad_request("unknown_function", message),
            OrchestrationsError::Conflict(_) => Self::Conflict {
                code: "conflict",
                message,
            },
            OrchestrationsError::Internal(internal) => Self::Internal(internal),
        }
    }
}

impl From<RunsError> for ApiError {
    fn from(error: RunsError) -> Self {
        let message = error.to_string();
        match error {
            RunsError::NotFound(_) => Self::NotFound {
                code: "run_not_found",
                message,
            },
            RunsError::OrchestrationNotFound(_) => Self::NotFound {
                code: "orchestration_not_found",
                message,
            },
            RunsError::StepNotFound { .. } => Self::NotFound {
                code: "step_not_found",
                message,
            },
            RunsError::NotAnApproval(_) => Self::bad_request("not_an_approval_step", message),
            RunsError::InvalidInput(_) => Self::bad_request("invalid_input", message),
            RunsError::InputTooLarge(_) => Self::PayloadTooLargeBecause(message),
            RunsError::Conflict(_) => Self::Conflict {
                code: "run_state_conflict",
                message,
            },
            RunsError::Internal(internal) => Self::Internal(internal),
        }
    }
}

fn invoke_status(error: &InvokeError) -> StatusCode {
    match error {
        InvokeError::Function { .. }
        | InvokeError::ScratchFull { .. }
        | InvokeError::OutputTooLarge { .. }
        | InvokeError::InvalidOutput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        InvokeError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        InvokeError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        InvokeError::Trapped { .. } | InvokeError::OutOfMemory { .. } | InvokeError::Internal(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn body(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest { code, message } => body(StatusCode::BAD_REQUEST, code, message),
            Self::Unauthorized => {
                let mut response = body(StatusCode::UNAUTHORIZED, "unauthorized", self.to_string());
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
                response
            }
            Self::NotFound { code, message } => body(StatusCode::NOT_FOUND, code, message),
            Self::Conflict { code, message } => body(StatusCode::CONFLICT, code, message),
            Self::MethodNotAllowed => body(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                self.to_string(),
            ),
            Self::PayloadTooLargeBecause(message) => {
                body(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
            }
            Self::PayloadTooLarge { .. } => body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                self.to_string(),
            ),
            Self::Invoke(error) => {
                let logs: &[LogEntry] = error.logs();
                let status = invoke_status(&error);
                let response = json!({ "error": {
                    "code": error.code(),
                    "message": error.to_string(),
                    "retryable": error.retryable(),
                    "logs": logs,
                }});
                (status, Json(response)).into_response()
            }
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log".into(),
                )
            }
        }
    }
}
