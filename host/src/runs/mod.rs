//! Runs as a capability: start, read, wait, list, decide approvals, cancel. The
//! REST API (and through it MCP and the CLI) goes through here; the engine's workers
//! ([`crate::engine`]) drive what is started, and both meet in the store.
//!
//! - [`view`]: a run as the API shows it, every step of its definition listed.

pub mod view;

pub use view::{RunView, StepView};

use crate::engine::{Definitions, plan};
use crate::orchestrations::model::Step;
use crate::store::{
    CancelOutcome, DecideOutcome, RUN_TRANSACTIONS, RunRecord, RunStatus, Settled, StepRecord, Store, now,
};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often a caller waiting on a run reads it again without being told it
/// settled: the same safety net as the workers' idle poll.
const WAIT_RECHECK: Duration = Duration::from_secs(1);

/// The largest run input, as JSON text.
pub const MAX_RUN_INPUT_BYTES: usize = 1 << 20;

/// The longest comment an approval decision may carry.
const MAX_COMMENT_CHARS: usize = 4000;

/// Who decides through the API: the bootstrap admin token is the only principal.
const API_PRINCIPAL: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("run `{0}` not found")]
    NotFound(String),
    #[error("orchestration `{0}` not found")]
    OrchestrationNotFound(String),
    #[error("run `{run}` has no step `{step}`")]
    StepNotFound { run: String, step: String },
    #[error("step `{0}` is not an approval step")]
    NotAnApproval(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("run input is {0} bytes; it may be at most {MAX_RUN_INPUT_BYTES}")]
    InputTooLarge(usize),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = RunsError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Runs {
    store: Store,
    /// Shared with the workers ([`crate::engine::Engine::definitions`]), so a version
    /// is parsed once per process.
    definitions: Definitions,
}

impl Runs {
    pub fn new(store: Store, definitions: Definitions) -> Self {
        Self { store, definitions }
    }

    /// Database transactions this process issued for runs (start, claim, step
    /// changes, lease renewals, decisions), for `/metrics`.
    pub fn transactions(&self) -> u64 {
        RUN_TRANSACTIONS.load(Ordering::Relaxed)
    }

    /// Starts a run of the orchestration's current version; workers pick it up at
    /// once. `input` must be a JSON object (absent means `{}`).
    pub async fn start(&self, orchestration_id: &str, input: Option<Value>) -> Result<RunView> {
        let input = input.unwrap_or_else(|| Value::Object(Default::default()));
        if !input.is_object() {
            return Err(RunsError::InvalidInput(
                "input must be a JSON object: its keys become the steps' triggerParams".into(),
            ));
        }
        let input = input.to_string();
        if input.len() > MAX_RUN_INPUT_BYTES {
            return Err(RunsError::InputTooLarge(input.len()));
        }
        let store = &self.store;
        let orchestration = store
            .get_orchestration(orchestration_id)
            .await?
            .ok_or_else(|| RunsError::OrchestrationNotFound(orchestration_id.to_owned()))?;
        let now = now();
        let run = RunRecord::pending(
            uuid::Uuid::new_v4().to_string(),
            orchestration.id,
            orchestration.version,
            input,
            now,
        );
        store.create_run(&run).await?;
        Ok(view::summary(run)?)
    }

    pub async fn get(&self, run_id: &str) -> Result<RunView> {
        let (run, steps) = self
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| RunsError::NotFound(run_id.to_owned()))?;
        self.view(run, steps).await
    }

    /// The run once it is no longer pending or running (finished, or waiting on an
    /// approval), or as it is when `timeout` passes first.
    ///
    /// The run is read again when it, or a run not named, settles, so a caller costs
    /// nothing while other runs finish; and at least every [`WAIT_RECHECK`], in case
    /// the word was lost (a process that died between its commit and its
    /// notification).
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<RunView> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first read: a settling between a read and the wait
        // after it is buffered, not missed.
        let mut settled = self.store.signals().settled.subscribe();
        loop {
            let run = self.get(run_id).await?;
            if !matches!(run.status, RunStatus::Pending | RunStatus::Running) {
                return Ok(run);
            }
            let recheck = tokio::time::Instant::now() + WAIT_RECHECK;
            loop {
                tokio::select! {
                    heard = settled.recv() => match heard {
                        Ok(Settled::Run(run)) if *run != *run_id => continue,
                        // This run, a run not named, or more than the backlog missed.
                        Ok(_) | Err(RecvError::Lagged(_)) => break,
                        // Only once the store is dropped, which `self` prevents.
                        Err(RecvError::Closed) => return self.get(run_id).await,
                    },
                    () = tokio::time::sleep_until(recheck) => break,
                    () = tokio::time::sleep_until(deadline) => return self.get(run_id).await,
                }
            }
        }
    }

    /// The newest `limit` runs of an orchestration (only those in `status`, if
    /// given), newest first, without their steps.
    pub async fn list(
        &self,
        orchestration_id: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunView>> {
        let runs = self.store.list_runs(orchestration_id, status, limit).await?;
        if runs.is_empty() && self.store.get_orchestration(orchestration_id).await?.is_none() {
            return Err(RunsError::OrchestrationNotFound(orchestration_id.to_owned()));
        }
        runs.into_iter()
            .map(view::summary)
            .collect::<anyhow::Result<_>>()
            .map_err(Into::into)
    }

    /// Approves or rejects a waiting approval step.
    pub async fn decide(
        &self,
        run_id: &str,
        step_id: &str,
        approved: bool,
        comment: Option<String>,
    ) -> Result<RunView> {
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            return Err(RunsError::InvalidInput(format!(
                "comment may be at most {MAX_COMMENT_CHARS} characters"
            )));
        }
        let (run, _) = self
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| RunsError::NotFound(run_id.to_owned()))?;
        let definition = self.definitions.of(&run).await?;
        let step = definition
            .steps
            .iter()
            .find(|s| s.id() == step_id)
            .ok_or_else(|| RunsError::StepNotFound {
                run: run_id.to_owned(),
                step: step_id.to_owned(),
            })?;
        let Step::Approval(approval) = step else {
            return Err(RunsError::NotAnApproval(step_id.to_owned()));
        };
        let now = now();
        let decision = plan::approval_decision(approval, approved, API_PRINCIPAL, comment.as_deref(), now);
        match self.store.decide(run_id, &decision, now).await? {
            DecideOutcome::Decided => self.get(run_id).await,
            DecideOutcome::NotFound => Err(RunsError::NotFound(run_id.to_owned())),
            DecideOutcome::NotWaiting { status, .. } => {
                Err(RunsError::Conflict(match status.is_finished() {
                    true => format!(
                        "run `{run_id}` is {}; nothing waits for a decision",
                        status.as_str()
                    ),
                    false => format!("step `{step_id}` is not waiting for a decision"),
                }))
            }
        }
    }

    pub async fn cancel(&self, run_id: &str) -> Result<RunView> {
        let error = plan::run_error("cancelled", "the run was cancelled through the API", None);
        match self.store.cancel_run(run_id, &error, now()).await? {
            CancelOutcome::Cancelled => self.get(run_id).await,
            CancelOutcome::NotFound => Err(RunsError::NotFound(run_id.to_owned())),
            CancelOutcome::Finished(status) => Err(RunsError::Conflict(format!(
                "run `{run_id}` is already {}",
                status.as_str()
            ))),
        }
    }

    async fn view(&self, run: RunRecord, steps: Vec<StepRecord>) -> Result<RunView> {
        let definition = self.definitions.of(&run).await?;
        Ok(view::full(run, steps, &definition)?)
    }
}
