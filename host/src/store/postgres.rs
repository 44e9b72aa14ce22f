//! The PostgreSQL backend, for production and for several nodes sharing one database.
//!
//! Transactions run at the default READ COMMITTED level; writes that depend on what
//! they read lock the row with `SELECT … FOR UPDATE`.

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{
    Backend, FunctionRecord, FunctionRow, FunctionRowWithBytes, FunctionSettings, OrchestrationHeader,
    OrchestrationRecord, PutOutcome, StoredDefinition, UpdateOutcome, next_version, now, settings_json,
    size_of,
};

/// PostgreSQL's default `max_connections` is 100; 16 per node leaves room for several
/// nodes and workers while covering a node's concurrent requests, which mostly wait
/// on Wasm execution rather than on the database.
const MAX_CONNECTIONS: u32 = 16;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
    /// Wakes this process's workers and waiters (see `runs.rs`).
    pub(super) signals: std::sync::Arc<super::Signals>,
    /// Whether this process relays `NOTIFY trellis_runs` into `signals` yet.
    pub(super) listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PostgresStore {
    pub(super) async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect(url)
            .await
            .context("connecting")?;
        // sqlx holds an advisory lock while migrating, so nodes starting together
        // apply each migration once.
        sqlx::migrate!("../migrations/postgres")
            .run(&pool)
            .await
            .context("running migrations")?;
        Ok(PostgresStore {
            pool,
            signals: Default::default(),
            listening: Default::default(),
        })
    }
}

impl Backend for PostgresStore {
    async fn put_function(&self, id: &str, bytes: &[u8], sha256: &str) -> Result<PutOutcome> {
        let now = now();
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
        let current = match select_function_for_update(&mut *tx, id).await? {
            Some(row) => row,
            None => {
                let settings = settings_json(&FunctionSettings::default())?;
                match insert_function(&mut *tx, id, bytes, sha256, &settings, now).await? {
                    Some(created) => {
                        tx.commit().await.context("committing")?;
                        return Ok(PutOutcome::Created(created.into_record()?));
                    }
                    // A concurrent put created the function after our select; the
                    // insert waited for it to commit. Under READ COMMITTED the next
                    // statement sees that row, so this put becomes a replacement (or
                    // no-op) of it.
                    None => select_function_for_update(&mut *tx, id)
                        .await?
                        .context("function was deleted while being uploaded; retry")?,
                }
            }
        };
        if current.sha256 == sha256 {
            // Nothing written; dropping `tx` rolls back and releases the row lock.
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
        delete_function(&self.pool, id).await
    }

    async fn create_orchestration(&self, id: &str, definition: &str) -> Result<OrchestrationRecord> {
        let now = now();
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
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
        let mut tx = self.pool.begin().await.context("beginning transaction")?;
        // The row lock makes concurrent updates (and a delete) wait here until this
        // transaction ends; under READ COMMITTED they then read the version it wrote.
        let Some(current) = select_current_version_for_update(&mut *tx, id).await? else {
            return Ok(UpdateOutcome::NotFound);
        };
        if current != expected_version {
            // Nothing written; dropping `tx` rolls back and releases the row lock.
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
        replace_definition(&self.pool, id, version, expected, new).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The columns of [`FunctionRow`], in its order; `bytes` is deliberately absent.
/// `settings` is JSONB, read as text so both backends share one row type.
macro_rules! record_columns {
    () => {
        "id, version, sha256, size_bytes, settings::text AS settings, created_at, updated_at"
    };
}

async fn select_function<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<Option<FunctionRow>> {
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

/// Like [`select_function`], and locks the row until the transaction ends.
async fn select_function_for_update<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM functions WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .with_context(|| format!("locking function {id}"))
}

async fn select_function_with_bytes<'e>(
    db: impl PgExecutor<'e>,
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

async fn select_functions<'e>(db: impl PgExecutor<'e>) -> Result<Vec<FunctionRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM functions ORDER BY id"
    ))
    .fetch_all(db)
    .await
    .context("listing functions")
}

