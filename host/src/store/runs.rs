//! Runs and their step records (docs/architecture.md#storage and
//! docs/architecture.md#how-a-run-travels): the durable state of the engine. Every
//! method is one transaction. Worker writes are fenced on the lease owner, so a worker
//! that lost its run (lease expired, run cancelled or decided meanwhile) writes
//! nothing; API writes (approve, reject, cancel) are conditional on the run's status,
//! so they and workers never overwrite each other.
//!
//! The statements are written once here; claiming runs and applying a worker's
//! transition differ enough between the databases to be written per backend
//! ([`Queue`], in `sqlite.rs` and `postgres.rs`).
//!
//! Wake-ups ([`Wake`]) are decided in one place, the [`Store`] methods below: a change
//! that gives workers something to do (a new run, a decision, a run parked for a delay
//! or a retry, released leases) wakes [`Signals::work`]; a run that stops (finished,
//! or waiting on a human) wakes [`Signals::settled`]. They fire in this process after
//! the change commits. On PostgreSQL the same wake (less the work of a parked run,
//! which stays with the worker's own process) crosses processes as a notification,
//! sent after the commit, so that whoever hears it sees the change (see `postgres.rs`
//! for where each goes and how they are batched).

use super::dialect::{Connection, Dialect, Query};
use super::sql::SqlStore;
use super::{Listen, Store, dispatch};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, watch};

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

impl RunRecord {
    /// A run just started: `pending`, due at `now`, with nothing done yet.
    pub fn pending(
        id: String,
        orchestration_id: String,
        orchestration_version: i64,
        input: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            orchestration_id,
            orchestration_version,
            status: RunStatus::Pending,
            input,
            error: None,
            current_step: None,
            step_executions: 0,
            due_at: Some(now),
            lease_owner: None,
            created_at: now,
            updated_at: now,
        }
    }
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

/// What one claim took, and when a worker should next look.
#[derive(Debug, Clone)]
pub struct Claim {
    pub runs: Vec<ClaimedRun>,
    /// The earliest due time after the claim's `now` (a delay, an approval timeout, a
    /// retry backoff, a lease that may expire), read in the claim's transaction so that
    /// finding nothing to do costs no second query. Runs due now but locked by a
    /// concurrent claim are not counted: they are that claim's.
    pub next_due: Option<DateTime<Utc>>,
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
    /// Which run settled, so that a caller waiting on one run reads it again only
    /// when that run settles, not whenever any does.
    pub settled: broadcast::Sender<Settled>,
}

/// A run that settled, or [`Settled::Any`] when which is not known (a listener that
/// reconnected may have missed some).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Run(Arc<str>),
    Any,
}

/// Settled runs a slow waiter may fall behind by before it hears [`Settled::Any`]
/// instead (a lagging receiver reads its run again): the queue stays bounded however
/// slow a waiter is.
const SETTLED_BACKLOG: usize = 1024;

impl Default for Signals {
    fn default() -> Self {
        Self {
            work: watch::Sender::new(0),
            settled: broadcast::Sender::new(SETTLED_BACKLOG),
        }
    }
}

impl Signals {
    /// Fires `wake` after a change to `run`, or to runs not named (`None`).
    pub fn fire(&self, wake: Wake, run: Option<&str>) {
        if wake.work {
            self.work.send_modify(|n| *n = n.wrapping_add(1));
        }
        if wake.settled {
            // No receiver (nobody waits) is no error.
            let _ = self
                .settled
                .send(run.map_or(Settled::Any, |run| Settled::Run(run.into())));
        }
    }
}

/// Who must hear of a committed change: workers (`work`: a run fell due) and waiters
/// (`settled`: a run finished or began waiting on a person).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wake {
    pub work: bool,
    pub settled: bool,
}

impl Wake {
    pub const NONE: Wake = Wake {
        work: false,
        settled: false,
    };
    pub const WORK: Wake = Wake {
        work: true,
        settled: false,
    };
    pub const SETTLED: Wake = Wake {
        work: false,
        settled: true,
    };
    pub const ALL: Wake = Wake {
        work: true,
        settled: true,
    };

