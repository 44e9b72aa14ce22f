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
//! Waking: new runs and decisions signal at once (in-process, and through
//! `LISTEN/NOTIFY` across processes on PostgreSQL); timers (delays, approval
//! timeouts, retry backoffs, expired leases) are met by sleeping until the next
//! `due_at`, with a slow poll as a safety net.

use super::Engine;
use super::compute::Call;
use super::plan::{Next, Planner, RunState, run_error};
use crate::orchestrations::model::Step;
use crate::store::{ClaimedRun, RunStatus, Transition, now};
use anyhow::{Context, Result};
use chrono::TimeDelta;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

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
            concurrency: 64,
            lease: Duration::from_secs(15),
            idle_poll: Duration::from_secs(1),
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
        while !*stopped.borrow() {
            while runs.try_join_next().is_some() {}
            let free = slots.available_permits();
            let mut claimed_all = false;
            if free > 0 {
                // Anything signalled from here on is after this claim's snapshot.
                work.mark_unchanged();
                let lease = TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::seconds(15));
                let now = now();
                match store.claim_runs(&self.id, free as u32, now, now + lease).await {
                    Ok(claims) => {
                        claimed_all = claims.len() == free;
                        for claim in claims {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let worker = self.clone();
                            let slot_freed = slot_freed.clone();
                            runs.spawn(async move {
                                worker.drive(claim).await;
                                drop(permit);
                                slot_freed.notify_one();
                            });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(worker = %self.id, error = format!("{error:#}"), "claiming runs failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            if claimed_all {
                continue;
            }
            let full = slots.available_permits() == 0;
            let sleep = match full {
                true => self.config.idle_poll,
                false => self.until_next_due().await,
            };
            tokio::select! {
                _ = work.changed() => {}
                () = slot_freed.notified(), if full => {}
                () = tokio::time::sleep(sleep) => {}
                _ = stopped.changed() => {}
            }
        }
        runs.shutdown().await;
        match store.release_leases(&self.id, now()).await {
            Ok(released) => tracing::info!(worker = %self.id, released, "worker stopped"),
            Err(error) => tracing::warn!(
                worker = %self.id,
                error = format!("{error:#}"),
                "worker stopped without releasing its runs; they are taken over when their leases expire"
            ),
        }
    }

    /// How long to sleep until the next run falls due, at most the idle poll and at
    /// least a millisecond (a due run another worker is claiming right now).
    async fn until_next_due(&self) -> Duration {
        let idle = self.config.idle_poll;
        match self.engine.store.next_due().await {
            Ok(Some(due)) => (due - now())
                .to_std()
                .unwrap_or_default()
                .clamp(Duration::from_millis(1), idle),
            Ok(None) => idle,
            Err(_) => idle,
        }
    }

    async fn drive(&self, claim: ClaimedRun) {
        let run_id = claim.run.id.clone();
        if let Some(previous) = &claim.previous_owner {
            tracing::info!(run = %run_id, worker = %self.id, previous, "taking over a run whose lease expired");
        }
        if let Err(error) = self.drive_claimed(claim).await {
            // Left leased: it falls due again when the lease expires and is retried.
            tracing::error!(run = %run_id, worker = %self.id, error = format!("{error:#}"), "driving a run failed");
        }
    }

    async fn drive_claimed(&self, claim: ClaimedRun) -> Result<()> {
        let engine = &self.engine;
        let definition = engine
            .definitions
            .get(&claim.run.orchestration_id, claim.run.orchestration_version)
            .await?;
        let Some(definition) = definition else {
            return self.fail_unreadable(claim).await;
        };
        let planner = Planner {
            definition: &definition,
            owner: &self.id,
            lease: TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::seconds(15)),
        };
        let mut state = RunState::new(claim)?;
        let mut next = planner.resume(&mut state, now())?;
        loop {
            let transition = state.take_transition();
            if !engine.store.apply(&state.run.id, &self.id, &transition).await? {
                tracing::debug!(run = %state.run.id, "run changed under this worker (cancelled, decided or taken over); leaving it");
                return Ok(());
            }
            let Next::Invoke(attempt) = next else {
                return Ok(());
            };
            let Some(Step::Compute(step)) = definition.steps.iter().find(|s| s.id() == attempt.step_id)
            else {
                anyhow::bail!("step `{}` is not a compute step", attempt.step_id);
            };
            let call = Call {
                functions: &engine.functions,
                keyring: &engine.keyring,
                definition: &definition,
                step,
                attempt: &attempt,
            };
            let Some(result) = self.holding_lease(&state.run.id, call.run(&state)).await? else {
                tracing::info!(run = %state.run.id, step = %attempt.step_id, "lost the run during a call; its result is dropped");
                return Ok(());
            };
            next = planner.compute_finished(&mut state, &attempt.step_id, result, now())?;
        }
    }

    /// Runs `call`, renewing the lease every third of its length; `None` when the
    /// lease could not be renewed (the run was cancelled or taken over), in which case
    /// the call is dropped, which stops the function.
    async fn holding_lease<T>(&self, run_id: &str, call: impl Future<Output = T>) -> Result<Option<T>> {
        let lease = TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::seconds(15));
        let mut renew = tokio::time::interval(self.config.lease / 3);
        renew.tick().await;
        tokio::pin!(call);
        loop {
            tokio::select! {
                result = &mut call => return Ok(Some(result)),
                _ = renew.tick() => {
                    if !self.engine.store.renew_lease(run_id, &self.id, now() + lease).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The run's definition version is gone (it never is, short of hand-edited
    /// data): fail the run with a clear error rather than retrying forever.
    async fn fail_unreadable(&self, claim: ClaimedRun) -> Result<()> {
        let run = &claim.run;
        let transition = Transition {
            expected: run.status,
            status: RunStatus::Failed,
            current_step: run.current_step.clone(),
            step_executions: run.step_executions,
            due_at: None,
            lease_owner: None,
            error: Some(run_error(
                "definition_missing",
                &format!(
                    "version {} of orchestration {} is not stored",
                    run.orchestration_version, run.orchestration_id
                ),
                None,
            )),
            steps: Vec::new(),
        };
        self.engine
            .store
            .apply(&run.id, &self.id, &transition)
            .await
            .context("failing a run")?;
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".into())
}
