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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrations::{body, step_ids, validate};

    const OWNER: &str = "node-a#1";
    const LEASE: TimeDelta = TimeDelta::seconds(30);

    /// The tests' clock: `ms` milliseconds after a fixed instant.
    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_268_800, 0).unwrap() + TimeDelta::milliseconds(ms)
    }

    /// A definition as the API accepts it: parsed from the body, ids assigned, checked.
    fn orchestration(body: Value) -> Definition {
        let mut definition = body::definition(body).unwrap();
        step_ids::assign(&mut definition);
        validate::check(&definition).unwrap();
        definition
    }

    fn planner(definition: &Definition) -> Planner<'_> {
        Planner {
            definition,
            owner: OWNER,
            lease: LEASE,
        }
    }

    /// What a claim at `now` hands `owner`: the run, due by then, leased to it (a
    /// pending run becomes running), with its step records.
    fn claimed(mut run: RunRecord, steps: Vec<StepRecord>, owner: &str, now: DateTime<Utc>) -> RunState {
        assert!(
            run.due_at.is_some_and(|due| due <= now),
            "a run due at {:?} is not claimed at {now}",
            run.due_at
        );
        if run.status == RunStatus::Pending {
            run.status = RunStatus::Running;
        }
        run.lease_owner = Some(owner.to_owned());
        run.due_at = Some(now + LEASE);
        RunState::new(ClaimedRun {
            run,
            steps,
            previous_owner: None,
        })
        .unwrap()
    }

    /// A run just started with `input`, as the first claim at `now` hands it over.
    fn started(input: Value, now: DateTime<Utc>) -> RunState {
        let run = RunRecord::pending("run-1".into(), "orch-1".into(), 1, input.to_string(), now);
        claimed(run, Vec::new(), OWNER, now)
    }

    /// A run with no input, started at 0 and claimed: its first step is being called.
    fn calling_first(definition: &Definition) -> RunState {
        let mut state = started(json!({}), at(0));
        planner(definition).resume(&mut state, at(0)).unwrap();
        state
    }

    /// Commits `state` as the worker does, and has `owner` claim the run again at `now`.
    fn reclaim_by(state: &mut RunState, owner: &str, now: DateTime<Utc>) -> RunState {
        state.take_transition();
        claimed(
            state.run.clone(),
            state.records.values().cloned().collect(),
            owner,
            now,
        )
    }

    fn reclaim(state: &mut RunState, now: DateTime<Utc>) -> RunState {
        reclaim_by(state, OWNER, now)
    }

    /// Records a person's decision on a waiting approval as the API does
    /// (`Store::decide`): the step gets the decision, the run is due at once or failed.
    fn decide(
        state: &mut RunState,
        definition: &Definition,
        step_id: &str,
        approved: bool,
        now: DateTime<Utc>,
    ) {
        state.take_transition();
        let Some(Step::Approval(approval)) = definition.steps.iter().find(|s| s.id() == step_id) else {
            panic!("`{step_id}` is an approval step");
        };
        let decision = approval_decision(approval, approved, "api", Some("checked the diff"), now);
        let mut record = state.record(step_id).cloned().unwrap();
        assert_eq!(
            record.status,
            StepStatus::Waiting,
            "the step waits for a decision"
        );
        record.status = decision.step_status;
        record.output = Some(decision.output);
        record.finished_at = Some(now);
        state.remember(record).unwrap();
        state.run.status = decision.run_status;
        state.run.due_at = (decision.run_status == RunStatus::Running).then_some(now);
        state.run.lease_owner = None;
        state.run.error = decision.run_error;
    }

    fn succeeded(output: Value) -> ComputeResult {
        ComputeResult::Succeeded {
            output: output.to_string(),
            logs: r#"[{"level":"info","message":"done"}]"#.into(),
        }
    }

    fn failed(code: &str, message: &str, retryable: bool) -> ComputeResult {
        ComputeResult::Failed {
            code: code.into(),
            message: message.into(),
            retryable,
            logs: "[]".into(),
        }
    }

    fn invoke(step_id: &str, attempt: u32, execution: i64) -> Next {
        Next::Invoke(Attempt {
            step_id: step_id.into(),
            attempt,
            idempotency_key: format!("run-1/{step_id}/{execution}"),
        })
    }

    fn json_of(text: Option<&str>) -> Value {
        serde_json::from_str(text.expect("a JSON text")).unwrap()
    }

    fn step_error(state: &RunState, step_id: &str) -> Value {
        json_of(state.record(step_id).unwrap().error.as_deref())
    }

    fn run_error_of(state: &RunState) -> Value {
        json_of(state.run.error.as_deref())
    }

    fn due(state: &RunState) -> DateTime<Utc> {
        state.run.due_at.expect("the run is due at some time")
    }

    /// The run is held by `owner` for one lease from `now`, to call a function.
    fn assert_held(state: &RunState, owner: &str, now: DateTime<Utc>) {
        assert_eq!(state.run.status, RunStatus::Running);
        assert_eq!(state.run.lease_owner.as_deref(), Some(owner));
        assert_eq!(state.run.due_at, Some(now + LEASE));
    }

    /// The run is finished: nobody holds it and nothing is due.
    fn assert_settled(state: &RunState, status: RunStatus) {
        assert_eq!(state.run.status, status);
        assert_eq!(state.run.lease_owner, None);
        assert_eq!(state.run.due_at, None);
    }

    fn two_functions() -> Definition {
        orchestration(json!({
            "name": "deploy",
            "steps": [
                { "type": "compute", "functionId": "build" },
                { "type": "compute", "functionId": "publish" },
            ],
        }))
    }

    fn retried(retry: Value) -> Definition {
        orchestration(json!({
            "name": "sync",
            "steps": [{ "type": "compute", "functionId": "fetch", "retry": retry }],
        }))
    }

    #[test]
    fn a_new_run_calls_its_first_step_holding_the_lease_for_the_call() {
        let definition = two_functions();
        let mut state = started(json!({ "ref": "main" }), at(0));

        let next = planner(&definition).resume(&mut state, at(0)).unwrap();

        assert_eq!(next, invoke("build", 1, 1));
        assert_held(&state, OWNER, at(0));
        assert_eq!(state.run.current_step.as_deref(), Some("build"));
        assert_eq!(state.run.step_executions, 1);
        let record = state.record("build").unwrap();
        assert_eq!(
            (record.status, record.attempts, record.execution),
            (StepStatus::Running, 1, 1)
        );
        assert_eq!((record.started_at, record.finished_at), (Some(at(0)), None));
        assert!(
            state.record("publish").is_none(),
            "the second step is not entered yet"
        );
        let transition = state.take_transition();
        assert_eq!(
            (transition.expected, transition.status),
            (RunStatus::Running, RunStatus::Running)
        );
        assert_eq!(
            transition
                .steps
                .iter()
                .map(|s| s.step_id.as_str())
                .collect::<Vec<_>>(),
            ["build"]
        );
    }

    #[test]
    fn a_success_and_the_start_of_the_next_step_are_committed_together() {
        let definition = two_functions();
        let mut state = calling_first(&definition);
        state.take_transition();

        let next = planner(&definition)
            .compute_finished(
                &mut state,
                "build",
                succeeded(json!({ "artifact": "app.tgz" })),
                at(900),
            )
            .unwrap();

        assert_eq!(next, invoke("publish", 1, 2));
        let build = state.record("build").unwrap();
        assert_eq!(build.status, StepStatus::Succeeded);
        assert_eq!(json_of(build.output.as_deref()), json!({ "artifact": "app.tgz" }));
        assert_eq!(
            build.logs.as_deref(),
            Some(r#"[{"level":"info","message":"done"}]"#)
        );
        assert_eq!(build.finished_at, Some(at(900)));
        assert_held(&state, OWNER, at(900));
        assert_eq!(state.run.current_step.as_deref(), Some("publish"));
        let transition = state.take_transition();
        assert_eq!(
            transition
                .steps
                .iter()
                .map(|s| (s.step_id.as_str(), s.status))
                .collect::<Vec<_>>(),
            [("build", StepStatus::Succeeded), ("publish", StepStatus::Running)]
        );
    }

    #[test]
    fn the_last_step_succeeding_completes_the_run_and_releases_it() {
        let definition = two_functions();
        let mut state = started(json!({}), at(0));
        let planner = planner(&definition);
        planner.resume(&mut state, at(0)).unwrap();
        planner
            .compute_finished(&mut state, "build", succeeded(json!(1)), at(10))
            .unwrap();

        let next = planner
            .compute_finished(&mut state, "publish", succeeded(json!(2)), at(20))
            .unwrap();

        assert_eq!(next, Next::Stop);
        assert_settled(&state, RunStatus::Completed);
        assert_eq!(state.run.current_step, None);
        assert_eq!(state.run.error, None);
        assert_eq!(state.record("publish").unwrap().status, StepStatus::Succeeded);
    }

    #[test]
    fn next_step_id_skips_the_steps_in_between() {
        let definition = orchestration(json!({
            "name": "hotfix",
            "steps": [
                { "type": "compute", "functionId": "build", "nextStepId": "publish" },
                { "type": "compute", "functionId": "test" },
                { "type": "compute", "functionId": "publish" },
            ],
        }));
        let mut state = calling_first(&definition);

        let next = planner(&definition)
            .compute_finished(&mut state, "build", succeeded(json!({})), at(10))
            .unwrap();

        assert_eq!(next, invoke("publish", 1, 2));
        assert!(state.record("test").is_none(), "the skipped step never runs");
    }

    fn review() -> Definition {
        orchestration(json!({
            "name": "review",
            "steps": [
                { "type": "compute", "functionId": "evaluate" },
                {
                    "id": "route",
                    "type": "decision",
                    "cases": [{
                        "conditions": [
                            { "path": "steps.evaluate.output.decision", "operator": "eq", "value": "approve" },
                        ],
                        "nextStepId": "merge",
                    }],
                    "defaultNextStepId": "close",
                },
                { "type": "compute", "functionId": "merge" },
                { "type": "compute", "functionId": "close" },
            ],
        }))
    }

    #[test]
    fn a_decision_routes_on_the_output_just_produced_and_records_the_case_it_matched() {
        let definition = review();
        let mut state = calling_first(&definition);

        let next = planner(&definition)
            .compute_finished(
                &mut state,
                "evaluate",
                succeeded(json!({ "decision": "approve" })),
                at(10),
            )
            .unwrap();

        assert_eq!(next, invoke("merge", 1, 3));
        let route = state.record("route").unwrap();
        assert_eq!((route.status, route.execution), (StepStatus::Succeeded, 2));
        assert_eq!(
            json_of(route.output.as_deref()),
            json!({ "matchedCase": 0, "nextStepId": "merge" })
        );
        assert_eq!(route.finished_at, Some(at(10)));
        assert!(state.record("close").is_none());
        let transition = state.take_transition();
        assert_eq!(
            transition
                .steps
                .iter()
                .map(|s| s.step_id.as_str())
                .collect::<Vec<_>>(),
            ["evaluate", "route", "merge"],
            "the decision is written in the same transaction"
        );
    }

    #[test]
    fn a_decision_without_a_matching_case_takes_its_default() {
        let definition = review();
        let mut state = calling_first(&definition);

        let next = planner(&definition)
            .compute_finished(
                &mut state,
                "evaluate",
                succeeded(json!({ "decision": "reject" })),
                at(10),
            )
            .unwrap();

        assert_eq!(next, invoke("close", 1, 3));
        assert_eq!(
            json_of(state.record("route").unwrap().output.as_deref()),
            json!({ "matchedCase": null, "nextStepId": "close" })
        );
        assert!(state.record("merge").is_none());
    }

    #[test]
    fn a_step_entered_again_by_a_loop_is_a_new_execution_with_a_new_idempotency_key() {
        let definition = orchestration(json!({
            "name": "poll",
            "steps": [
                { "type": "compute", "functionId": "status" },
                {
                    "id": "ready",
                    "type": "decision",
                    "cases": [{
                        "conditions": [{ "path": "steps.status.output.done", "operator": "eq", "value": true }],
                        "nextStepId": "notify",
                    }],
                    "defaultNextStepId": "status",
                },
                { "type": "compute", "functionId": "notify" },
            ],
        }));
        let mut state = started(json!({}), at(0));
        let planner = planner(&definition);
        assert_eq!(planner.resume(&mut state, at(0)).unwrap(), invoke("status", 1, 1));

        let next = planner
            .compute_finished(&mut state, "status", succeeded(json!({ "done": false })), at(10))
            .unwrap();

        assert_eq!(next, invoke("status", 1, 3));
        let status = state.record("status").unwrap();
        assert_eq!(
            (status.status, status.attempts, status.execution),
            (StepStatus::Running, 1, 3)
        );
        assert_eq!(status.output, None, "the earlier execution's output is replaced");
        let next = planner
            .compute_finished(&mut state, "status", succeeded(json!({ "done": true })), at(20))
            .unwrap();
        assert_eq!(next, invoke("notify", 1, 5));
        assert_eq!(state.run.step_executions, 5);
    }

    #[test]
    fn a_decision_that_loops_forever_fails_the_run_at_the_step_limit() {
        let definition = orchestration(json!({
            "name": "spin",
            "steps": [
                { "id": "ping", "type": "decision", "cases": [], "defaultNextStepId": "pong" },
                { "id": "pong", "type": "decision", "cases": [], "defaultNextStepId": "ping" },
            ],
        }));
        let mut state = started(json!({}), at(0));

        let next = planner(&definition).resume(&mut state, at(0)).unwrap();

        assert_eq!(next, Next::Stop);
        assert_settled(&state, RunStatus::Failed);
        assert_eq!(state.run.step_executions, MAX_STEP_EXECUTIONS);
        let error = run_error_of(&state);
        assert_eq!(error["code"], "step_limit_exceeded");
        assert!(
            error["message"].as_str().unwrap().contains("1000 steps"),
            "{error}"
        );
        assert_eq!(error.get("stepId"), None, "no one step is to blame");
    }

    fn cool_down() -> Definition {
        orchestration(json!({
            "name": "cool-down",
            "steps": [
                { "id": "wait", "type": "delay", "delayMs": 60_000 },
                { "type": "compute", "functionId": "ping" },
            ],
        }))
    }

    #[test]
    fn a_delay_releases_the_run_until_it_ends() {
        let definition = cool_down();
        let mut state = started(json!({}), at(0));

        let next = planner(&definition).resume(&mut state, at(0)).unwrap();

        assert_eq!(next, Next::Stop);
        assert_eq!(state.run.status, RunStatus::Running);
        assert_eq!(state.run.lease_owner, None);
        assert_eq!(state.run.due_at, Some(at(60_000)));
        assert_eq!(state.run.current_step.as_deref(), Some("wait"));
        let wait = state.record("wait").unwrap();
        assert_eq!((wait.status, wait.started_at), (StepStatus::Running, Some(at(0))));
    }

    #[test]
    fn a_delay_claimed_when_it_ends_succeeds_and_the_run_goes_on() {
        let definition = cool_down();
        let mut state = calling_first(&definition);
        let mut state = reclaim(&mut state, at(60_000));

        let next = planner(&definition).resume(&mut state, at(60_000)).unwrap();

        assert_eq!(next, invoke("ping", 1, 2));
        let wait = state.record("wait").unwrap();
        assert_eq!(
            (wait.status, wait.finished_at),
            (StepStatus::Succeeded, Some(at(60_000)))
        );
        assert_held(&state, OWNER, at(60_000));
    }

    #[test]
    fn a_delay_claimed_before_it_ends_waits_again_for_its_end() {
        let definition = cool_down();
        let mut state = calling_first(&definition);
        // Claimed early, e.g. by a node whose clock runs ahead.
        state.run.due_at = Some(at(30_000));
        let mut state = reclaim(&mut state, at(30_000));

        let next = planner(&definition).resume(&mut state, at(30_000)).unwrap();

        assert_eq!(next, Next::Stop);
        assert_eq!(state.run.status, RunStatus::Running);
        assert_eq!(state.run.lease_owner, None);
        assert_eq!(
            state.run.due_at,
            Some(at(60_000)),
            "due when the delay ends, not a delay later"
        );
        assert_eq!(state.record("wait").unwrap().status, StepStatus::Running);
        assert!(state.take_transition().steps.is_empty(), "no step changed");
    }

    #[test]
    fn a_zero_delay_passes_straight_through_to_the_next_step() {
        let definition = orchestration(json!({
            "name": "no-wait",
            "steps": [
                { "id": "wait", "type": "delay", "delayMs": 0 },
                { "type": "compute", "functionId": "ping" },
            ],
        }));
        let mut state = started(json!({}), at(0));

        let next = planner(&definition).resume(&mut state, at(0)).unwrap();

        assert_eq!(next, invoke("ping", 1, 2));
        let wait = state.record("wait").unwrap();
        assert_eq!(
            (wait.status, wait.finished_at),
            (StepStatus::Succeeded, Some(at(0)))
        );
    }

    fn release(approval: Value) -> Definition {
        let mut approval = approval;
        approval["id"] = json!("sign-off");
        approval["type"] = json!("approval");
        approval["message"] = json!("Ship it?");
        orchestration(json!({
            "name": "release",
            "steps": [approval, { "type": "compute", "functionId": "ship" }],
        }))
    }

    #[test]
    fn an_approval_waits_for_a_person_until_its_timeout() {
        let definition = release(json!({ "timeoutMs": 3_600_000 }));
        let mut state = started(json!({}), at(0));

        let next = planner(&definition).resume(&mut state, at(0)).unwrap();

        assert_eq!(next, Next::Stop);
        assert_eq!(state.run.status, RunStatus::Waiting);
        assert_eq!(state.run.lease_owner, None);
        assert_eq!(state.run.due_at, Some(at(3_600_000)));
        assert_eq!(state.run.current_step.as_deref(), Some("sign-off"));
        assert_eq!(state.record("sign-off").unwrap().status, StepStatus::Waiting);
    }

    #[test]
    fn an_approval_without_a_timeout_is_never_due() {
        let definition = release(json!({}));
        let mut state = started(json!({}), at(0));

        planner(&definition).resume(&mut state, at(0)).unwrap();

        assert_eq!(state.run.status, RunStatus::Waiting);
        assert_eq!(state.run.due_at, None);
    }

    #[test]
    fn an_approved_step_lets_the_run_go_on_to_the_next_step() {
        let definition = release(json!({ "timeoutMs": 3_600_000 }));
        let mut state = calling_first(&definition);
        decide(&mut state, &definition, "sign-off", true, at(5_000));
        let mut state = reclaim(&mut state, at(5_000));

        let next = planner(&definition).resume(&mut state, at(5_000)).unwrap();

        assert_eq!(next, invoke("ship", 1, 2));
        assert_held(&state, OWNER, at(5_000));
        let sign_off = state.record("sign-off").unwrap();
        assert_eq!(sign_off.status, StepStatus::Succeeded);
        let output = json_of(sign_off.output.as_deref());
        assert_eq!(
            (&output["approved"], &output["decidedBy"], &output["comment"]),
            (&json!(true), &json!("api"), &json!("checked the diff"))
        );
    }

    #[test]
    fn a_rejection_fails_the_run_naming_the_step_and_who_rejected_it() {
        let definition = release(json!({}));
        let Step::Approval(approval) = &definition.steps[0] else {
            panic!("the first step is the approval");
        };

        let decision = approval_decision(approval, false, "api", None, at(5_000));

        assert_eq!(decision.step_id, "sign-off");
        assert_eq!(decision.step_status, StepStatus::Failed);
        assert_eq!(decision.run_status, RunStatus::Failed);
        assert_eq!(
            json_of(decision.run_error.as_deref()),
            json!({
                "code": "approval_rejected",
                "message": "approval step `sign-off` was rejected by api",
                "stepId": "sign-off",
            })
        );
        assert_eq!(
            json_of(Some(&decision.output)),
            json!({
                "approved": false,
                "decidedBy": "api",
                "comment": null,
                "decidedAt": "2026-01-01T12:00:05.000Z",
            })
        );
    }

    #[test]
    fn a_rejection_with_on_reject_continue_goes_on_and_later_steps_see_approved_false() {
        let definition = orchestration(json!({
            "name": "release",
            "steps": [
                { "id": "sign-off", "type": "approval", "onReject": "continue" },
                {
                    "id": "check",
                    "type": "decision",
                    "cases": [{
                        "conditions": [{ "path": "steps.sign-off.output.approved", "operator": "eq", "value": true }],
                        "nextStepId": "ship",
                    }],
                    "defaultNextStepId": "notify",
                },
                { "type": "compute", "functionId": "ship" },
                { "type": "compute", "functionId": "notify" },
            ],
        }));
        let mut state = calling_first(&definition);
        decide(&mut state, &definition, "sign-off", false, at(5_000));
        assert_eq!(
            state.run.status,
            RunStatus::Running,
            "the rejection does not end the run"
        );
        let mut state = reclaim(&mut state, at(5_000));

        let next = planner(&definition).resume(&mut state, at(5_000)).unwrap();

        assert_eq!(next, invoke("notify", 1, 3));
        assert_eq!(state.record("sign-off").unwrap().status, StepStatus::Succeeded);
        assert!(state.record("ship").is_none());
    }

    #[test]
    fn an_approval_that_times_out_is_rejected_and_fails_the_run_by_default() {
        let definition = release(json!({ "timeoutMs": 3_600_000 }));
        let mut state = calling_first(&definition);
        let mut state = reclaim(&mut state, at(3_600_000));

        let next = planner(&definition).resume(&mut state, at(3_600_000)).unwrap();

        assert_eq!(next, Next::Stop);
        assert_settled(&state, RunStatus::Failed);
        assert_eq!(
            run_error_of(&state),
            json!({
                "code": "approval_rejected",
                "message": "approval step `sign-off` timed out and was rejected",
                "stepId": "sign-off",
            })
        );
        let sign_off = state.record("sign-off").unwrap();
        assert_eq!(
            (sign_off.status, sign_off.finished_at),
            (StepStatus::Failed, Some(at(3_600_000)))
        );
        let output = json_of(sign_off.output.as_deref());
        assert_eq!(
            (&output["approved"], &output["decidedBy"]),
            (&json!(false), &json!("timeout"))
        );
        assert!(state.record("ship").is_none());
        let transition = state.take_transition();
        assert_eq!(
            (transition.expected, transition.status),
            (RunStatus::Waiting, RunStatus::Failed),
            "fenced on `waiting`, so a decision that came first wins"
        );
    }

    #[test]
    fn an_approval_that_times_out_with_on_timeout_approve_goes_on_as_approved() {
        let definition = release(json!({ "timeoutMs": 60_000, "onTimeout": "approve" }));
        let mut state = calling_first(&definition);
        let mut state = reclaim(&mut state, at(60_000));

        let next = planner(&definition).resume(&mut state, at(60_000)).unwrap();

        assert_eq!(next, invoke("ship", 1, 2));
        assert_held(&state, OWNER, at(60_000));
        let sign_off = state.record("sign-off").unwrap();
        assert_eq!(sign_off.status, StepStatus::Succeeded);
        let output = json_of(sign_off.output.as_deref());
        assert_eq!(
            (&output["approved"], &output["decidedBy"]),
            (&json!(true), &json!("timeout"))
        );
    }

    #[test]
    fn a_timeout_rejection_with_on_reject_continue_goes_on_as_rejected() {
        let definition = release(json!({ "timeoutMs": 60_000, "onReject": "continue" }));
        let mut state = calling_first(&definition);
        let mut state = reclaim(&mut state, at(60_000));

        let next = planner(&definition).resume(&mut state, at(60_000)).unwrap();

        assert_eq!(next, invoke("ship", 1, 2));
        assert_eq!(state.run.error, None);
        let sign_off = state.record("sign-off").unwrap();
        assert_eq!(sign_off.status, StepStatus::Succeeded);
        assert_eq!(json_of(sign_off.output.as_deref())["approved"], json!(false));
    }

    #[test]
    fn a_retryable_failure_waits_its_backoff_then_tries_again() {
        let definition = retried(json!({ "maxAttempts": 3, "backoffMs": 1_000, "multiplier": 2 }));
        let mut state = started(json!({}), at(0));
        assert_eq!(
            planner(&definition).resume(&mut state, at(0)).unwrap(),
            invoke("fetch", 1, 1)
        );

        let next = planner(&definition)
            .compute_finished(
                &mut state,
                "fetch",
                failed("upstream", "GitHub answered 503", true),
                at(100),
            )
            .unwrap();

        assert_eq!(next, Next::Stop);
        assert_eq!(state.run.status, RunStatus::Running);
        assert_eq!(
            state.run.lease_owner, None,
            "nobody holds the run during the backoff"
        );
        assert_eq!(state.run.due_at, Some(at(1_100)));
        let fetch = state.record("fetch").unwrap();
        assert_eq!(
            (fetch.status, fetch.attempts, fetch.finished_at),
            (StepStatus::Running, 1, None)
        );
        assert_eq!(
            step_error(&state, "fetch"),
            json!({ "code": "upstream", "message": "GitHub answered 503", "retryable": true }),
            "the last error shows while the step waits"
        );

        let mut state = reclaim(&mut state, at(1_100));
        let next = planner(&definition).resume(&mut state, at(1_100)).unwrap();
        assert_eq!(
            next,
            invoke("fetch", 2, 1),
            "same idempotency key for every attempt"
        );
        assert_held(&state, OWNER, at(1_100));
        assert_eq!(state.record("fetch").unwrap().attempts, 2);
    }

    #[test]
    fn each_backoff_grows_by_the_multiplier_and_the_last_failure_fails_the_run() {
        let definition = retried(json!({ "maxAttempts": 3, "backoffMs": 1_000, "multiplier": 2 }));
        let planner = planner(&definition);
        let mut state = started(json!({}), at(0));
        planner.resume(&mut state, at(0)).unwrap();
        let unavailable = || failed("upstream", "GitHub answered 503", true);

        planner
            .compute_finished(&mut state, "fetch", unavailable(), at(0))
            .unwrap();
        assert_eq!(due(&state), at(1_000));
        let mut state = reclaim(&mut state, at(1_000));
        assert_eq!(
            planner.resume(&mut state, at(1_000)).unwrap(),
            invoke("fetch", 2, 1)
        );
        planner
            .compute_finished(&mut state, "fetch", unavailable(), at(1_000))
            .unwrap();
        assert_eq!(due(&state), at(3_000), "1000 ms × 2");
        let mut state = reclaim(&mut state, at(3_000));
        assert_eq!(
            planner.resume(&mut state, at(3_000)).unwrap(),
            invoke("fetch", 3, 1)
        );

        let next = planner
            .compute_finished(&mut state, "fetch", unavailable(), at(3_000))
            .unwrap();

        assert_eq!(next, Next::Stop);
        assert_settled(&state, RunStatus::Failed);
        assert_eq!(
            run_error_of(&state),
            json!({
                "code": "step_failed",
                "message": "step `fetch` failed after 3 attempts: GitHub answered 503",
                "stepId": "fetch",
            })
        );
        let fetch = state.record("fetch").unwrap();
        assert_eq!((fetch.status, fetch.attempts), (StepStatus::Failed, 3));
        assert_eq!(fetch.finished_at, Some(at(3_000)));
        assert_eq!(step_error(&state, "fetch")["code"], "upstream");
    }

    #[test]
    fn a_backoff_is_capped_at_an_hour() {
        let definition = retried(json!({ "maxAttempts": 3, "backoffMs": 2_000_000, "multiplier": 10 }));
        let planner = planner(&definition);
        let mut state = started(json!({}), at(0));
        planner.resume(&mut state, at(0)).unwrap();
        planner
            .compute_finished(&mut state, "fetch", failed("e", "m", true), at(0))
            .unwrap();
        assert_eq!(due(&state), at(2_000_000));
        let mut state = reclaim(&mut state, at(2_000_000));
        planner.resume(&mut state, at(2_000_000)).unwrap();

        planner
            .compute_finished(&mut state, "fetch", failed("e", "m", true), at(2_000_000))
            .unwrap();

        assert_eq!(due(&state), at(2_000_000 + 3_600_000), "not 20 000 000 ms");
    }

    #[test]
    fn a_failure_that_is_not_retryable_fails_the_run_at_once_despite_retries_left() {
        let definition = retried(json!({ "maxAttempts": 3, "backoffMs": 1_000 }));
        let mut state = calling_first(&definition);

        let next = planner(&definition)
            .compute_finished(
                &mut state,
                "fetch",
                failed("invalid_params", "repo is missing", false),
                at(50),
            )
            .unwrap();

        assert_eq!(next, Next::Stop);
        assert_settled(&state, RunStatus::Failed);
        assert_eq!(
            run_error_of(&state)["message"],
            "step `fetch` failed: repo is missing"
        );
        let fetch = state.record("fetch").unwrap();
        assert_eq!((fetch.status, fetch.attempts), (StepStatus::Failed, 1));
        assert_eq!(
            step_error(&state, "fetch"),
            json!({ "code": "invalid_params", "message": "repo is missing", "retryable": false })
        );
    }

    #[test]
    fn a_retryable_failure_of_a_step_without_retry_fails_the_run() {
        let definition = two_functions();
        let mut state = calling_first(&definition);

        let next = planner(&definition)
            .compute_finished(
                &mut state,
                "build",
                failed("timeout", "the call timed out", true),
                at(50),
            )
            .unwrap();

        assert_eq!(next, Next::Stop);
        assert_settled(&state, RunStatus::Failed);
        assert_eq!(
            run_error_of(&state)["message"],
            "step `build` failed: the call timed out"
        );
        assert!(state.record("publish").is_none());
    }

    #[test]
    fn a_success_after_a_failed_attempt_clears_the_error_shown() {
        let definition = retried(json!({ "maxAttempts": 2 }));
        let planner = planner(&definition);
        let mut state = started(json!({}), at(0));
        planner.resume(&mut state, at(0)).unwrap();
        planner
            .compute_finished(&mut state, "fetch", failed("e", "m", true), at(10))
            .unwrap();
        assert_eq!(due(&state), at(10), "no backoffMs: due at once");
        let mut state = reclaim(&mut state, at(10));
        planner.resume(&mut state, at(10)).unwrap();

        planner
            .compute_finished(&mut state, "fetch", succeeded(json!({ "rows": 3 })), at(20))
            .unwrap();

        assert_settled(&state, RunStatus::Completed);
        let fetch = state.record("fetch").unwrap();
        assert_eq!((fetch.status, fetch.attempts), (StepStatus::Succeeded, 2));
        assert_eq!(fetch.error, None);
    }

    #[test]
    fn an_overloaded_node_gives_the_attempt_back_and_the_step_is_tried_again_shortly() {
        let definition = two_functions();
        let mut state = calling_first(&definition);

        let next = planner(&definition)
            .compute_finished(&mut state, "build", ComputeResult::Overloaded, at(5))
            .unwrap();

        assert_eq!(next, Next::Stop);
        assert_eq!(state.run.status, RunStatus::Running);
        assert_eq!(state.run.lease_owner, None, "another node may take it");
        assert_eq!(state.run.due_at, Some(at(205)));
        let build = state.record("build").unwrap();
        assert_eq!((build.status, build.attempts), (StepStatus::Running, 0));
        let mut state = reclaim(&mut state, at(205));
        assert_eq!(
            planner(&definition).resume(&mut state, at(205)).unwrap(),
            invoke("build", 1, 1),
            "still the first attempt"
        );
    }

    #[test]
    fn overloads_use_up_neither_the_retry_budget_nor_the_lost_attempt_cap() {
        let definition = two_functions();
        let planner = planner(&definition);
        let mut state = started(json!({}), at(0));
        planner.resume(&mut state, at(0)).unwrap();
        for _ in 0..(MAX_LOST_ATTEMPTS * 3) {
            let now = due(&state);
            planner
                .compute_finished(&mut state, "build", ComputeResult::Overloaded, now)
                .unwrap();
            let now = due(&state);
            state = reclaim(&mut state, now);
            assert_eq!(planner.resume(&mut state, now).unwrap(), invoke("build", 1, 1));
        }
        assert_eq!(state.run.status, RunStatus::Running);
    }

    #[test]
    fn a_call_lost_with_its_worker_is_made_again_by_the_worker_that_takes_the_run_over() {
        let definition = two_functions();
        let mut state = calling_first(&definition);
        // The worker dies during the call; the run falls due when its lease expires.
        let expired = due(&state);
        let mut state = reclaim_by(&mut state, "node-b#1", expired);
        let planner = Planner {
            definition: &definition,
            owner: "node-b#1",
            lease: LEASE,
        };

        let next = planner.resume(&mut state, expired).unwrap();

        assert_eq!(
            next,
            invoke("build", 2, 1),
            "the same key lets the function spot a repeat"
        );
        assert_held(&state, "node-b#1", expired);
        assert_eq!(state.record("build").unwrap().attempts, 2);
    }

    #[test]
    fn a_step_that_keeps_losing_its_worker_fails_with_attempts_lost_after_its_budget_plus_five() {
        let definition = retried(json!({ "maxAttempts": 2 }));
        let planner = planner(&definition);
        let mut state = started(json!({}), at(0));
        assert_eq!(planner.resume(&mut state, at(0)).unwrap(), invoke("fetch", 1, 1));
        for attempt in 2..=7 {
            let expired = due(&state);
            state = reclaim(&mut state, expired);
            assert_eq!(
                planner.resume(&mut state, expired).unwrap(),
                invoke("fetch", attempt, 1)
            );
        }
        let expired = due(&state);
        let mut state = reclaim(&mut state, expired);

        let next = planner.resume(&mut state, expired).unwrap();

        assert_eq!(next, Next::Stop);
        assert_settled(&state, RunStatus::Failed);
        let fetch = state.record("fetch").unwrap();
        assert_eq!((fetch.status, fetch.attempts), (StepStatus::Failed, 7));
        assert_eq!(fetch.finished_at, Some(expired));
        let error = step_error(&state, "fetch");
        assert_eq!(
            (&error["code"], &error["retryable"]),
            (&json!("attempts_lost"), &json!(false))
        );
        let run_error = run_error_of(&state);
        assert_eq!(
            (&run_error["code"], &run_error["stepId"]),
            (&json!("step_failed"), &json!("fetch"))
        );
        assert!(
            run_error["message"].as_str().unwrap().contains("made 7 attempts"),
            "{run_error}"
        );
    }

    #[test]
    fn a_run_at_a_step_its_definition_does_not_have_is_an_error() {
        let definition = two_functions();
        let mut state = started(json!({}), at(0));
        state.run.current_step = Some("gone".into());

        let error = planner(&definition).resume(&mut state, at(0)).unwrap_err();

        assert!(error.to_string().contains("has no step `gone`"), "{error}");
    }

    #[test]
    fn a_state_the_engine_cannot_resume_is_an_error_not_a_guess() {
        let definition = two_functions();
        let mut state = calling_first(&definition);
        let mut record = state.record("build").unwrap().clone();
        record.status = StepStatus::Cancelled;
        state.remember(record).unwrap();
        let expired = due(&state);
        let mut state = reclaim(&mut state, expired);

        let error = planner(&definition).resume(&mut state, expired).unwrap_err();

        assert!(error.to_string().contains("cannot resume"), "{error}");
        assert!(
            planner(&definition)
                .compute_finished(&mut state, "publish", succeeded(json!({})), at(0))
                .is_err(),
            "a step that was never entered has no record to finish"
        );
    }
}