    /// After a worker's transition: a run that stops running settles; a running run
    /// handed back to be picked up at a time (a delay, a retry backoff) is work, or
    /// workers would notice it only at their next poll.
    pub fn after(transition: &Transition) -> Wake {
        Wake {
            work: transition.status == RunStatus::Running
                && transition.lease_owner.is_none()
                && transition.due_at.is_some(),
            settled: transition.status != RunStatus::Running,
        }
    }

    /// After a decision: approval lets workers route on; a rejection ends the run.
    fn after_decision(decision: &Decision) -> Wake {
        match decision.run_status {
            RunStatus::Running => Wake::WORK,
            _ => Wake::SETTLED,
        }
    }
}

/// Transactions issued for runs, by every method here; `/metrics` exposes it so that
/// the cost per step is counted, not estimated.
pub static RUN_TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

pub(super) fn count_transaction() {
    RUN_TRANSACTIONS.fetch_add(1, Ordering::Relaxed);
}

/// What differs per backend: claiming runs (`FOR UPDATE SKIP LOCKED` against a loop
/// under SQLite's write lock) and applying a transition in one round trip (a batch of
/// statements against one statement of data-modifying CTEs).
pub trait Queue {
    fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim>> + Send;

    /// Writes `transition` if `owner` still holds the run in the expected status.
    fn apply(
        &self,
        run_id: &str,
        owner: &str,
        transition: &Transition,
    ) -> impl Future<Output = Result<bool>> + Send;
}

impl Store {
    /// After a change to `run` (or to runs not named) commits: wakes this process's
    /// workers or waiters, and tells other processes.
    fn woke(&self, wake: Wake, run: Option<&str>) {
        self.signals().fire(wake, run);
        self.announce(wake, run);
    }

    fn announce(&self, wake: Wake, run: Option<&str>) {
        match self {
            Store::Sqlite(backend) => backend.dialect.announce(&backend.pool, wake, run),
            Store::Postgres(backend) => backend.dialect.announce(&backend.pool, wake, run),
        }
    }

    /// Inserts a new `pending` run, due now, and wakes workers.
    pub async fn create_run(&self, run: &RunRecord) -> Result<()> {
        let wake = Wake::WORK;
        dispatch!(self, b => b.create_run(run))?;
        self.woke(wake, Some(&run.id));
        Ok(())
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
    ) -> Result<Claim> {
        dispatch!(self, b => b.claim_runs(owner, limit, now, lease_until))
    }

    /// Writes `transition` if `owner` still holds the run in the expected status;
    /// `false` (nothing written) otherwise.
    pub async fn apply(&self, run_id: &str, owner: &str, transition: &Transition) -> Result<bool> {
        let wake = Wake::after(transition);
        let applied = dispatch!(self, b => b.apply(run_id, owner, transition))?;
        if applied {
            // Work a transition creates (a run parked for a delay or a retry) is for
            // this worker's own process; only a settled run concerns others.
            self.signals().fire(wake, Some(run_id));
            self.announce(Wake { work: false, ..wake }, Some(run_id));
        }
        Ok(applied)
    }

    /// Extends `owner`'s lease on a run; `false` when it no longer holds it.
    pub async fn renew_lease(&self, run_id: &str, owner: &str, until: DateTime<Utc>) -> Result<bool> {
        dispatch!(self, b => b.renew_lease(run_id, owner, until))
    }

    /// Gives back every run held under a lease token that starts with
    /// `owner_prefix`, due at once (a worker shutting down).
    pub async fn release_leases(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
        let wake = Wake::WORK;
        let released = dispatch!(self, b => b.release_leases(owner_prefix, now))?;
        if released > 0 {
            self.woke(wake, None);
        }
        Ok(released)
    }

