//! Runs on SQLite. Every write takes the process's writer turn and `BEGIN IMMEDIATE`
//! (see `sqlite.rs`); there is one process, so claiming needs no row locks.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteExecutor};

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
            for claim in &mut claimed {
                claim.steps = select_steps(&mut *tx, &claim.run.id).await?;
            }
            tx.commit().await.context("committing")?;
        }
        Ok(claimed)
    }

    /// The engine's hot path, one transaction per step, sent as one batch of
    /// statements: each statement sent on its own is a round trip to the
    /// connection's thread, and those handoffs, not SQLite, were most of a step's
    /// time. The fence's outcome comes back from `SELECT changes()` right after the
    /// fenced `UPDATE`, and each step record is written only if the statement before
    /// it changed a row, so a refused transition writes nothing.
    ///
    /// The batch opens and commits its transaction itself, so it runs on a task of
    /// its own: a caller dropped midway (a worker shutting down) must not leave a
    /// transaction open on a pooled connection.
    async fn apply(&self, run_id: &str, owner: &str, transition: &Transition) -> Result<bool> {
        let (pool, writer) = (self.pool.clone(), self.writer.clone());
        let (run_id, owner, owned) = (run_id.to_owned(), owner.to_owned(), transition.clone());
        let applied = tokio::spawn(async move {
            let _writer = writer.lock().await;
            apply_batch(&pool, &run_id, &owner, &owned).await
        })
        .await
        .context("the task applying a transition failed")??;
        if applied {
            if transition.status != RunStatus::Running {
                self.signals.settled();
            }
            if transition.parks_running() {
                self.signals.work();
            }
        }
        Ok(applied)
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

    async fn release_leases(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
        let released = {
            let _writer = self.writer.lock().await;
            count_transaction();
            sqlx::query(
                "UPDATE runs SET lease_owner = NULL, due_at = $2 \
                 WHERE substr(lease_owner, 1, length($1)) = $1",
            )
            .bind(owner_prefix)
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

    async fn list_runs(
        &self,
        orchestration_id: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        sqlx::query_as(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE orchestration_id = $1 AND ($3 IS NULL OR status = $3)",
            " ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(orchestration_id)
        .bind(limit)
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

/// One [`SqliteStore::apply`] batch; the caller holds the writer turn.
async fn apply_batch(
    pool: &sqlx::SqlitePool,
    run_id: &str,
    owner: &str,
    transition: &Transition,
) -> Result<bool> {
    count_transaction();
    let mut connection = pool.acquire().await.context("acquiring a connection")?;
    let sql = apply_sql(transition.steps.len());
    let mut query = sqlx::query(&sql)
        .bind(run_id)
        .bind(owner)
        .bind(transition.status.as_str())
        .bind(&transition.current_step)
        .bind(transition.step_executions)
        .bind(transition.due_at.map(timestamp))
        .bind(&transition.lease_owner)
        .bind(&transition.error)
        .bind(timestamp(super::now()))
        .bind(transition.expected.as_str());
    for step in &transition.steps {
        query = query
            .bind(&step.step_id)
            .bind(step.execution)
            .bind(step.status.as_str())
            .bind(step.attempts)
            .bind(&step.output)
            .bind(&step.error)
            .bind(&step.logs)
            .bind(step.started_at.map(timestamp))
            .bind(step.finished_at.map(timestamp));
    }
    // `fetch_all`, not `fetch_one`: the batch runs only as far as it is read.
    let fenced: i64 = match query.fetch_all(&mut *connection).await {
        Ok(rows) => rows
            .first()
            .context("no fence row")?
            .try_get(0)
            .context("reading the fence")?,
        Err(error) => {
            // A statement failed midway: end the transaction it opened, or, failing
            // that, the connection.
            if sqlx::query("ROLLBACK").execute(&mut *connection).await.is_err() {
                connection.close_on_drop();
            }
            return Err(error).context("applying a transition");
        }
    };
    Ok(fenced == 1)
}

/// The batch for `steps` step records: `$1`–`$10` are the run's fields, then nine per
/// step record. Built once per count.
fn apply_sql(steps: usize) -> std::sync::Arc<str> {
    static CACHE: std::sync::Mutex<Vec<Option<std::sync::Arc<str>>>> = std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.len() <= steps {
        cache.resize(steps + 1, None);
    }
    cache[steps]
        .get_or_insert_with(|| {
            let mut sql = String::from(
                "BEGIN IMMEDIATE; \
                 UPDATE runs SET status = $3, current_step = $4, step_executions = $5, due_at = $6, \
                 lease_owner = $7, error = $8, updated_at = $9 \
                 WHERE id = $1 AND lease_owner = $2 AND status = $10; \
                 SELECT changes();",
            );
            for i in 0..steps {
                let p = |k: usize| format!("${}", 11 + i * 9 + k);
                sql.push_str(&format!(
                    " INSERT INTO run_steps (run_id, {columns}) \
                     SELECT $1, {}, {}, {}, {}, {}, {}, {}, {}, {} WHERE changes() = 1 \
                     ON CONFLICT (run_id, step_id) DO UPDATE SET execution = excluded.execution, \
                     status = excluded.status, attempts = excluded.attempts, output = excluded.output, \
                     error = excluded.error, logs = excluded.logs, started_at = excluded.started_at, \
                     finished_at = excluded.finished_at;",
                    p(0),
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    p(7),
                    p(8),
                    columns = step_columns!(),
                ));
            }
            sql.push_str(" COMMIT;");
            sql.into()
        })
        .clone()
}

async fn not_waiting<'e>(db: impl SqliteExecutor<'e>, run_id: &str) -> Result<DecideOutcome> {
    let row: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(db)
        .await
        .context("reading a run")?;
    match row {
        None => Ok(DecideOutcome::NotFound),
        Some(status) => Ok(DecideOutcome::NotWaiting {
            status: status.try_into()?,
        }),
    }
}
