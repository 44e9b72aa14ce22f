//! The embedded SQLite backend: one file in the data dir, no server to run.
//!
//! SQLite allows one writer at a time. Every multi-statement write transaction starts
//! with `BEGIN IMMEDIATE`, taking the write lock up front: a deferred transaction that
//! reads first and then tries to write can fail at once with `SQLITE_BUSY` when
//! another connection committed in between, whatever the busy timeout.
//! Single-statement writes take the lock at their start and need no transaction.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::SqliteExecutor;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    Backend, FunctionRecord, FunctionRow, FunctionRowWithBytes, FunctionSettings, OrchestrationHeader,
    OrchestrationRecord, PutOutcome, StoredDefinition, UpdateOutcome, next_version, now, settings_json,
    size_of,
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
    pub(super) pool: SqlitePool,
    /// Write transactions of this process take turns here before `BEGIN IMMEDIATE`.
    /// SQLite's busy handler waits for a lock by sleeping in steps of up to 100 ms,
    /// which under concurrent writes turned a 2 ms create into a 300 ms p99; queueing
    /// in-process hands the lock over without sleeping. (Other processes, such as
    /// `trellis keys rewrap`, still meet the busy timeout.)
    pub(super) writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Wakes this process's workers and waiters (see `runs.rs`).
    pub(super) signals: std::sync::Arc<super::Signals>,
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
        Ok(SqliteStore {
            pool,
            writer: Default::default(),
            signals: Default::default(),
        })
    }
}

impl Backend for SqliteStore {
    async fn put_function(&self, id: &str, bytes: &[u8], sha256: &str) -> Result<PutOutcome> {
        let now = now();
        let _writer = self.writer.lock().await;
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
        expected_updated_at: DateTime<Utc>,
    ) -> Result<Option<FunctionRecord>> {
        let _writer = self.writer.lock().await;
        update_settings(
            &self.pool,
            id,
            &settings_json(settings)?,
            now(),
            expected_updated_at,
        )
        .await?
        .map(FunctionRow::into_record)
        .transpose()
    }

    async fn delete_function(&self, id: &str) -> Result<bool> {
        let _writer = self.writer.lock().await;
        delete_function(&self.pool, id).await
    }

    async fn create_orchestration(&self, id: &str, definition: &str) -> Result<OrchestrationRecord> {
        let now = now();
        let _writer = self.writer.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("beginning transaction")?;
        let created = insert_orchestration(&mut *tx, id, now)
            .await?
            .with_context(|| format!("orchestration {id} already exists"))?;
        ensure!(
            insert_orchestration_version(&mut *tx, id, 1, definition, now).await?,
            "orchestration id {id} was used before: versions of a deleted orchestration remain"
        );
        tx.commit().await.context("committing")?;
        Ok(created.with_definition(definition))
    }

    async fn get_orchestration(&self, id: &str) -> Result<Option<OrchestrationRecord>> {
        select_orchestration(&self.pool, id).await
    }

    async fn get_orchestration_version(&self, id: &str, version: i64) -> Result<Option<StoredDefinition>> {
        select_orchestration_version(&self.pool, id, version).await
    }

    async fn list_orchestrations(&self) -> Result<Vec<OrchestrationRecord>> {
        select_orchestrations(&self.pool).await
    }

    async fn update_orchestration(
        &self,
        id: &str,
        expected_version: i64,
        definition: &str,
    ) -> Result<UpdateOutcome> {
        let now = now();
        // Reads, then writes what depends on it: the write lock must be held from the
        // read on, or a concurrent update could slip in between.
        let _writer = self.writer.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("beginning transaction")?;
        let Some(current) = select_current_version(&mut *tx, id).await? else {
            return Ok(UpdateOutcome::NotFound);
        };
        if current != expected_version {
            // Nothing written; dropping `tx` rolls back the empty transaction.
            return Ok(UpdateOutcome::Conflict {
                current_version: current,
            });
        }
        let next = next_version(id, current)?;
        ensure!(
            insert_orchestration_version(&mut *tx, id, next, definition, now).await?,
            "version {next} of orchestration {id} already exists"
        );
        let updated = set_current_version(&mut *tx, id, next, now).await?;
        tx.commit().await.context("committing")?;
        Ok(UpdateOutcome::Updated(updated.with_definition(definition)))
    }

    async fn delete_orchestration(&self, id: &str) -> Result<bool> {
        let _writer = self.writer.lock().await;
        delete_orchestration(&self.pool, id).await
    }

