//! Runs as the API shows them (docs/architecture.md#api-contract). Every step of the
//! definition is listed in order: those the run entered with their record, the others
//! `pending` while the run goes on, `skipped` once it ended without them (a branch not
//! taken), or `cancelled` with the run. Stored JSON (input, outputs, errors, logs) is
//! passed through as stored; it was redacted before it was stored.

use crate::orchestrations::model::Definition;
use crate::store::{RunRecord, RunStatus, StepRecord, StepStatus};
use anyhow::{Context, Result};
use serde_json::value::RawValue;

/// A run as the API shows it; stored JSON is passed through as text.
pub type RunView = trellis_types::Run<Box<RawValue>>;

/// One step of a [`RunView`].
pub type StepView = trellis_types::RunStep<Box<RawValue>>;

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
        input: Some(RawValue::from_string(run.input).context("a stored run input is not JSON")?),
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
