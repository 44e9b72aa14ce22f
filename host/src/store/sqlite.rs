//! The embedded SQLite backend: one file in the data dir, no server to run.
//!
//! SQLite allows one writer at a time. Every multi-statement write transaction starts
//! with `BEGIN IMMEDIATE`, taking the write lock up front: a deferred transaction that
//! reads first and then tries to write can fail at once with `SQLITE_BUSY` when
//! another connection committed in between, whatever the busy timeout.
//! Single-statement writes take the lock at their start and need no transaction.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::SqliteExecutor;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    Backend, FunctionRecord, FunctionRow, FunctionRowWithBytes, FunctionSettings, PutOutcome, now,
    settings_json, size_of,
};

/// Under WAL, readers never block and one writer proceeds at a time; a handful of
/// connections serves concurrent API reads without wasting memory on idle handles.
const MAX_CONNECTIONS: u32 = 8;

/// How long a writer waits for another writer's lock before failing with
/// `SQLITE_BUSY`. Write transactions here are a few statements long, so 5 s only runs
/// out if something holds the lock abnormally long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub(super) async fn connect(url: &str) -> Result<Self> {
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
            .foreign_keys(true);
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
        Ok(SqliteStore { pool })
    }
}

impl Backend for SqliteStore {
    async fn put_function(&self, id: &str, bytes: &[u8], sha256: &str) -> Result<PutOutcome> {
        let now = now();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("beginning transaction")?;
        let current = match select_function(&mut *tx, id).await? {
            Some(row) => row,
            None => {
                let settings = settings_json(&FunctionSettings::default())?;
                // BEGIN IMMEDIATE means no one else can have inserted since the select,
                // so the insert always succeeds; it is written like the PostgreSQL one
                // anyway so that the two read the same.
                match insert_function(&mut *tx, id, bytes, sha256, &settings, now).await? {
                    Some(created) => {
                        tx.commit().await.context("committing")?;
                        return Ok(PutOutcome::Created(created.into_record()?));
                    }
                    None => select_function(&mut *tx, id)
                        .await?
                        .context("function was deleted while being uploaded; retry")?,
                }
            }
        };
        if current.sha256 == sha256 {
            // Nothing written; dropping `tx` rolls back the empty transaction.
            return Ok(PutOutcome::Unchanged(current.into_record()?));
        }
        let replaced = replace_function_bytes(&mut *tx, id, bytes, sha256, now).await?;
        tx.commit().await.context("committing")?;
        Ok(PutOutcome::Replaced(replaced.into_record()?))
    }

    async fn get_function(&self, id: &str) -> Result<Option<FunctionRecord>> {
        select_function(&self.pool, id)
            .await?
            .map(FunctionRow::into_record)
            .transpose()
    }

    async fn get_function_with_bytes(&self, id: &str) -> Result<Option<(FunctionRecord, Vec<u8>)>> {
        select_function_with_bytes(&self.pool, id)
            .await?
            .map(FunctionRowWithBytes::into_record_and_bytes)
            .transpose()
    }

    async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        select_functions(&self.pool)
            .await?
            .into_iter()
            .map(FunctionRow::into_record)
            .collect()
    }

    async fn update_function_settings(
        &self,
        id: &str,
        settings: &FunctionSettings,
    ) -> Result<Option<FunctionRecord>> {
        update_settings(&self.pool, id, &settings_json(settings)?, now())
            .await?
            .map(FunctionRow::into_record)
            .transpose()
    }

    async fn delete_function(&self, id: &str) -> Result<bool> {
        delete_function(&self.pool, id).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Timestamps are stored as fixed-width RFC 3339 text (see the migration); sqlx reads
/// them back into `DateTime<Utc>`.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The columns of [`FunctionRow`], in its order; `bytes` is deliberately absent.
macro_rules! record_columns {
    () => {
        "id, version, sha256, size_bytes, settings, created_at, updated_at"
    };
}

async fn select_function<'e>(db: impl SqliteExecutor<'e>, id: &str) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM functions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .with_context(|| format!("reading function {id}"))
}

async fn select_function_with_bytes<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
) -> Result<Option<FunctionRowWithBytes>> {
    sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        ", bytes FROM functions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .with_context(|| format!("reading function {id} with its bytes"))
}

async fn select_functions<'e>(db: impl SqliteExecutor<'e>) -> Result<Vec<FunctionRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM functions ORDER BY id"
    ))
    .fetch_all(db)
    .await
    .context("listing functions")
}

/// Inserts version 1; `None` if the id already exists.
async fn insert_function<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    bytes: &[u8],
    sha256: &str,
    settings: &str,
    now: DateTime<Utc>,
) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "INSERT INTO functions (id, version, sha256, size_bytes, settings, created_at, updated_at, bytes) ",
        "VALUES ($1, 1, $2, $3, $4, $5, $5, $6) ",
        "ON CONFLICT (id) DO NOTHING ",
        "RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .bind(sha256)
    .bind(size_of(bytes)?)
    .bind(settings)
    .bind(timestamp(now))
    .bind(bytes)
    .fetch_optional(db)
    .await
    .with_context(|| format!("inserting function {id}"))
}

/// New bytes as the next version; settings and `created_at` stay.
async fn replace_function_bytes<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    bytes: &[u8],
    sha256: &str,
    now: DateTime<Utc>,
) -> Result<FunctionRow> {
    sqlx::query_as(concat!(
        "UPDATE functions ",
        "SET version = version + 1, sha256 = $2, size_bytes = $3, bytes = $4, updated_at = $5 ",
        "WHERE id = $1 ",
        "RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .bind(sha256)
    .bind(size_of(bytes)?)
    .bind(bytes)
    .bind(timestamp(now))
    .fetch_one(db)
    .await
    .with_context(|| format!("replacing function {id}"))
}

async fn update_settings<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    settings: &str,
    now: DateTime<Utc>,
) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "UPDATE functions SET settings = $2, updated_at = $3 WHERE id = $1 RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .bind(settings)
    .bind(timestamp(now))
    .fetch_optional(db)
    .await
    .with_context(|| format!("updating settings of function {id}"))
}

async fn delete_function<'e>(db: impl SqliteExecutor<'e>, id: &str) -> Result<bool> {
    let result = sqlx::query("DELETE FROM functions WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .with_context(|| format!("deleting function {id}"))?;
    Ok(result.rows_affected() > 0)
}
