//! The one error shape of every route.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{ "error": { "code", "message" } }`, with a fitting HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A stable code for programs and a message for people. Neither ever holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `orchestration_not_found`, `invalid_definition`.
    pub code: String,
    /// What happened and, where it helps, what to do about it.
    pub message: String,
    /// Route-specific extras: a function failure adds `retryable` and `logs`.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}