/// Inserts version 1; `None` if the id already exists (waiting first for a concurrent
/// insert of the same id to commit or roll back).
async fn insert_function<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
    bytes: &[u8],
    sha256: &str,
    settings: &str,
    now: DateTime<Utc>,
) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "INSERT INTO functions (id, version, sha256, size_bytes, settings, created_at, updated_at, bytes) ",
        "VALUES ($1, 1, $2, $3, $4::jsonb, $5, $5, $6) ",
        "ON CONFLICT (id) DO NOTHING ",
        "RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .bind(sha256)
    .bind(size_of(bytes)?)
    .bind(settings)
    .bind(now)
    .bind(bytes)
    .fetch_optional(db)
    .await
    .with_context(|| format!("inserting function {id}"))
}

/// New bytes as the next version; settings and `created_at` stay.
async fn replace_function_bytes<'e>(
    db: impl PgExecutor<'e>,
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
    .bind(now)
    .fetch_one(db)
    .await
    .with_context(|| format!("replacing function {id}"))
}

async fn update_settings<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
    settings: &str,
    now: DateTime<Utc>,
    expected_updated_at: DateTime<Utc>,
) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "UPDATE functions SET settings = $2::jsonb, updated_at = $3 WHERE id = $1 AND updated_at = $4 RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .bind(settings)
    .bind(now)
    .bind(expected_updated_at)
    .fetch_optional(db)
    .await
    .with_context(|| format!("updating settings of function {id}"))
}

async fn delete_function<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<bool> {
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

/// Every orchestration joined with the text of its current version.
macro_rules! current_orchestrations {
    () => {
        " FROM orchestrations o JOIN orchestration_versions v \
         ON v.orchestration_id = o.id AND v.version = o.current_version"
    };
}

/// Inserts the `orchestrations` row at version 1; `None` if the id already exists
/// (waiting first for a concurrent insert of the same id to commit or roll back).
async fn insert_orchestration<'e>(
    db: impl PgExecutor<'e>,
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
    .bind(now)
    .fetch_optional(db)
    .await
    .with_context(|| format!("inserting orchestration {id}"))
}

/// Inserts one version's text; `false` if that version already exists.
async fn insert_orchestration_version<'e>(
    db: impl PgExecutor<'e>,
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
    .bind(now)
    .execute(db)
    .await
    .with_context(|| format!("inserting version {version} of orchestration {id}"))?;
    Ok(result.rows_affected() > 0)
}

/// The current version, locking the row until the transaction ends.
async fn select_current_version_for_update<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<Option<i64>> {
    sqlx::query_scalar("SELECT current_version FROM orchestrations WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(db)
        .await
        .with_context(|| format!("locking orchestration {id}"))
}

/// Makes `version` current and bumps `updated_at`; `created_at` stays.
async fn set_current_version<'e>(
    db: impl PgExecutor<'e>,
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
    .bind(now)
    .fetch_one(db)
    .await
    .with_context(|| format!("moving orchestration {id} to version {version}"))
}

async fn select_orchestration<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<Option<OrchestrationRecord>> {
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

async fn select_orchestrations<'e>(db: impl PgExecutor<'e>) -> Result<Vec<OrchestrationRecord>> {
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
    db: impl PgExecutor<'e>,
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
async fn select_first_definitions<'e>(db: impl PgExecutor<'e>, limit: u32) -> Result<Vec<StoredDefinition>> {
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
    db: impl PgExecutor<'e>,
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
async fn delete_orchestration<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<bool> {
    let result = sqlx::query("DELETE FROM orchestrations WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .with_context(|| format!("deleting orchestration {id}"))?;
    Ok(result.rows_affected() > 0)
}

/// One statement, so the comparison and the write are atomic without a transaction: a
/// concurrent swap of the same row makes this one wait, then re-check the condition
/// against the text that one wrote.
async fn replace_definition<'e>(
    db: impl PgExecutor<'e>,
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
