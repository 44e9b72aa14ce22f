//! The PostgreSQL backend, for production and for several nodes sharing one database.
//!
//! Transactions run at the default READ COMMITTED level; writes that depend on what
//! they read lock the row with `SELECT … FOR UPDATE`.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{
    Backend, FunctionRecord, FunctionRow, FunctionRowWithBytes, FunctionSettings, PutOutcome, now,
    settings_json, size_of,
};

/// PostgreSQL's default `max_connections` is 100; 16 per node leaves room for several
/// nodes and workers while covering a node's concurrent requests, which mostly wait
/// on Wasm execution rather than on the database.
const MAX_CONNECTIONS: u32 = 16;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
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
        Ok(PostgresStore { pool })
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
) -> Result<Option<FunctionRow>> {
    sqlx::query_as(concat!(
        "UPDATE functions SET settings = $2::jsonb, updated_at = $3 WHERE id = $1 RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .bind(settings)
    .bind(now)
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
