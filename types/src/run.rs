//! Runs: one execution of an orchestration version, and its steps.

use crate::function::LogEntry;
use crate::orchestration::StepType;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/orchestrations/{id}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The run's input object (up to 1 MiB); default `{}`. Compute steps receive it
    /// merged under their params.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

/// What starting a run returns (202): a worker takes it from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StartedRun {
    /// The new run's id.
    pub id: String,
    /// `pending` until a worker takes it.
    pub status: RunStatus,
}

/// The longest `GET /v1/runs/{id}?waitMs=` holds a request: long enough that a
/// waiting client rarely asks twice, short enough for proxies' idle timeouts.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Which runs `GET /v1/orchestrations/{id}/runs` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFilter {
    /// Only runs in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// How many, newest first (1 to 1000, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

/// The body of approve and reject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Recorded in the step's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started, not yet taken by a worker.
    Pending,
    /// A worker is driving it.
    Running,
    /// An approval step waits for a person.
    Waiting,
    /// Every step it took succeeded.
    Completed,
    /// A step failed (`error` says which and why).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// Whether the run has ended for good.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// Whether the run is moving on its own (a wait returns once it is not).
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not entered yet.
    Pending,
    /// Being executed.
    Running,
    /// An approval waiting for a person.
    Waiting,
    /// Done.
    Succeeded,
    /// Failed (its `error` says why).
    Failed,
    /// Not on the path the run took.
    Skipped,
    /// The run was cancelled first.
    Cancelled,
}

impl StepStatus {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Waiting => "waiting",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// Every status.
    pub const ALL: [StepStatus; 7] = [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Waiting,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Cancelled,
    ];
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run. `J` is how stored JSON (input, outputs, errors, logs) is held: the server
/// passes the stored text through untouched, a client reads it as a [`Value`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Run")]
pub struct Run<J = Value> {
    /// Server-assigned run id.
    pub id: String,
    /// The orchestration it runs.
    pub orchestration_id: String,
    /// The definition version it executes, fixed at start.
    pub orchestration_version: i64,
    /// Where it is.
    pub status: RunStatus,
    /// The run's input object (absent in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<J>,
    /// Every step of the definition, in order (absent in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<RunStep<J>>>,
    /// The step the run is at (running or waiting), or where it stopped.
    pub current_step_id: Option<String>,
    /// `{ code, message, stepId? }` when the run failed or was cancelled.
    pub error: Option<J>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its last state change.
    pub updated_at: DateTime<Utc>,
}

impl Run {
    /// The record of step `id`.
    pub fn step(&self, id: &str) -> Option<&RunStep> {
        self.steps.as_ref()?.iter().find(|step| step.id == id)
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "RunStep")]
pub struct RunStep<J = Value> {
    /// The step's id in the definition.
    pub id: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: StepType,
    /// Where it is.
    pub status: StepStatus,
    /// Calls so far for a compute step (1 for other kinds once entered).
    pub attempts: i64,
    /// The step's output, with every secret replaced by `********`: a function's
    /// JSON, an approval's `{ approved, decidedBy, comment, decidedAt }`, a
    /// decision's chosen branch.
    pub output: Option<J>,
    /// `{ code, message, retryable }` of the latest failed attempt.
    pub error: Option<J>,
    /// A compute step's function logs from its latest attempt, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<LogEntry>>")]
    pub logs: Option<J>,
    /// When the step was entered.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A status name that is not one of the API's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl std::fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown status `{}`", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

macro_rules! parse_by_name {
    ($name:ident) => {
        impl std::str::FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(text: &str) -> Result<Self, UnknownStatus> {
                Self::ALL
                    .into_iter()
                    .find(|status| status.as_str() == text)
                    .ok_or_else(|| UnknownStatus(text.to_owned()))
            }
        }

        /// How the store reads a status column.
        impl TryFrom<String> for $name {
            type Error = UnknownStatus;
            fn try_from(text: String) -> Result<Self, UnknownStatus> {
                text.parse()
            }
        }
    };
}

parse_by_name!(RunStatus);
parse_by_name!(StepStatus);

macro_rules! compare_with_name {
    ($name:ident) => {
        /// Compares with the wire name: `status == "completed"`.
        impl PartialEq<&str> for $name {
            fn eq(&self, name: &&str) -> bool {
                self.as_str() == *name
            }
        }
    };
}

compare_with_name!(RunStatus);
compare_with_name!(StepStatus);
