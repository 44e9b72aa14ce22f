//! The run state machine, without I/O: given a run's persisted state and what just
//! happened (claimed, a function returned, a timeout passed), decide the next state
//! and what to do next. The worker commits each decided state in one transaction
//! before it acts on it, so a crash at any point resumes from the last commit.
//!
//! Entering a step and finishing the one before are one state change: a compute
//! step's success, the decisions it leads through and the next compute step's start
//! are written together. That keeps a sequential compute step at one transaction.

use super::context::{RunContext, StepState};
use super::decision;
use crate::orchestrations::model::{ApprovalStep, Definition, OnReject, OnTimeout, Step};
use crate::store::{ClaimedRun, Decision, RunRecord, RunStatus, StepRecord, StepStatus, Transition};
use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Steps a run may enter in all; past it the run fails, which stops runaway loops.
pub const MAX_STEP_EXECUTIONS: i64 = 1000;

/// The longest retry backoff, whatever `backoffMs` and `multiplier` compute.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How long a step waits for a busy node before it is tried again.
const OVERLOAD_BACKOFF: TimeDelta = TimeDelta::milliseconds(200);

/// Attempts a step may lose to workers that died during its call, beyond those its
/// `retry` allows. A function that keeps killing its worker (or the node it runs on)
/// would otherwise be retried forever.
const MAX_LOST_ATTEMPTS: i64 = 5;

/// What the worker does after committing the current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Call the function of this compute step.
    Invoke(Attempt),
    /// Nothing more for now: the run finished, waits, or is due later.
    Stop,
}

/// One call of a compute step's function.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub step_id: String,
    pub attempt: u32,
    /// Stable for one execution of the step: the same across retries and crashes,
    /// different when a loop enters the step again.
    pub idempotency_key: String,
}

/// How a compute step's call ended; everything in it is already redacted.
#[derive(Debug, Clone)]
pub enum ComputeResult {
    /// The node had no free invocation slot: the call never started, so it uses no
    /// attempt, and the step is tried again shortly.
    Overloaded,
    Succeeded {
        output: String,
        logs: String,
    },
    Failed {
        code: String,
        message: String,
        retryable: bool,
        logs: String,
    },
}

/// A run as one worker drives it: the claimed record, its step records, and the
/// changes not yet committed.
pub struct RunState {
    pub run: RunRecord,
    pub input: Value,
    records: BTreeMap<String, StepRecord>,
    context_steps: BTreeMap<String, StepState>,
    changed: Vec<String>,
    /// The status the database holds, which the next commit is fenced on.
    committed_status: RunStatus,
}

impl RunState {
    pub fn new(claim: ClaimedRun) -> Result<Self> {
        let input = serde_json::from_str(&claim.run.input).context("a stored run input is unreadable")?;
        let mut state = Self {
            committed_status: claim.run.status,
            run: claim.run,
            input,
            records: BTreeMap::new(),
            context_steps: BTreeMap::new(),
            changed: Vec::new(),
        };
        for record in claim.steps {
            state.remember(record)?;
        }
        state.changed.clear();
        Ok(state)
    }

    pub fn context(&self) -> RunContext<'_> {
        RunContext {
            input: &self.input,
            steps: &self.context_steps,
            orchestration_id: &self.run.orchestration_id,
            run_id: &self.run.id,
        }
    }

    pub fn record(&self, step_id: &str) -> Option<&StepRecord> {
        self.records.get(step_id)
    }

    /// The state change since the last commit, to write in one transaction.
    pub fn take_transition(&mut self) -> Transition {
        let steps = std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|id| self.records.get(&id).cloned())
            .collect();
        let transition = Transition {
            expected: self.committed_status,
            status: self.run.status,
            current_step: self.run.current_step.clone(),
            step_executions: self.run.step_executions,
            due_at: self.run.due_at,
            lease_owner: self.run.lease_owner.clone(),
            error: self.run.error.clone(),
            steps,
        };
        self.committed_status = self.run.status;
        transition
    }

    fn remember(&mut self, record: StepRecord) -> Result<()> {
        let output = match &record.output {
            Some(text) => Some(serde_json::from_str(text).context("a stored step output is unreadable")?),
            None => None,
        };
        self.context_steps.insert(
            record.step_id.clone(),
            StepState {
                status: record.status.as_str().to_owned(),
                output,
            },
        );
        if !self.changed.contains(&record.step_id) {
            self.changed.push(record.step_id.clone());
        }
        self.records.insert(record.step_id.clone(), record);
        Ok(())
    }
}

