//! The embedded SQLite backend: one file in the data dir, no server to run.
//!
//! SQLite allows one writer at a time. Writes of this process take turns on an
//! in-process lock ([`Sqlite::write_turn`]), and write transactions begin with
//! `BEGIN IMMEDIATE`; there is one process, so claiming runs needs no row locks.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, Row};

use super::dialect::{Arg, Dialect, Query, WriteTurn, statements_with};
use super::runs::{
    Claim, ClaimedRun, Queue, RUN_COLUMNS, RunRecord, RunStatus, STEP_COLUMNS, Transition, Wake,
    count_transaction, next_due, select_steps,
};
use super::sql::SqlStore;

pub type SqliteStore = SqlStore<Sqlite>;

/// Under WAL, readers never block and one writer proceeds at a time; a handful of
/// connections serves concurrent API reads without wasting memory on idle handles.
const MAX_CONNECTIONS: u32 = 8;

/// How long a writer waits for another writer's lock before failing with
/// `SQLITE_BUSY`. Write transactions here are a few statements long, so 5 s only runs
/// out if something holds the lock abnormally long.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default)]
pub struct Sqlite {
    /// Writes of this process take turns here before they reach SQLite. SQLite's
    /// busy handler waits for a lock by sleeping in steps of up to 100 ms, which under
    /// concurrent writes turned a 2 ms create into a 300 ms p99; queueing in-process
    /// hands the lock over without sleeping. (Other processes, such as
    /// `trellis keys rewrap`, still meet the busy timeout.)
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// `erase_freed`: each connection zeroes what it frees (`secure_delete`).
pub(super) async fn connect(url: &str, erase_freed: bool) -> Result<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url)
        .context("parsing the URL")?
        .create_if_missing(true)
        // Readers keep reading while a writer commits.
        .journal_mode(SqliteJournalMode::Wal)
        // Under WAL, NORMAL never corrupts the file; a power loss (not a process
        // crash) may undo the last commits. That is the usual trade for a dev and
        // single-node default, and it avoids an fsync per commit.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .pragma("secure_delete", if erase_freed { "ON" } else { "OFF" });
    // SQLite creates the file but not its directory (e.g. a fresh data dir).
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .context("connecting")?;
    sqlx::migrate!("../migrations/sqlite")
        .run(&pool)
        .await
        .context("running migrations")?;
    Ok(SqlStore::new(pool, Sqlite::default()))
}

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;

    const TO_JSON: &'static str = "";
    const JSON_AS_TEXT: &'static str = "";
    const FOR_UPDATE: &'static str = "";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const JOIN_CURRENT_VERSION: &'static str = "CROSS JOIN";

    async fn write_turn(&self) -> WriteTurn<'_> {
        Some(self.writer.lock().await)
    }

    statements_with!(SqliteConnection, arguments);

    fn announce(&self, _: &SqlitePool, _: Wake, _: Option<&str>) {}

    async fn flush(&self) {}
}

