//! Runs on PostgreSQL, shared by any number of worker processes. Claims lock due
//! rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers split the due runs
//! instead of queueing on each other. Changes that concern other processes are
//! announced with `NOTIFY trellis_runs` inside the same transaction, so listeners
//! hear of them exactly when they become visible.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::postgres::PgListener;

use super::postgres::PostgresStore;
use super::runs::{
    CancelOutcome, ClaimedRun, DecideOutcome, Decision, RunBackend, RunRecord, RunStatus, Signals,
    StepRecord, Transition, count_transaction, run_columns, step_columns,
};

/// The channel, and its two payloads: `work` (something became due) and `settled` (a
/// run finished or started waiting on a human).
const CHANNEL: &str = "trellis_runs";

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    run: RunRecord,
    previous_owner: Option<String>,
}

impl RunBackend for PostgresStore {
    async fn create_run(&self, run: &RunRecord) -> Result<()> {
        count_transaction();
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
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
        .bind(run.due_at)
        .bind(&run.lease_owner)
        .bind(run.created_at)
        .bind(run.updated_at)
        .execute(&mut *tx)
        .await
        .context("inserting a run")?;
        notify(&mut *tx, "work").await?;
        tx.commit().await.context("committing")?;
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
        count_transaction();
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
        let rows: Vec<ClaimedRow> = sqlx::query_as(concat!(
            "WITH due AS ( \
                 SELECT id, lease_owner AS previous_owner FROM runs \
                 WHERE due_at IS NOT NULL AND due_at <= $2 ORDER BY due_at LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE runs SET lease_owner = $1, due_at = $3, updated_at = $2, \
                 status = CASE runs.status WHEN 'pending' THEN 'running' ELSE runs.status END \
             FROM due WHERE runs.id = due.id RETURNING due.previous_owner, ",
            "runs.id, runs.orchestration_id, runs.orchestration_version, runs.status, runs.input, \
             runs.error, runs.current_step, runs.step_executions, runs.due_at, runs.lease_owner, \
             runs.created_at, runs.updated_at"
        ))
        .bind(owner)
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .context("claiming runs")?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // Read while the claimed rows are locked, so no decision or cancellation can
        // slip in between the runs and their steps.
        let ids: Vec<&str> = rows.iter().map(|row| row.run.id.as_str()).collect();
        let steps: Vec<(String, StepRecord)> = {
            #[derive(sqlx::FromRow)]
            struct Row {
                run_id: String,
                #[sqlx(flatten)]
                step: StepRecord,
            }
            sqlx::query_as::<_, Row>(concat!(
                "SELECT run_id, ",
                step_columns!(),
                " FROM run_steps WHERE run_id = ANY($1) ORDER BY execution"
            ))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .context("reading step records")?
            .into_iter()
            .map(|row| (row.run_id, row.step))
            .collect()
        };
        let mut claimed: Vec<ClaimedRun> = rows
            .into_iter()
            .map(|row| ClaimedRun {
                run: row.run,
                steps: Vec::new(),
                previous_owner: row.previous_owner,
            })
            .collect();
        for (run_id, step) in steps {
            if let Some(claim) = claimed.iter_mut().find(|claim| claim.run.id == run_id) {
                claim.steps.push(step);
            }
        }
        tx.commit().await.context("committing")?;
        Ok(claimed)
    }

