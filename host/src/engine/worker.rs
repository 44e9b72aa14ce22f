//! Workers: claim due runs, drive each through its steps, and commit every state
//! change in one transaction fenced on this worker's lease.
//!
//! A worker holds a run under a lease (the run's `due_at` while leased) that it
//! extends with every commit and, during a function call, on a timer. If the worker
//! dies, the lease runs out, the run falls due, and any worker takes it over from its
//! last committed state; a step whose call was lost runs again with the next attempt
//! number and the same idempotency key. A worker that finds its commit refused (the
//! run was cancelled or decided meanwhile, or its lease was taken over) drops the run.
//!
//! Waking: new runs, decisions and released leases signal at once (in-process, and
//! through `LISTEN/NOTIFY` across processes on PostgreSQL), and runs parked for a
//! delay or a retry in-process; their due times (the end of a delay, an approval timeout, a retry
//! backoff, an expired lease) are met by sleeping until the next `due_at`, with a
//! slow poll as a safety net.
//!
//! Stopping: a worker stops claiming, gives the runs it drives [`SHUTDOWN_GRACE`] to
//! reach their next commit, then drops the rest and hands every run it holds back.

use super::Engine;
use super::compute::Call;
use super::plan::{Next, Planner, RunState, run_error};
use crate::orchestrations::model::Step;
use crate::store::{ClaimedRun, RunStatus, Transition, now};
use anyhow::Result;
use chrono::TimeDelta;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

/// How long a stopping worker lets in-flight function calls finish, so a restart
/// does not cost them an attempt.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs one worker drives at once unless configured (`--worker-concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 64;

/// A claim's length unless configured (`--lease-ms`): a dead worker's runs are taken
/// over within 15 s, while a renewal (every third of it) has seconds to spare on a
/// busy database.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The longest an idle worker sleeps without checking for due runs: the safety net
/// for a missed wake-up costs one cheap query a second.
const DEFAULT_IDLE_POLL: Duration = Duration::from_secs(1);

/// Renewals per lease length during a function call: when one fails, two thirds of
/// the lease are left, and the next try still comes with a third to run.
const RENEWALS_PER_LEASE: u32 = 3;

/// How long a worker waits after a failed claim before claiming again: a database
/// that is down or failing over is not hammered, and a passing hiccup costs runs
/// half a second.
const CLAIM_RETRY_DELAY: Duration = Duration::from_millis(500);

/// The shortest sleep until the next due run: tokio's timers count milliseconds, so
/// a shorter one would spin.
const MIN_DUE_SLEEP: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Runs one worker drives at once. Most of a run's time is spent waiting on the
    /// database or a function, so this is well above the core count; function calls
    /// are further bounded by the runtime's own concurrency limit.
    pub concurrency: usize,
    /// How long a claim lasts without renewal: how long a dead worker's runs wait
    /// before another worker takes them over.
    pub lease: Duration,
    /// The longest an idle worker sleeps without checking for due runs, in case a
    /// wake-up was missed.
    pub idle_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            lease: DEFAULT_LEASE,
            idle_poll: DEFAULT_IDLE_POLL,
        }
    }
}

pub struct Worker {
    engine: Engine,
    /// Unique per worker and process start: a restarted process never mistakes
    /// its predecessor's leases for its own.
    id: String,
    config: WorkerConfig,
}