/// Decides state changes for the runs of one definition version.
pub struct Planner<'a> {
    pub definition: &'a Definition,
    /// The lease token of the claim, which holds the run while it is running.
    pub owner: &'a str,
    pub lease: TimeDelta,
}

impl Planner<'_> {
    /// Where a just-claimed run goes from here.
    pub fn resume(&self, state: &mut RunState, now: DateTime<Utc>) -> Result<Next> {
        let current = state.run.current_step.clone();
        let step = match &current {
            None => {
                return self.route(
                    state,
                    self.definition.steps.first().map(|s| s.id().to_owned()),
                    now,
                );
            }
            Some(id) => self.step(id)?,
        };
        let record = state.record(step.id()).cloned();
        match (step, state.run.status, record) {
            // An approval's timeout passed.
            (Step::Approval(approval), RunStatus::Waiting, Some(record))
                if record.status == StepStatus::Waiting =>
            {
                let approved = approval.on_timeout == Some(OnTimeout::Approve);
                let decision = approval_decision(approval, approved, "timeout", None, now);
                self.apply_decision(state, approval, record, decision, now)
            }
            // A compute step to try (again): after a retry backoff, or a worker that
            // died during the call. Each attempt is committed before the call.
            (Step::Compute(compute), RunStatus::Running, Some(mut record))
                if record.status == StepStatus::Running =>
            {
                if record.attempts >= max_attempts(compute) + MAX_LOST_ATTEMPTS {
                    let message = format!(
                        "step `{}` made {} attempts, more than its retry budget plus {MAX_LOST_ATTEMPTS} \
                         calls lost to workers that stopped during them",
                        compute.id, record.attempts
                    );
                    record.status = StepStatus::Failed;
                    record.finished_at = Some(now);
                    record.error = Some(
                        json!({ "code": "attempts_lost", "message": message, "retryable": false })
                            .to_string(),
                    );
                    state.remember(record)?;
                    fail(state, "step_failed", &message, Some(&compute.id));
                    return Ok(Next::Stop);
                }
                record.attempts += 1;
                let attempt = self.attempt(state, &compute.id, &record);
                state.remember(record)?;
                self.hold(state, now);
                Ok(Next::Invoke(attempt))
            }
            (Step::Delay(delay), RunStatus::Running, Some(mut record))
                if record.status == StepStatus::Running =>
            {
                let ends = record.started_at.unwrap_or(now) + millis(delay.delay_ms);
                if ends > now {
                    state.run.lease_owner = None;
                    state.run.due_at = Some(ends);
                    return Ok(Next::Stop);
                }
                record.status = StepStatus::Succeeded;
                record.finished_at = Some(now);
                state.remember(record)?;
                self.route(state, self.following(step), now)
            }
            // An approval someone decided; `decide` already recorded it.
            (Step::Approval(_), RunStatus::Running, Some(record))
                if record.status == StepStatus::Succeeded =>
            {
                self.route(state, self.following(step), now)
            }
            (_, status, record) => anyhow::bail!(
                "run {} is {} at step `{}` ({:?}), which the engine cannot resume",
                state.run.id,
                status.as_str(),
                step.id(),
                record.map(|r| r.status)
            ),
        }
    }

    /// What follows a compute step's call.
    pub fn compute_finished(
        &self,
        state: &mut RunState,
        step_id: &str,
        result: ComputeResult,
        now: DateTime<Utc>,
    ) -> Result<Next> {
        let step = self.step(step_id)?;
        let Step::Compute(compute) = step else {
            anyhow::bail!("step `{step_id}` is not a compute step");
        };
        let mut record = state
            .record(step_id)
            .cloned()
            .with_context(|| format!("no record of step `{step_id}`"))?;
        match result {
            ComputeResult::Overloaded => {
                // The attempt never started: take it back.
                record.attempts -= 1;
                state.remember(record)?;
                state.run.lease_owner = None;
                state.run.due_at = Some(now + OVERLOAD_BACKOFF);
                Ok(Next::Stop)
            }
            ComputeResult::Succeeded { output, logs } => {
                record.status = StepStatus::Succeeded;
                record.output = Some(output);
                record.error = None;
                record.logs = Some(logs);
                record.finished_at = Some(now);
                state.remember(record)?;
                self.route(state, self.following(step), now)
            }
            ComputeResult::Failed {
                code,
                message,
                retryable,
                logs,
            } => {
                record.error =
                    Some(json!({ "code": code, "message": message, "retryable": retryable }).to_string());
                record.logs = Some(logs);
                if retryable && record.attempts < max_attempts(compute) {
                    // Stays `running` with the last error shown; due again after the backoff.
                    let backoff = backoff(compute.retry.as_ref(), record.attempts);
                    state.remember(record)?;
                    state.run.lease_owner = None;
                    state.run.due_at = Some(now + backoff);
                    return Ok(Next::Stop);
                }
                let attempts = match record.attempts {
                    1 => String::new(),
                    n => format!(" after {n} attempts"),
                };
                record.status = StepStatus::Failed;
                record.finished_at = Some(now);
                state.remember(record)?;
                fail(
                    state,
                    "step_failed",
                    &format!("step `{step_id}` failed{attempts}: {message}"),
                    Some(step_id),
                );
                Ok(Next::Stop)
            }
        }
    }

    /// Enters steps from `next` on, until one has to wait or to call a function, or
    /// the run ends.
    fn route(&self, state: &mut RunState, mut next: Option<String>, now: DateTime<Utc>) -> Result<Next> {
        loop {
            let Some(step_id) = next else {
                state.run.status = RunStatus::Completed;
                state.run.current_step = None;
                state.run.due_at = None;
                state.run.lease_owner = None;
                return Ok(Next::Stop);
            };
            if state.run.step_executions >= MAX_STEP_EXECUTIONS {
                fail(
                    state,
                    "step_limit_exceeded",
                    &format!(
                        "the run entered {MAX_STEP_EXECUTIONS} steps, the most a run may; \
                         a decision probably loops without end"
                    ),
                    None,
                );
                return Ok(Next::Stop);
            }
            let step = self.step(&step_id)?;
            state.run.step_executions += 1;
            state.run.current_step = Some(step_id.clone());
            let mut record = StepRecord {
                step_id: step_id.clone(),
                execution: state.run.step_executions,
                status: StepStatus::Running,
                attempts: 1,
                output: None,
                error: None,
                logs: None,
                started_at: Some(now),
                finished_at: None,
            };
            match step {
                Step::Compute(compute) => {
                    let attempt = self.attempt(state, &compute.id, &record);
                    state.remember(record)?;
                    self.hold(state, now);
                    return Ok(Next::Invoke(attempt));
                }
                Step::Decision(decision_step) => {
                    let case = decision::matching_case(decision_step, &state.context());
                    let target = match case {
                        Some(index) => decision_step.cases[index].next_step_id.clone(),
                        None => decision_step.default_next_step_id.clone(),
                    };
                    record.status = StepStatus::Succeeded;
                    record.output = Some(json!({ "matchedCase": case, "nextStepId": target }).to_string());
                    record.finished_at = Some(now);
                    state.remember(record)?;
                    next = Some(target);
                }
                Step::Delay(delay) if delay.delay_ms == 0 => {
                    record.status = StepStatus::Succeeded;
                    record.finished_at = Some(now);
                    state.remember(record)?;
                    next = self.following(step);
                }
                Step::Delay(delay) => {
                    state.remember(record)?;
                    state.run.status = RunStatus::Running;
                    state.run.lease_owner = None;
                    state.run.due_at = Some(now + millis(delay.delay_ms));
                    return Ok(Next::Stop);
                }
                Step::Approval(approval) => {
                    record.status = StepStatus::Waiting;
                    state.remember(record)?;
                    state.run.status = RunStatus::Waiting;
                    state.run.lease_owner = None;
                    state.run.due_at = approval.timeout_ms.map(|ms| now + millis(ms));
                    return Ok(Next::Stop);
                }
            }
        }
    }

    fn apply_decision(
        &self,
        state: &mut RunState,
        approval: &ApprovalStep,
        mut record: StepRecord,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> Result<Next> {
        record.status = decision.step_status;
        record.output = Some(decision.output);
        record.finished_at = Some(now);
        state.remember(record)?;
        if decision.run_status == RunStatus::Failed {
            state.run.status = RunStatus::Failed;
            state.run.error = decision.run_error;
            state.run.due_at = None;
            state.run.lease_owner = None;
            return Ok(Next::Stop);
        }
        state.run.status = RunStatus::Running;
        self.route(state, self.following(&Step::Approval(approval.clone())), now)
    }

    /// Keeps the run leased by this worker while it works on it.
    fn hold(&self, state: &mut RunState, now: DateTime<Utc>) {
        state.run.status = RunStatus::Running;
        state.run.lease_owner = Some(self.owner.to_owned());
        state.run.due_at = Some(now + self.lease);
    }

    fn attempt(&self, state: &RunState, step_id: &str, record: &StepRecord) -> Attempt {
        Attempt {
            step_id: step_id.to_owned(),
            attempt: u32::try_from(record.attempts).unwrap_or(u32::MAX),
            idempotency_key: format!("{}/{}/{}", state.run.id, step_id, record.execution),
        }
    }

    fn step(&self, id: &str) -> Result<&Step> {
        self.definition
            .steps
            .iter()
            .find(|step| step.id() == id)
            .with_context(|| format!("the run's definition has no step `{id}`"))
    }

    /// `nextStepId`, else the next step in the array, else the end of the run.
    /// (A decision's target is chosen by its cases instead.)
    fn following(&self, step: &Step) -> Option<String> {
        if let Some(next) = step.next_step_id() {
            return Some(next.to_owned());
        }
        let steps = &self.definition.steps;
        let index = steps.iter().position(|s| s.id() == step.id())?;
        steps.get(index + 1).map(|s| s.id().to_owned())
    }
}

