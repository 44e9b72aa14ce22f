//! Runs on SQLite. Every write takes the process's writer turn and `BEGIN IMMEDIATE`
//! (see `sqlite.rs`); there is one process, so claiming needs no row locks.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::SqliteExecutor;

use super::runs::{
    CancelOutcome, ClaimedRun, DecideOutcome, Decision, RunBackend, RunRecord, RunStatus, Signals,
    StepRecord, Transition, count_transaction, run_columns, step_columns,
};
use super::sqlite::{SqliteStore, timestamp};

impl RunBackend for SqliteStore {
    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        {
            let _writer = self.writer.lock().await;
            count_transaction();
            sqlx::query(concat!(
                "INSERT INTO runs (",
                run_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(&run.id)
            .bind(&run.orchestration_id)
            .bind(run.orchestration_version)
            .bind(run.status.as_str())
            .bind(&run.input)
            .bind(&run.error)
            .bind(&run.current_step)
            .bind(run.step_executions)
            .bind(run.due_at.map(timestamp))
            .bind(&run.lease_owner)
            .bind(timestamp(run.created_at))
            .bind(timestamp(run.updated_at))
            .execute(&self.pool)
            .await
            .context("inserting a run")?;
        }
        self.signals.work();
        Ok(())
    }

    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedRun>> {
        let mut claimed = Vec::new();
        {
            let _writer = self.writer.lock().await;
            count_transaction();
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .context("beginning transaction")?;
            let due: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT id, lease_owner FROM runs WHERE due_at IS NOT NULL AND due_at <= $1 \
                 ORDER BY due_at LIMIT $2",
            )
            .bind(timestamp(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .context("selecting due runs")?;
            for (id, previous_owner) in due {
                let run: RunRecord = sqlx::query_as(concat!(
                    "UPDATE runs SET lease_owner = $2, due_at = $3, updated_at = $4, \
                     status = CASE status WHEN 'pending' THEN 'running' ELSE status END \
                     WHERE id = $1 RETURNING ",
                    run_columns!()
                ))
                .bind(&id)
                .bind(owner)
                .bind(timestamp(lease_until))
                .bind(timestamp(now))
                .fetch_one(&mut *tx)
                .await
                .context("claiming a run")?;
                claimed.push(ClaimedRun {
                    run,
                    steps: Vec::new(),
                    previous_owner,
                });
            }
            tx.commit().await.context("committing")?;
        }
        for claim in &mut claimed {
            claim.steps = select_steps(&self.pool, &claim.run.id).await?;
        }
        Ok(claimed)
    }

    async fn apply(&self, run_id: &str, owner: &str, transition: &Transition) -> Result<bool> {
        {
            let _writer = self.writer.lock().await;
            count_transaction();
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .context("beginning transaction")?;
            let updated = sqlx::query(
                "UPDATE runs SET status = $3, current_step = $4, step_executions = $5, due_at = $6, \
                 lease_owner = $7, error = $8, updated_at = $9 \
                 WHERE id = $1 AND lease_owner = $2 AND status = $10",
            )
            .bind(run_id)
            .bind(owner)
            .bind(transition.status.as_str())
            .bind(&transition.current_step)
            .bind(transition.step_executions)
            .bind(transition.due_at.map(timestamp))
            .bind(&transition.lease_owner)
            .bind(&transition.error)
            .bind(timestamp(super::now()))
            .bind(transition.expected.as_str())
            .execute(&mut *tx)
            .await
            .context("updating a run")?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            for step in &transition.steps {
                upsert_step(&mut *tx, run_id, step).await?;
            }
            tx.commit().await.context("committing")?;
        }
        if transition.status != RunStatus::Running {
            self.signals.settled();
        }
        Ok(true)
    }

    async fn renew_lease(&self, run_id: &str, owner: &str, until: DateTime<Utc>) -> Result<bool> {
        let _writer = self.writer.lock().await;
        count_transaction();
        let updated = sqlx::query("UPDATE runs SET due_at = $3 WHERE id = $1 AND lease_owner = $2")
            .bind(run_id)
            .bind(owner)
            .bind(timestamp(until))
            .execute(&self.pool)
            .await
            .context("renewing a lease")?
            .rows_affected();
        Ok(updated == 1)
    }

    async fn release_leases(&self, owner: &str, now: DateTime<Utc>) -> Result<u64> {
        let released = {
            let _writer = self.writer.lock().await;
            count_transaction();
            sqlx::query("UPDATE runs SET lease_owner = NULL, due_at = $2 WHERE lease_owner = $1")
                .bind(owner)
                .bind(timestamp(now))
                .execute(&self.pool)
                .await
                .context("releasing leases")?
                .rows_affected()
        };
        if released > 0 {
            self.signals.work();
        }
        Ok(released)
    }

    async fn decide(&self, run_id: &str, decision: &Decision, now: DateTime<Utc>) -> Result<DecideOutcome> {
        {
            let _writer = self.writer.lock().await;
            count_transaction();
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .context("beginning transaction")?;
            let due_at = (decision.run_status == RunStatus::Running).then(|| timestamp(now));
            let updated = sqlx::query(
                "UPDATE runs SET status = $3, due_at = $4, lease_owner = NULL, error = $5, updated_at = $6 \
                 WHERE id = $1 AND status = 'waiting' AND current_step = $2",
            )
            .bind(run_id)
            .bind(&decision.step_id)
            .bind(decision.run_status.as_str())
            .bind(due_at)
            .bind(&decision.run_error)
            .bind(timestamp(now))
            .execute(&mut *tx)
            .await
            .context("recording a decision")?
            .rows_affected();
            if updated == 0 {
                return not_waiting(&mut *tx, run_id).await;
            }
            sqlx::query(
                "UPDATE run_steps SET status = $3, output = $4, finished_at = $5 \
                 WHERE run_id = $1 AND step_id = $2",
            )
            .bind(run_id)
            .bind(&decision.step_id)
            .bind(decision.step_status.as_str())
            .bind(&decision.output)
            .bind(timestamp(now))
            .execute(&mut *tx)
            .await
            .context("recording a decision")?;
            tx.commit().await.context("committing")?;
        }
        match decision.run_status {
            RunStatus::Running => self.signals.work(),
            _ => self.signals.settled(),
        }
        Ok(DecideOutcome::Decided)
    }

    async fn cancel_run(&self, run_id: &str, error: &str, now: DateTime<Utc>) -> Result<CancelOutcome> {
        {
            let _writer = self.writer.lock().await;
            count_transaction();
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .context("beginning transaction")?;
            let updated = sqlx::query(
                "UPDATE runs SET status = 'cancelled', due_at = NULL, lease_owner = NULL, error = $2, \
                 updated_at = $3 WHERE id = $1 AND status IN ('pending', 'running', 'waiting')",
            )
            .bind(run_id)
            .bind(error)
            .bind(timestamp(now))
            .execute(&mut *tx)
            .await
            .context("cancelling a run")?
            .rows_affected();
            if updated == 0 {
                let status: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
                    .bind(run_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("reading a run")?;
                return match status {
                    None => Ok(CancelOutcome::NotFound),
                    Some(status) => Ok(CancelOutcome::Finished(status.try_into()?)),
                };
            }
            sqlx::query(
                "UPDATE run_steps SET status = 'cancelled', finished_at = $2 \
                 WHERE run_id = $1 AND status IN ('running', 'waiting')",
            )
            .bind(run_id)
            .bind(timestamp(now))
            .execute(&mut *tx)
            .await
            .context("cancelling a run's steps")?;
            tx.commit().await.context("committing")?;
        }
        self.signals.settled();
        Ok(CancelOutcome::Cancelled)
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<(RunRecord, Vec<StepRecord>)>> {
        let run: Option<RunRecord> =
            sqlx::query_as(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1"))
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .context("reading a run")?;
        match run {
            None => Ok(None),
            Some(run) => Ok(Some((run, select_steps(&self.pool, run_id).await?))),
        }
    }

    async fn list_runs(&self, orchestration_id: &str, limit: u32) -> Result<Vec<RunRecord>> {
        sqlx::query_as(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE orchestration_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(orchestration_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("listing runs")
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        sqlx::query_scalar("SELECT MIN(due_at) FROM runs WHERE due_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .context("reading the next due run")
    }

    fn signals(&self) -> &Signals {
        &self.signals
    }
}

async fn select_steps<'e>(db: impl SqliteExecutor<'e>, run_id: &str) -> Result<Vec<StepRecord>> {
    sqlx::query_as(concat!(
        "SELECT ",
        step_columns!(),
        " FROM run_steps WHERE run_id = $1 ORDER BY execution"
    ))
    .bind(run_id)
    .fetch_all(db)
    .await
    .context("reading step records")
}

async fn upsert_step<'e>(db: impl SqliteExecutor<'e>, run_id: &str, step: &StepRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO run_steps (run_id, ",
        step_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (run_id, step_id) DO UPDATE SET execution = excluded.execution, \
         status = excluded.status, attempts = excluded.attempts, output = excluded.output, \
         error = excluded.error, logs = excluded.logs, started_at = excluded.started_at, \
         finished_at = excluded.finished_at"
    ))
    .bind(run_id)
    .bind(&step.step_id)
    .bind(step.execution)
    .bind(step.status.as_str())
    .bind(step.attempts)
    .bind(&step.output)
    .bind(&step.error)
    .bind(&step.logs)
    .bind(step.started_at.map(timestamp))
    .bind(step.finished_at.map(timestamp))
    .execute(db)
    .await
    .context("writing a step record")?;
    Ok(())
}

async fn not_waiting<'e>(db: impl SqliteExecutor<'e>, run_id: &str) -> Result<DecideOutcome> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT status, current_step FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(db)
            .await
            .context("reading a run")?;
    match row {
        None => Ok(DecideOutcome::NotFound),
        Some((status, current_step)) => Ok(DecideOutcome::NotWaiting {
            status: status.try_into()?,
            current_step,
        }),
    }
}