    /// Records the decision on a waiting approval step, if the run is waiting on it.
    pub async fn decide(
        &self,
        run_id: &str,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<DecideOutcome> {
        let wake = Wake::after_decision(decision);
        let outcome = dispatch!(self, b => b.decide(run_id, decision, now))?;
        if outcome == DecideOutcome::Decided {
            self.woke(wake, Some(run_id));
        }
        Ok(outcome)
    }

    /// Cancels an unfinished run; its running or waiting step is cancelled too.
    pub async fn cancel_run(&self, run_id: &str, error: &str, now: DateTime<Utc>) -> Result<CancelOutcome> {
        let wake = Wake::SETTLED;
        let outcome = dispatch!(self, b => b.cancel_run(run_id, error, now))?;
        if outcome == CancelOutcome::Cancelled {
            self.woke(wake, Some(run_id));
        }
        Ok(outcome)
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

    pub fn signals(&self) -> &Signals {
        match self {
            Store::Sqlite(b) => &b.signals,
            Store::Postgres(b) => &b.signals,
        }
    }

    /// Relays other processes' run changes into [`Store::signals`] (PostgreSQL
    /// `LISTEN`), those that `listen` asks for; a no-op on SQLite, which has no other
    /// processes. Idempotent.
    pub async fn listen_for_runs(&self, listen: Listen) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(b) => b.listen_for_runs(listen).await,
        }
    }
}

/// The columns of [`RunRecord`], in its order.
pub(super) const RUN_COLUMNS: &str = "id, orchestration_id, orchestration_version, status, input, error, \
     current_step, step_executions, due_at, lease_owner, created_at, updated_at";

/// The columns of [`StepRecord`], in its order.
pub(super) const STEP_COLUMNS: &str =
    "step_id, execution, status, attempts, output, error, logs, started_at, finished_at";