/// A running worker; [`WorkerHandle::stop`] releases its runs for others.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Worker {
    pub fn spawn(engine: Engine, config: WorkerConfig) -> WorkerHandle {
        let id = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let worker = Arc::new(Worker { engine, id, config });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker.run(stopped));
        WorkerHandle { stop, task }
    }

    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, concurrency = self.config.concurrency, "worker started");
        let store = &self.engine.store;
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let slot_freed = Arc::new(Notify::new());
        let mut work = store.signals().work.subscribe();
        let mut runs = JoinSet::new();
        let mut claims: u64 = 0;
        while !*stopped.borrow() {
            while runs.try_join_next().is_some() {}
            let free = slots.available_permits();
            // When to look again if nothing wakes this worker first.
            let mut next_look = self.config.idle_poll;
            if free > 0 {
                // Anything signalled from here on is after this claim's snapshot.
                work.mark_unchanged();
                let lease = self.lease();
                let now = now();
                // A lease token per claim: if this worker's lease on a run expired
                // and it claimed the run again, the older task's writes are refused.
                claims += 1;
                let token = format!("{}#{claims}", self.id);
                match store.claim_runs(&token, free as u32, now, now + lease).await {
                    Ok(claim) => {
                        if claim.runs.len() == free {
                            // There may be more: claim again once slots free up.
                            next_look = Duration::ZERO;
                        } else if let Some(due) = claim.next_due {
                            next_look = (due - now)
                                .to_std()
                                .unwrap_or_default()
                                .clamp(MIN_DUE_SLEEP, next_look);
                        }
                        for run in claim.runs {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let worker = self.clone();
                            let slot_freed = slot_freed.clone();
                            let token = token.clone();
                            runs.spawn(async move {
                                worker.drive(run, token).await;
                                drop(permit);
                                slot_freed.notify_one();
                            });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(worker = %self.id, error = format!("{error:#}"), "claiming runs failed; retrying");
                        next_look = CLAIM_RETRY_DELAY;
                    }
                }
            }
            let full = slots.available_permits() == 0;
            if next_look.is_zero() && !full {
                continue;
            }
            // Sleeping until the next due time rather than polling: only what falls
            // due, a wake-up or a freed slot (when full) makes this worker claim, so
            // an idle worker costs the database nothing.
            tokio::select! {
                _ = work.changed() => {}
                () = slot_freed.notified(), if full => {}
                () = tokio::time::sleep(next_look), if !full => {}
                () = tokio::time::sleep(self.config.idle_poll), if full => {}
                _ = stopped.changed() => {}
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, async {
            while runs.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(worker = %self.id, "runs still in progress after the grace period are handed back");
        }
        runs.shutdown().await;
        match store.release_leases(&format!("{}#", self.id), now()).await {
            Ok(released) => tracing::info!(worker = %self.id, released, "worker stopped"),
            Err(error) => tracing::warn!(
                worker = %self.id,
                error = format!("{error:#}"),
                "worker stopped without releasing its runs; they are taken over when their leases expire"
            ),
        }
    }

    async fn drive(&self, claim: ClaimedRun, token: String) {
        let run = claim.run.clone();
        if let Some(previous) = &claim.previous_owner {
            tracing::info!(run = %run.id, worker = %self.id, previous, "taking over a run whose lease expired");
        }
        let mut committed = Committed {
            status: run.status,
            current_step: run.current_step.clone(),
            step_executions: run.step_executions,
        };
        match self.advance(claim, &token, &mut committed).await {
            Ok(()) => {}
            // Left leased: it falls due again when the lease expires and is retried.
            Err(Failure::Store(error)) => {
                tracing::warn!(run = %run.id, worker = %self.id, error = format!("{error:#}"), "a run could not be saved; retrying later");
            }
            // Retrying would fail the same way: end the run and say why.
            Err(Failure::Stuck { code, message }) => {
                tracing::error!(run = %run.id, worker = %self.id, code, message, "a run cannot go on; failing it");
                let transition = Transition {
                    expected: committed.status,
                    status: RunStatus::Failed,
                    current_step: committed.current_step,
                    step_executions: committed.step_executions,
                    due_at: None,
                    lease_owner: None,
                    error: Some(run_error(code, &message, None)),
                    steps: Vec::new(),
                };
                if let Err(error) = self.engine.store.apply(&run.id, &token, &transition).await {
                    tracing::warn!(run = %run.id, error = format!("{error:#}"), "failing a run failed; retrying later");
                }
            }
        }
    }

    /// Drives a claimed run as far as it goes now. `committed` tracks what the
    /// database holds.
    async fn advance(
        &self,
        claim: ClaimedRun,
        token: &str,
        committed: &mut Committed,
    ) -> Result<(), Failure> {
        let engine = &self.engine;
        let run = &claim.run;
        let definition = engine
            .definitions
            .get(&run.orchestration_id, run.orchestration_version)
            .await
            .map_err(Failure::Store)?
            .ok_or_else(|| Failure::Stuck {
                code: "definition_missing",
                message: format!(
                    "version {} of orchestration {} is not stored",
                    run.orchestration_version, run.orchestration_id
                ),
            })?;
        let planner = Planner {
            definition: &definition,
            owner: token,
            lease: self.lease(),
        };
        let mut state = RunState::new(claim).map_err(Failure::stuck)?;
        let mut next = planner.resume(&mut state, now()).map_err(Failure::stuck)?;
        loop {
            let transition = state.take_transition();
            if !engine
                .store
                .apply(&state.run.id, token, &transition)
                .await
                .map_err(Failure::Store)?
            {
                tracing::debug!(run = %state.run.id, "run changed under this worker (cancelled, decided or taken over); leaving it");
                return Ok(());
            }
            *committed = Committed {
                status: transition.status,
                current_step: transition.current_step.clone(),
                step_executions: transition.step_executions,
            };
            let Next::Invoke(attempt) = next else {
                return Ok(());
            };
            let Some(Step::Compute(step)) = definition.steps.iter().find(|s| s.id() == attempt.step_id)
            else {
                return Err(Failure::stuck(anyhow::anyhow!(
                    "step `{}` is not a compute step",
                    attempt.step_id
                )));
            };
            let call = Call {
                functions: &engine.functions,
                keyring: &engine.keyring,
                definition: &definition,
                step,
                attempt: &attempt,
            };
            let result = self
                .holding_lease(&state.run.id, token, call.run(&state))
                .await
                .map_err(Failure::Store)?;
            let Some(result) = result else {
                tracing::info!(run = %state.run.id, step = %attempt.step_id, "lost the run during a call; its result is dropped");
                return Ok(());
            };
            next = planner
                .compute_finished(&mut state, &attempt.step_id, result, now())
                .map_err(Failure::stuck)?;
        }
    }

    /// Runs `call`, renewing the lease [`RENEWALS_PER_LEASE`] times per its length; `None` when the
    /// lease could not be renewed (the run was cancelled or taken over), in which case
    /// the call is dropped, which stops the function.
    async fn holding_lease<T>(
        &self,
        run_id: &str,
        token: &str,
        call: impl Future<Output = T>,
    ) -> Result<Option<T>> {
        // Starts a period from now: an interval's immediate first tick is a timer that
        // tokio fires only at its next millisecond, which cost every step that long.
        let period = self.config.lease / RENEWALS_PER_LEASE;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tokio::pin!(call);
        loop {
            tokio::select! {
                result = &mut call => return Ok(Some(result)),
                _ = renew.tick() => {
                    // A failed renewal is tried again at the next tick: the lease has
                    // two more thirds to run, and a call is not dropped for a hiccup.
                    match self.engine.store.renew_lease(run_id, token, now() + self.lease()).await {
                        Ok(true) => {}
                        Ok(false) => return Ok(None),
                        Err(error) => tracing::warn!(run = %run_id, error = format!("{error:#}"), "renewing a lease failed"),
                    }
                }
            }
        }
    }

    fn lease(&self) -> TimeDelta {
        // `--lease-ms` allows at most an hour, which always converts.
        TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::seconds(DEFAULT_LEASE.as_secs() as i64))
    }
}

/// What the database holds of a run being driven, for the fence and content of a
/// final failure.
struct Committed {
    status: RunStatus,
    current_step: Option<String>,
    step_executions: i64,
}

/// Why a run could not be driven further.
enum Failure {
    /// The database: worth trying again once the lease expires.
    Store(anyhow::Error),
    /// The run's own data (an unreadable record, a definition that lacks a step the
    /// run is at): trying again would fail the same way.
    Stuck { code: &'static str, message: String },
}

impl Failure {
    fn stuck(error: anyhow::Error) -> Self {
        Self::Stuck {
            code: "engine_error",
            message: format!("{error:#}"),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".into())
}
