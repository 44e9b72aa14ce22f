//! The Trellis REST API (v1) as Rust types: every request body and every response
//! the server sends, defined once. The server serialises these, `trellis-client`
//! deserialises them, the MCP tools take them as arguments, and the OpenAPI document
//! and the TypeScript SDK's types are generated from their JSON Schemas, so none of
//! them can drift from another.
//!
//! JSON fields are camelCase. Secrets never travel back: every read shows an
//! encrypted param as [`ParamEntry::masked`].
#![deny(missing_docs)]

mod error;
mod function;
mod orchestration;
mod run;

pub use error::{ErrorBody, ErrorDetail};
pub use function::{
    Function, FunctionSettings, InvokeResult, LogEntry, LogLevel, LogSource, MAX_FUNCTION_TIMEOUT_MS,
    SettingsPatch,
};
pub use orchestration::{
    ApprovalStep, Case, ComputeStep, Condition, DecisionStep, Definition, DelayStep, MASK, OnReject,
    OnTimeout, Operator, Orchestration, ParamEntry, Retry, Step, StepType,
};
pub use run::{
    Decision, MAX_WAIT_MS, Run, RunFilter, RunStatus, RunStep, StartRun, StartedRun, StepStatus,
    UnknownStatus,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A list response: `{ "data": [...] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub struct List<T> {
    /// The items, in the route's documented order.
    pub data: Vec<T>,
}