    async fn definitions_page(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredDefinition>> {
        match after {
            None => select_first_definitions(&self.pool, limit).await,
            Some((id, version)) => select_definitions_after(&self.pool, id, version, limit).await,
        }
    }

    async fn replace_definition(&self, id: &str, version: i64, expected: &str, new: &str) -> Result<bool> {
        let _writer = self.writer.lock().await;
        replace_definition(&self.pool, id, version, expected, new).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Timestamps are stored as fixed-width RFC 3339 text (see the migration); sqlx reads
/// them back into `DateTime<Utc>`.
pub(super) fn timestamp(t: DateTime<Utc>) -> String {
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
    expected_updated_at: DateTime<Utc>,
) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "UPDATE functions SET settings = $2, updated_at = $3 WHERE id = $1 AND updated_at = $4 RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .bind(settings)
    .bind(timestamp(now))
    .bind(timestamp(expected_updated_at))
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

/// The columns of [`OrchestrationHeader`], in its order, from `orchestrations`.
macro_rules! orchestration_header_columns {
    () => {
        "id, current_version AS version, created_at, updated_at"
    };
}

/// The columns of [`OrchestrationRecord`], in its order, from `current_orchestrations!`.
macro_rules! orchestration_record_columns {
    () => {
        "o.id, o.current_version AS version, v.definition, o.created_at, o.updated_at"
    };
}

/// Every orchestration joined with the text of its current version. CROSS JOIN is
/// SQLite's way to fix the join order: without it the planner may scan every version
/// of every orchestration and look each orchestration up, rather than the reverse.
macro_rules! current_orchestrations {
    () => {
        " FROM orchestrations o CROSS JOIN orchestration_versions v \
         ON v.orchestration_id = o.id AND v.version = o.current_version"
    };
}

/// Inserts the `orchestrations` row at version 1; `None` if the id already exists.
async fn insert_orchestration<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<OrchestrationHeader>> {
    sqlx::query_as(concat!(
        "INSERT INTO orchestrations (id, current_version, created_at, updated_at) ",
        "VALUES ($1, 1, $2, $2) ",
        "ON CONFLICT (id) DO NOTHING ",
        "RETURNING ",
        orchestration_header_columns!()
    ))
    .bind(id)
    .bind(timestamp(now))
    .fetch_optional(db)
    .await
    .with_context(|| format!("inserting orchestration {id}"))
}

/// Inserts one version's text; `false` if that version already exists.
async fn insert_orchestration_version<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    version: i64,
    definition: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = sqlx::query(
        "INSERT INTO orchestration_versions (orchestration_id, version, definition, created_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (orchestration_id, version) DO NOTHING",
    )
    .bind(id)
    .bind(version)
    .bind(definition)
    .bind(timestamp(now))
    .execute(db)
    .await
    .with_context(|| format!("inserting version {version} of orchestration {id}"))?;
    Ok(result.rows_affected() > 0)
}

async fn select_current_version<'e>(db: impl SqliteExecutor<'e>, id: &str) -> Result<Option<i64>> {
    sqlx::query_scalar("SELECT current_version FROM orchestrations WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .with_context(|| format!("reading the version of orchestration {id}"))
}

/// Makes `version` current and bumps `updated_at`; `created_at` stays.
async fn set_current_version<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    version: i64,
    now: DateTime<Utc>,
) -> Result<OrchestrationHeader> {
    sqlx::query_as(concat!(
        "UPDATE orchestrations SET current_version = $2, updated_at = $3 WHERE id = $1 RETURNING ",
        orchestration_header_columns!()
    ))
    .bind(id)
    .bind(version)
    .bind(timestamp(now))
    .fetch_one(db)
    .await
    .with_context(|| format!("moving orchestration {id} to version {version}"))
}

async fn select_orchestration<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
) -> Result<Option<OrchestrationRecord>> {
    sqlx::query_as(concat!(
        "SELECT ",
        orchestration_record_columns!(),
        current_orchestrations!(),
        " WHERE o.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .with_context(|| format!("reading orchestration {id}"))
}

async fn select_orchestrations<'e>(db: impl SqliteExecutor<'e>) -> Result<Vec<OrchestrationRecord>> {
    sqlx::query_as(concat!(
        "SELECT ",
        orchestration_record_columns!(),
        current_orchestrations!(),
        " ORDER BY o.created_at, o.id"
    ))
    .fetch_all(db)
    .await
    .context("listing orchestrations")
}

async fn select_orchestration_version<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    version: i64,
) -> Result<Option<StoredDefinition>> {
    sqlx::query_as(
        "SELECT orchestration_id, version, definition FROM orchestration_versions \
         WHERE orchestration_id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(db)
    .await
    .with_context(|| format!("reading version {version} of orchestration {id}"))
}

/// The first page of [`select_definitions_after`].
async fn select_first_definitions<'e>(
    db: impl SqliteExecutor<'e>,
    limit: u32,
) -> Result<Vec<StoredDefinition>> {
    sqlx::query_as(
        "SELECT orchestration_id, version, definition FROM orchestration_versions \
         ORDER BY orchestration_id, version LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .context("reading the first page of orchestration definitions")
}

/// Up to `limit` versions after (`id`, `version`), in primary-key order: a seek in the
/// primary-key index, however far into the table the page is.
async fn select_definitions_after<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    version: i64,
    limit: u32,
) -> Result<Vec<StoredDefinition>> {
    sqlx::query_as(
        "SELECT orchestration_id, version, definition FROM orchestration_versions \
         WHERE (orchestration_id, version) > ($1, $2) \
         ORDER BY orchestration_id, version LIMIT $3",
    )
    .bind(id)
    .bind(version)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .with_context(|| format!("reading orchestration definitions after version {version} of {id}"))
}

/// Deletes the `orchestrations` row only; its versions stay for the runs that pinned
/// them.
async fn delete_orchestration<'e>(db: impl SqliteExecutor<'e>, id: &str) -> Result<bool> {
    let result = sqlx::query("DELETE FROM orchestrations WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .with_context(|| format!("deleting orchestration {id}"))?;
    Ok(result.rows_affected() > 0)
}

/// One statement, so the comparison and the write are atomic without a transaction.
async fn replace_definition<'e>(
    db: impl SqliteExecutor<'e>,
    id: &str,
    version: i64,
    expected: &str,
    new: &str,
) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE orchestration_versions SET definition = $4 \
         WHERE orchestration_id = $1 AND version = $2 AND definition = $3",
    )
    .bind(id)
    .bind(version)
    .bind(expected)
    .bind(new)
    .execute(db)
    .await
    .with_context(|| format!("replacing the text of version {version} of orchestration {id}"))?;
    Ok(result.rows_affected() > 0)
}