fn arguments<'q>(args: &[Arg<'q>]) -> sqlx::Result<SqliteArguments<'q>> {
    let mut out = SqliteArguments::default();
    for arg in args {
        let added: Result<(), BoxDynError> = match *arg {
            Arg::Text(text) => out.add(text),
            Arg::Int(int) => out.add(int),
            Arg::Bytes(bytes) => out.add(bytes),
            Arg::Time(time) => out.add(time.map(timestamp)),
        };
        added.map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

/// Timestamps are stored as fixed-width RFC 3339 text (see the migration), so text
/// order is time order; sqlx reads them back into `DateTime<Utc>`.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Queue for SqlStore<Sqlite> {
    /// Under the write lock no one else claims, so due runs are selected, then taken
    /// one by one.
    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim> {
        count_transaction();
        let mut tx = self.begin_write().await?;
        let due = Query::new("SELECT id, lease_owner FROM runs WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2")
            .bind(now)
            .bind(limit);
        let due: Vec<(String, Option<String>)> = Sqlite::fetch_all(&mut tx, &due)
            .await
            .context("selecting due runs")?;
        let mut claimed = Vec::with_capacity(due.len());
        for (id, previous_owner) in due {
            let take = Query::new(format!(
                "UPDATE runs SET lease_owner = $2, due_at = $3, updated_at = $4, \
                 status = CASE status WHEN $5 THEN $6 ELSE status END WHERE id = $1 RETURNING {RUN_COLUMNS}"
            ))
            .bind(id.as_str())
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(RunStatus::Pending)
            .bind(RunStatus::Running);
            let run: Option<RunRecord> = Sqlite::fetch_optional(&mut tx, &take)
                .await
                .context("claiming a run")?;
            let run = run.context("a due run vanished under the write lock")?;
            let steps = select_steps::<Sqlite>(&mut tx, &run.id).await?;
            claimed.push(ClaimedRun {
                run,
                steps,
                previous_owner,
            });
        }
        let next_due = next_due::<Sqlite>(&mut tx, now).await?;
        tx.commit().await?;
        Ok(Claim {
            runs: claimed,
            next_due,
        })
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
        let (pool, dialect) = (self.pool.clone(), self.dialect.clone());
        let (run_id, owner, transition) = (run_id.to_owned(), owner.to_owned(), transition.clone());
        tokio::spawn(async move {
            let _turn = dialect.write_turn().await;
            apply_batch(&pool, &run_id, &owner, &transition).await
        })
        .await
        .context("the task applying a transition failed")?
    }
}

/// One [`Queue::apply`] batch; the caller holds the writer turn.
async fn apply_batch(pool: &SqlitePool, run_id: &str, owner: &str, transition: &Transition) -> Result<bool> {
    count_transaction();
    let mut connection = pool.acquire().await.context("acquiring a connection")?;
    let mut batch = Query::new(apply_sql(transition.steps.len()))
        .bind(run_id)
        .bind(owner)
        .bind(transition.status)
        .bind(&transition.current_step)
        .bind(transition.step_executions)
        .bind(transition.due_at)
        .bind(&transition.lease_owner)
        .bind(&transition.error)
        .bind(super::now())
        .bind(transition.expected);
    for step in &transition.steps {
        batch = batch
            .bind(step.step_id.as_str())
            .bind(step.execution)
            .bind(step.status)
            .bind(step.attempts)
            .bind(&step.output)
            .bind(&step.error)
            .bind(&step.logs)
            .bind(step.started_at)
            .bind(step.finished_at);
    }
    // `fetch_all`, not `fetch_one`: the batch runs only as far as it is read.
    let rows = sqlx::query_with(&batch.sql, arguments(&batch.args)?)
        .fetch_all(&mut *connection)
        .await;
    match rows {
        Ok(rows) => {
            let fenced: i64 = rows
                .first()
                .context("no fence row")?
                .try_get(0)
                .context("reading the fence")?;
            Ok(fenced == 1)
        }
        Err(error) => {
            // A statement failed midway: end the transaction it opened, or, failing
            // that, the connection.
            if sqlx::query("ROLLBACK").execute(&mut *connection).await.is_err() {
                connection.close_on_drop();
            }
            Err(error).context("applying a transition")
        }
    }
}

/// The batch for `steps` step records: `$1`–`$10` are the run's fields, then nine per
/// step record.
fn apply_sql(steps: usize) -> String {
    let mut sql = String::from(
        "BEGIN IMMEDIATE; \
         UPDATE runs SET status = $3, current_step = $4, step_executions = $5, due_at = $6, \
         lease_owner = $7, error = $8, updated_at = $9 \
         WHERE id = $1 AND lease_owner = $2 AND status = $10; \
         SELECT changes();",
    );
    for i in 0..steps {
        let values: Vec<String> = (0..9).map(|k| format!("${}", 11 + i * 9 + k)).collect();
        sql.push_str(&format!(
            " INSERT INTO run_steps (run_id, {STEP_COLUMNS}) SELECT $1, {} WHERE changes() = 1 \
             ON CONFLICT (run_id, step_id) DO UPDATE SET execution = excluded.execution, \
             status = excluded.status, attempts = excluded.attempts, output = excluded.output, \
             error = excluded.error, logs = excluded.logs, started_at = excluded.started_at, \
             finished_at = excluded.finished_at;",
            values.join(", ")
        ));
    }
    sql.push_str(" COMMIT;");
    sql
}
