//! Runs and their step records (ARCHITECTURE.md §5, §6): the durable state of the
//! engine. Every method is one transaction. Worker writes are fenced on the lease
//! owner, so a worker that lost its run (lease expired, run cancelled or decided
//! meanwhile) writes nothing; API writes (approve, reject, cancel) are conditional on
//! the run's status, so they and workers never overwrite each other.
//!
//! Wake-ups: a change that gives workers something to do (a new run, a decision, a
//! run parked for a delay or a retry, released leases) signals [`Signals::work`]; a
//! run that stops (finished, or waiting on a human) signals [`Signals::settled`]. On PostgreSQL the signal crosses processes through
//! `NOTIFY trellis_runs` once a node calls [`Store::listen_for_runs`].

use super::{Store, dispatch};
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

pub use trellis_types::{RunStatus, StepStatus};

/// A `runs` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunRecord {
    pub id: String,
    pub orchestration_id: String,
    pub orchestration_version: i64,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    /// The input object as JSON text.
    pub input: String,
    /// `{ code, message }` as JSON text.
    pub error: Option<String>,
    pub current_step: Option<String>,
    pub step_executions: i64,
    pub due_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A `run_steps` row: the latest execution of one step in one run.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StepRecord {
    pub step_id: String,
    pub execution: i64,
    #[sqlx(try_from = "String")]
    pub status: StepStatus,
    pub attempts: i64,
    /// JSON text, redacted before it gets here.
    pub output: Option<String>,
    /// `{ code, message, retryable }` as JSON text, redacted.
    pub error: Option<String>,
    /// The function's log entries as a JSON array, redacted.
    pub logs: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run a worker now holds, with its step records.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
    /// The worker whose lease had expired, when this claim is a takeover.
    pub previous_owner: Option<String>,
}