/// The run statements both backends share. Each write is one transaction, counted.
impl<D: Dialect> SqlStore<D> {
    pub(super) async fn create_run(&self, run: &RunRecord) -> Result<()> {
        count_transaction();
        let insert = Query::new(format!(
            "INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&run.id)
        .bind(&run.orchestration_id)
        .bind(run.orchestration_version)
        .bind(run.status)
        .bind(&run.input)
        .bind(&run.error)
        .bind(&run.current_step)
        .bind(run.step_executions)
        .bind(run.due_at)
        .bind(&run.lease_owner)
        .bind(run.created_at)
        .bind(run.updated_at);
        D::execute(&mut *self.writer().await?, &insert)
            .await
            .context("inserting a run")?;
        Ok(())
    }

    pub(super) async fn renew_lease(&self, run_id: &str, owner: &str, until: DateTime<Utc>) -> Result<bool> {
        count_transaction();
        let query = Query::new("UPDATE runs SET due_at = $3 WHERE id = $1 AND lease_owner = $2")
            .bind(run_id)
            .bind(owner)
            .bind(until);
        let renewed = D::execute(&mut *self.writer().await?, &query)
            .await
            .context("renewing a lease")?;
        Ok(renewed == 1)
    }

    pub(super) async fn release_leases(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
        count_transaction();
        let query = Query::new(
            "UPDATE runs SET lease_owner = NULL, due_at = $2 WHERE substr(lease_owner, 1, length($1)) = $1",
        )
        .bind(owner_prefix)
        .bind(now);
        D::execute(&mut *self.writer().await?, &query)
            .await
            .context("releasing leases")
    }

    pub(super) async fn decide(
        &self,
        run_id: &str,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<DecideOutcome> {
        count_transaction();
        let mut tx = self.begin_write().await?;
        let due_at = (decision.run_status == RunStatus::Running).then_some(now);
        let run = Query::new(
            "UPDATE runs SET status = $3, due_at = $4, lease_owner = NULL, error = $5, updated_at = $6 \
             WHERE id = $1 AND status = $7 AND current_step = $2",
        )
        .bind(run_id)
        .bind(decision.step_id.as_str())
        .bind(decision.run_status)
        .bind(due_at)
        .bind(&decision.run_error)
        .bind(now)
        .bind(RunStatus::Waiting);
        if D::execute(&mut tx, &run).await.context("recording a decision")? == 0 {
            return Ok(match status_of::<D>(&mut tx, run_id).await? {
                None => DecideOutcome::NotFound,
                Some(status) => DecideOutcome::NotWaiting { status },
            });
        }
        let step = Query::new(
            "UPDATE run_steps SET status = $3, output = $4, finished_at = $5 WHERE run_id = $1 AND step_id = $2",
        )
        .bind(run_id)
        .bind(decision.step_id.as_str())
        .bind(decision.step_status)
        .bind(decision.output.as_str())
        .bind(now);
        D::execute(&mut tx, &step).await.context("recording a decision")?;
        tx.commit().await?;
        Ok(DecideOutcome::Decided)
    }

    pub(super) async fn cancel_run(
        &self,
        run_id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome> {
        count_transaction();
        let mut tx = self.begin_write().await?;
        let run = Query::new(
            "UPDATE runs SET status = $4, due_at = NULL, lease_owner = NULL, error = $2, updated_at = $3 \
             WHERE id = $1 AND status IN ($5, $6, $7)",
        )
        .bind(run_id)
        .bind(error)
        .bind(now)
        .bind(RunStatus::Cancelled)
        .bind(RunStatus::Pending)
        .bind(RunStatus::Running)
        .bind(RunStatus::Waiting);
        if D::execute(&mut tx, &run).await.context("cancelling a run")? == 0 {
            return Ok(match status_of::<D>(&mut tx, run_id).await? {
                None => CancelOutcome::NotFound,
                Some(status) => CancelOutcome::Finished(status),
            });
        }
        let steps = Query::new(
            "UPDATE run_steps SET status = $3, finished_at = $2 WHERE run_id = $1 AND status IN ($4, $5)",
        )
        .bind(run_id)
        .bind(now)
        .bind(StepStatus::Cancelled)
        .bind(StepStatus::Running)
        .bind(StepStatus::Waiting);
        D::execute(&mut tx, &steps)
            .await
            .context("cancelling a run's steps")?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled)
    }

    pub(super) async fn get_run(&self, run_id: &str) -> Result<Option<(RunRecord, Vec<StepRecord>)>> {
        let mut connection = self.reader().await?;
        let query = Query::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1")).bind(run_id);
        let run: Option<RunRecord> = D::fetch_optional(&mut connection, &query)
            .await
            .context("reading a run")?;
        match run {
            None => Ok(None),
            Some(run) => Ok(Some((run, select_steps::<D>(&mut connection, run_id).await?))),
        }
    }

    pub(super) async fn list_runs(
        &self,
        orchestration_id: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        let query = Query::new(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE orchestration_id = $1 AND ($3 IS NULL OR status = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(orchestration_id)
        .bind(limit)
        .bind(status.map(RunStatus::as_str));
        D::fetch_all(&mut *self.reader().await?, &query)
            .await
            .context("listing runs")
    }
}

/// The earliest due time after `now`; see [`Claim::next_due`].
pub(super) async fn next_due<D: Dialect>(
    connection: &mut Connection<D>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let query = Query::new("SELECT MIN(due_at) FROM runs WHERE due_at > $1").bind(now);
    let next: Option<(Option<DateTime<Utc>>,)> = D::fetch_optional(connection, &query)
        .await
        .context("reading the next due time")?;
    Ok(next.and_then(|(due,)| due))
}

/// The steps of `run_id`, in the order they were entered.
pub(super) async fn select_steps<D: Dialect>(
    connection: &mut Connection<D>,
    run_id: &str,
) -> Result<Vec<StepRecord>> {
    let query = Query::new(format!(
        "SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = $1 ORDER BY execution"
    ))
    .bind(run_id);
    D::fetch_all(connection, &query)
        .await
        .context("reading step records")
}

async fn status_of<D: Dialect>(connection: &mut Connection<D>, run_id: &str) -> Result<Option<RunStatus>> {
    let query = Query::new("SELECT status FROM runs WHERE id = $1").bind(run_id);
    let status: Option<(String,)> = D::fetch_optional(connection, &query)
        .await
        .context("reading a run")?;
    Ok(status.map(|(status,)| status.try_into()).transpose()?)
}