    /// The engine's hot path, one transaction per step, as one statement (one round
    /// trip): the fenced `UPDATE`, the step records (written only if the fence held,
    /// as they join its result) and the notifications, in data-modifying CTEs, which
    /// PostgreSQL runs in one snapshot and commits together. (`notified` is a plain
    /// `SELECT`, which runs only if referenced: the final `SELECT` counts it.)
    async fn apply(&self, run_id: &str, owner: &str, transition: &Transition) -> Result<bool> {
        count_transaction();
        let settled = transition.status != RunStatus::Running;
        let mut payloads = Vec::new();
        if settled {
            payloads.push("settled");
        }
        if transition.parks_running() {
            payloads.push("work");
        }
        let steps = &transition.steps;
        let applied: i64 = sqlx::query_scalar(
            "WITH updated AS ( \
                 UPDATE runs SET status = $3, current_step = $4, step_executions = $5, due_at = $6, \
                 lease_owner = $7, error = $8, updated_at = $9 \
                 WHERE id = $1 AND lease_owner = $2 AND status = $10 RETURNING id), \
             written AS ( \
                 INSERT INTO run_steps (run_id, step_id, execution, status, attempts, output, error, \
                 logs, started_at, finished_at) \
                 SELECT updated.id, step.* FROM updated, UNNEST($11::text[], $12::bigint[], \
                 $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[], \
                 $18::timestamptz[], $19::timestamptz[]) AS step \
                 ON CONFLICT (run_id, step_id) DO UPDATE SET execution = excluded.execution, \
                 status = excluded.status, attempts = excluded.attempts, output = excluded.output, \
                 error = excluded.error, logs = excluded.logs, started_at = excluded.started_at, \
                 finished_at = excluded.finished_at RETURNING 1), \
             notified AS ( \
                 SELECT pg_notify('trellis_runs', payload) FROM updated, UNNEST($20::text[]) AS payload) \
             SELECT (SELECT count(*) FROM updated) \
                 + 0 * (SELECT count(*) FROM written) + 0 * (SELECT count(*) FROM notified)",
        )
        .bind(run_id)
        .bind(owner)
        .bind(transition.status.as_str())
        .bind(&transition.current_step)
        .bind(transition.step_executions)
        .bind(transition.due_at)
        .bind(&transition.lease_owner)
        .bind(&transition.error)
        .bind(super::now())
        .bind(transition.expected.as_str())
        .bind(steps.iter().map(|s| s.step_id.as_str()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.execution).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.attempts).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.output.as_deref()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.error.as_deref()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.logs.as_deref()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.started_at).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.finished_at).collect::<Vec<_>>())
        .bind(&payloads)
        .fetch_one(&self.pool)
        .await
        .context("applying a transition")?;
        if applied == 0 {
            return Ok(false);
        }
        if settled {
            self.signals.settled();
        }
        if transition.parks_running() {
            self.signals.work();
        }
        Ok(true)
    }

    async fn renew_lease(&self, run_id: &str, owner: &str, until: DateTime<Utc>) -> Result<bool> {
        count_transaction();
        let updated = sqlx::query("UPDATE runs SET due_at = $3 WHERE id = $1 AND lease_owner = $2")
            .bind(run_id)
            .bind(owner)
            .bind(until)
            .execute(&self.pool)
            .await
            .context("renewing a lease")?
            .rows_affected();
        Ok(updated == 1)
    }

    async fn release_leases(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
        count_transaction();
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
        let released =
            sqlx::query("UPDATE runs SET lease_owner = NULL, due_at = $2 WHERE starts_with(lease_owner, $1)")
                .bind(owner_prefix)
                .bind(now)
                .execute(&mut *tx)
                .await
                .context("releasing leases")?
                .rows_affected();
        if released > 0 {
            notify(&mut *tx, "work").await?;
        }
        tx.commit().await.context("committing")?;
        Ok(released)
    }

    async fn decide(&self, run_id: &str, decision: &Decision, now: DateTime<Utc>) -> Result<DecideOutcome> {
        count_transaction();
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
        let due_at = (decision.run_status == RunStatus::Running).then_some(now);
        let updated = sqlx::query(
            "UPDATE runs SET status = $3, due_at = $4, lease_owner = NULL, error = $5, updated_at = $6 \
             WHERE id = $1 AND status = 'waiting' AND current_step = $2",
        )
        .bind(run_id)
        .bind(&decision.step_id)
        .bind(decision.run_status.as_str())
        .bind(due_at)
        .bind(&decision.run_error)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("recording a decision")?
        .rows_affected();
        if updated == 0 {
            let row: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .context("reading a run")?;
            return match row {
                None => Ok(DecideOutcome::NotFound),
                Some(status) => Ok(DecideOutcome::NotWaiting {
                    status: status.try_into()?,
                }),
            };
        }
        sqlx::query(
            "UPDATE run_steps SET status = $3, output = $4, finished_at = $5 \
             WHERE run_id = $1 AND step_id = $2",
        )
        .bind(run_id)
        .bind(&decision.step_id)
        .bind(decision.step_status.as_str())
        .bind(&decision.output)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("recording a decision")?;
        let payload = match decision.run_status {
            RunStatus::Running => "work",
            _ => "settled",
        };
        notify(&mut *tx, payload).await?;
        tx.commit().await.context("committing")?;
        match decision.run_status {
            RunStatus::Running => self.signals.work(),
            _ => self.signals.settled(),
        }
        Ok(DecideOutcome::Decided)
    }

    async fn cancel_run(&self, run_id: &str, error: &str, now: DateTime<Utc>) -> Result<CancelOutcome> {
        count_transaction();
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
        let updated = sqlx::query(
            "UPDATE runs SET status = 'cancelled', due_at = NULL, lease_owner = NULL, error = $2, \
             updated_at = $3 WHERE id = $1 AND status IN ('pending', 'running', 'waiting')",
        )
        .bind(run_id)
        .bind(error)
        .bind(now)
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
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("cancelling a run's steps")?;
        notify(&mut *tx, "settled").await?;
        tx.commit().await.context("committing")?;
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
        let Some(run) = run else { return Ok(None) };
        let steps = sqlx::query_as(concat!(
            "SELECT ",
            step_columns!(),
            " FROM run_steps WHERE run_id = $1 ORDER BY execution"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .context("reading step records")?;
        Ok(Some((run, steps)))
    }

    async fn list_runs(
        &self,
        orchestration_id: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        sqlx::query_as(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE orchestration_id = $1 AND ($3::text IS NULL OR status = $3)",
            " ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(orchestration_id)
        .bind(i64::from(limit))
        .bind(status.map(RunStatus::as_str))
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

impl PostgresStore {
    /// Starts (once) a task that relays `NOTIFY trellis_runs` into this process's
    /// signals. A lost connection is re-established by the listener; workers also
    /// poll at a slow interval, so nothing waits forever if a notification is missed.
    pub(super) async fn listen_for_runs(&self) -> Result<()> {
        if self.listening.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .context("connecting the run listener")?;
        listener.listen(CHANNEL).await.context("LISTEN trellis_runs")?;
        let signals = self.signals.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => match notification.payload() {
                        "settled" => signals.settled(),
                        _ => signals.work(),
                    },
                    // The store was closed: this process is shutting down.
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(error = %error, "run listener lost its connection; reconnecting");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        // After a reconnect, anything may have changed meanwhile.
                        signals.work();
                        signals.settled();
                    }
                }
            }
        });
        Ok(())
    }
}

async fn notify<'e>(db: impl PgExecutor<'e>, payload: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(db)
        .await
        .context("notifying workers")?;
    Ok(())
}