/// What a worker writes in one transaction: the run's new state and the step
/// records that changed. Applied only while the worker still holds the run and the
/// run is still in `expected` status.
#[derive(Debug, Clone)]
pub struct Transition {
    pub expected: RunStatus,
    pub status: RunStatus,
    pub current_step: Option<String>,
    pub step_executions: i64,
    pub due_at: Option<DateTime<Utc>>,
    /// `None` releases the run.
    pub lease_owner: Option<String>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

/// A human's (or a timeout's) answer to a waiting approval step, as the API writes it.
#[derive(Debug, Clone)]
pub struct Decision {
    pub step_id: String,
    pub step_status: StepStatus,
    /// `{ approved, decidedBy, comment, decidedAt }` as JSON text.
    pub output: String,
    /// `Running` to let a worker route on, `Failed` to end the run here.
    pub run_status: RunStatus,
    pub run_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DecideOutcome {
    Decided,
    NotFound,
    /// The run is not waiting on that step (decided already, timed out, cancelled,
    /// or at another step).
    NotWaiting {
        status: RunStatus,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    Cancelled,
    NotFound,
    Finished(RunStatus),
}

/// In-process wake-ups; see the module docs.
#[derive(Debug)]
pub struct Signals {
    pub work: watch::Sender<u64>,
    pub settled: watch::Sender<u64>,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            work: watch::Sender::new(0),
            settled: watch::Sender::new(0),
        }
    }
}

impl Signals {
    pub fn work(&self) {
        self.work.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn settled(&self) {
        self.settled.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Transition {
    /// A running run handed back to be picked up again at a time (a delay, a retry
    /// backoff): workers must learn of it, or they would notice it only at their
    /// next poll.
    pub fn parks_running(&self) -> bool {
        self.status == RunStatus::Running && self.lease_owner.is_none() && self.due_at.is_some()
    }
}

/// Transactions issued for runs, by every method here; `/metrics` exposes it so that
/// the cost per step is counted, not estimated.
pub static RUN_TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

pub(super) fn count_transaction() {
    RUN_TRANSACTIONS.fetch_add(1, Ordering::Relaxed);
}

/// The run operations every backend provides.
pub(super) trait RunBackend {
    fn create_run(&self, run: &RunRecord) -> impl Future<Output = Result<()>> + Send;

    fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ClaimedRun>>> + Send;

    fn apply(
        &self,
        run_id: &str,
        owner: &str,
        transition: &Transition,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn renew_lease(
        &self,
        run_id: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn release_leases(
        &self,
        owner_prefix: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64>> + Send;

    fn decide(
        &self,
        run_id: &str,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DecideOutcome>> + Send;

    fn cancel_run(
        &self,
        run_id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<CancelOutcome>> + Send;

    fn get_run(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<(RunRecord, Vec<StepRecord>)>>> + Send;

    fn list_runs(
        &self,
        orchestration_id: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RunRecord>>> + Send;

    fn next_due(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>>> + Send;

    fn signals(&self) -> &Signals;
}

impl Store {
    /// Inserts a new `pending` run, due now, and wakes workers.
    pub async fn create_run(&self, run: &RunRecord) -> Result<()> {
        dispatch!(self, b => b.create_run(run))
    }

    /// Takes up to `limit` due runs for `owner` (a lease token, unique per claim)
    /// until `lease_until`: new runs become `running`; runs whose lease expired are
    /// taken over. Step records are read in the same transaction, so they match the
    /// runs as claimed.
    pub async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedRun>> {
        dispatch!(self, b => b.claim_runs(owner, limit, now, lease_until))
    }

    /// Writes `transition` if `owner` still holds the run in the expected status;
    /// `false` (nothing written) otherwise.
    pub async fn apply(&self, run_id: &str, owner: &str, transition: &Transition) -> Result<bool> {
        dispatch!(self, b => b.apply(run_id, owner, transition))
    }

    /// Extends `owner`'s lease on a run; `false` when it no longer holds it.
    pub async fn renew_lease(&self, run_id: &str, owner: &str, until: DateTime<Utc>) -> Result<bool> {
        dispatch!(self, b => b.renew_lease(run_id, owner, until))
    }

    /// Gives back every run held under a lease token that starts with
    /// `owner_prefix`, due at once (a worker shutting down).
    pub async fn release_leases(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
        dispatch!(self, b => b.release_leases(owner_prefix, now))
    }

    /// Records the decision on a waiting approval step, if the run is waiting on it.
    pub async fn decide(
        &self,
        run_id: &str,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<DecideOutcome> {
        dispatch!(self, b => b.decide(run_id, decision, now))
    }

    /// Cancels an unfinished run; its running or waiting step is cancelled too.
    pub async fn cancel_run(&self, run_id: &str, error: &str, now: DateTime<Utc>) -> Result<CancelOutcome> {
        dispatch!(self, b => b.cancel_run(run_id, error, now))
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Option<(RunRecord, Vec<StepRecord>)>> {
        dispatch!(self, b => b.get_run(run_id))
    }

    /// The newest `limit` runs of an orchestration, newest first, optionally only
    /// those in `status`.
    pub async fn list_runs(
        &self,
        orchestration_id: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        dispatch!(self, b => b.list_runs(orchestration_id, status, limit))
    }

    /// When the next run falls due (including leases that may expire).
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        dispatch!(self, b => b.next_due())
    }

    pub fn signals(&self) -> &Signals {
        match self {
            Store::Sqlite(b) => b.signals(),
            Store::Postgres(b) => b.signals(),
        }
    }

    /// Relays other processes' run changes into [`Store::signals`] (PostgreSQL
    /// `LISTEN`); a no-op on SQLite, which has no other processes. Idempotent.
    pub async fn listen_for_runs(&self) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(b) => b.listen_for_runs().await,
        }
    }
}

/// The columns of [`RunRecord`], in its order.
macro_rules! run_columns {
    () => {
        "id, orchestration_id, orchestration_version, status, input, error, current_step, \
         step_executions, due_at, lease_owner, created_at, updated_at"
    };
}

/// The columns of [`StepRecord`], in its order.
macro_rules! step_columns {
    () => {
        "step_id, execution, status, attempts, output, error, logs, started_at, finished_at"
    };
}

pub(super) use {run_columns, step_columns};