/// The decision on an approval step, whoever made it: the output recorded on the step
/// and what becomes of the run. A rejection ends the run unless `onReject` is
/// `continue`; a step that lets the run go on has succeeded.
pub fn approval_decision(
    step: &ApprovalStep,
    approved: bool,
    decided_by: &str,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Decision {
    let output = json!({
        "approved": approved,
        "decidedBy": decided_by,
        "comment": comment,
        "decidedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string();
    let ends_run = !approved && step.on_reject.unwrap_or(OnReject::Fail) == OnReject::Fail;
    Decision {
        step_id: step.id.clone(),
        step_status: match ends_run {
            true => StepStatus::Failed,
            false => StepStatus::Succeeded,
        },
        output,
        run_status: match ends_run {
            true => RunStatus::Failed,
            false => RunStatus::Running,
        },
        run_error: ends_run.then(|| {
            let by = match decided_by {
                "timeout" => "timed out and was rejected".to_owned(),
                _ => format!("was rejected by {decided_by}"),
            };
            run_error(
                "approval_rejected",
                &format!("approval step `{}` {by}", step.id),
                Some(&step.id),
            )
        }),
    }
}

fn fail(state: &mut RunState, code: &str, message: &str, step_id: Option<&str>) {
    state.run.status = RunStatus::Failed;
    state.run.error = Some(run_error(code, message, step_id));
    state.run.due_at = None;
    state.run.lease_owner = None;
}

/// A run's `error`: `{ code, message, stepId? }`.
pub fn run_error(code: &str, message: &str, step_id: Option<&str>) -> String {
    let mut error = json!({ "code": code, "message": message });
    if let Some(step_id) = step_id {
        error["stepId"] = json!(step_id);
    }
    error.to_string()
}

/// The attempts `retry` allows (1 without it).
fn max_attempts(step: &crate::orchestrations::model::ComputeStep) -> i64 {
    i64::from(step.retry.as_ref().map_or(1, |retry| retry.max_attempts.max(1)))
}

/// `backoffMs × multiplier^(attempt − 1)`, capped.
fn backoff(retry: Option<&crate::orchestrations::model::Retry>, attempts_made: i64) -> TimeDelta {
    let Some(retry) = retry else {
        return TimeDelta::zero();
    };
    let exponent = i32::try_from(attempts_made - 1).unwrap_or(i32::MAX);
    let ms = retry.backoff_ms as f64 * retry.multiplier.powi(exponent);
    let cap = MAX_BACKOFF.as_millis() as f64;
    let ms = if ms.is_finite() { ms.clamp(0.0, cap) } else { cap };
    TimeDelta::milliseconds(ms as i64)
}

/// Waits are at most a year (validated at save), far inside `TimeDelta`'s range.
fn millis(ms: u64) -> TimeDelta {
    TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 1000))
}
