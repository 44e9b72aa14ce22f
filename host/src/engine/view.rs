//! Runs as the API shows them (ARCHITECTURE.md §5). Every step of the definition is
//! listed in order: those the run entered with their record, the others `pending`
//! while the run goes on, `skipped` once it ended without them (a branch not taken),
//! or `cancelled` with the run. Stored JSON (input, outputs, errors, logs) is passed
//! through as stored; it was redacted before it was stored.

use crate::orchestrations::model::Definition;
use crate::store::{RunRecord, RunStatus, StepRecord, StepStatus};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: String,
    pub orchestration_id: String,
    pub orchestration_version: i64,
    pub status: RunStatus,
    pub input: Box<RawValue>,
    /// Absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
    /// The step the run is at (running or waiting), or where it stopped.
    pub current_step_id: Option<String>,
    pub error: Option<Box<RawValue>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: StepStatus,
    pub attempts: i64,
    pub output: Option<Box<RawValue>>,
    pub error: Option<Box<RawValue>>,
    /// A compute step's function logs from its latest attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<Box<RawValue>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run with every step of its definition.
pub fn full(run: RunRecord, records: Vec<StepRecord>, definition: &Definition) -> Result<RunView> {
    let mut records: std::collections::HashMap<String, StepRecord> = records
        .into_iter()
        .map(|record| (record.step_id.clone(), record))
        .collect();
    let not_entered = match run.status {
        RunStatus::Completed | RunStatus::Failed => StepStatus::Skipped,
        RunStatus::Cancelled => StepStatus::Cancelled,
        RunStatus::Pending | RunStatus::Running | RunStatus::Waiting => StepStatus::Pending,
    };
    let steps = definition
        .steps
        .iter()
        .map(|step| {
            Ok(match records.remove(step.id()) {
                Some(record) => StepView {
                    id: record.step_id,
                    kind: step.kind(),
                    status: record.status,
                    attempts: record.attempts,
                    output: raw(record.output)?,
                    error: raw(record.error)?,
                    logs: raw(record.logs)?,
                    started_at: record.started_at,
                    finished_at: record.finished_at,
                },
                None => StepView {
                    id: step.id().to_owned(),
                    kind: step.kind(),
                    status: not_entered,
                    attempts: 0,
                    output: None,
                    error: None,
                    logs: None,
                    started_at: None,
                    finished_at: None,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut view = summary(run)?;
    view.steps = Some(steps);
    Ok(view)
}

/// A run without its steps, for lists.
pub fn summary(run: RunRecord) -> Result<RunView> {
    Ok(RunView {
        input: RawValue::from_string(run.input).context("a stored run input is not JSON")?,
        error: raw(run.error)?,
        id: run.id,
        orchestration_id: run.orchestration_id,
        orchestration_version: run.orchestration_version,
        status: run.status,
        steps: None,
        current_step_id: run.current_step,
        created_at: run.created_at,
        updated_at: run.updated_at,
    })
}

fn raw(text: Option<String>) -> Result<Option<Box<RawValue>>> {
    text.map(|text| RawValue::from_string(text).context("a stored run record is not JSON"))
        .transpose()
}
