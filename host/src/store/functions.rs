//! The `functions` table: uploaded components, their bytes and settings.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::dialect::{Connection, Dialect, Query};
use super::sql::SqlStore;
use super::{FunctionRecord, FunctionSettings, PutOutcome, now};

/// A `functions` row without its bytes (settings as JSON text).
#[derive(sqlx::FromRow)]
struct FunctionRow {
    id: String,
    version: i64,
    sha256: String,
    size_bytes: i64,
    settings: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct FunctionRowWithBytes {
    #[sqlx(flatten)]
    row: FunctionRow,
    bytes: Vec<u8>,
}

impl FunctionRow {
    fn into_record(self) -> Result<FunctionRecord> {
        let settings = serde_json::from_str(&self.settings)
            .with_context(|| format!("stored settings of function {} are not valid", self.id))?;
        Ok(FunctionRecord {
            id: self.id,
            version: self.version,
            sha256: self.sha256,
            size_bytes: self.size_bytes,
            created_at: self.created_at,
            updated_at: self.updated_at,
            settings,
        })
    }
}

/// The columns of [`FunctionRow`], in its order; `bytes` is deliberately absent.
fn columns<D: Dialect>() -> String {
    format!(
        "id, version, sha256, size_bytes, settings{} AS settings, created_at, updated_at",
        D::JSON_AS_TEXT
    )
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn put_function(&self, id: &str, bytes: &[u8], sha256: &str) -> Result<PutOutcome> {
        let now = now();
        let size = i64::try_from(bytes.len()).context("function is larger than the database can record")?;
        let mut tx = self.begin_write().await?;
        let current = match select_function::<D>(&mut tx, id, D::FOR_UPDATE).await? {
            Some(row) => row,
            None => {
                let settings = settings_json(&FunctionSettings::default())?;
                let insert = Query::new(format!(
                    "INSERT INTO functions (id, version, sha256, size_bytes, settings, created_at, updated_at, bytes) \
                     VALUES ($1, 1, $2, $3, $4{}, $5, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING {}",
                    D::TO_JSON,
                    columns::<D>()
                ))
                .bind(id)
                .bind(sha256)
                .bind(size)
                .bind(settings.as_str())
                .bind(now)
                .bind(bytes);
                let created: Option<FunctionRow> = D::fetch_optional(&mut tx, &insert)
                    .await
                    .with_context(|| format!("inserting function {id}"))?;
                match created {
                    Some(created) => {
                        tx.commit().await?;
                        return Ok(PutOutcome::Created(created.into_record()?));
                    }
                    // Only on PostgreSQL (SQLite's write lock kept everyone else out
                    // since the select): a concurrent put created the function after
                    // the select, and the insert waited for it to commit. Under READ
                    // COMMITTED the next statement sees that row, so this put becomes
                    // a replacement (or no-op) of it.
                    None => select_function::<D>(&mut tx, id, D::FOR_UPDATE)
                        .await?
                        .context("function was deleted while being uploaded; retry")?,
                }
            }
        };
        if current.sha256 == sha256 {
            // Nothing written; dropping `tx` rolls back (and releases any row lock).
            return Ok(PutOutcome::Unchanged(current.into_record()?));
        }
        // New bytes as the next version; settings and `created_at` stay.
        let replace = Query::new(format!(
            "UPDATE functions SET version = version + 1, sha256 = $2, size_bytes = $3, bytes = $4, \
             updated_at = $5 WHERE id = $1 RETURNING {}",
            columns::<D>()
        ))
        .bind(id)
        .bind(sha256)
        .bind(size)
        .bind(bytes)
        .bind(now);
        let replaced: Option<FunctionRow> = D::fetch_optional(&mut tx, &replace)
            .await
            .with_context(|| format!("replacing function {id}"))?;
        let replaced = replaced.with_context(|| format!("function {id} vanished while being replaced"))?;
        tx.commit().await?;
        Ok(PutOutcome::Replaced(replaced.into_record()?))
    }

    pub(super) async fn get_function(&self, id: &str) -> Result<Option<FunctionRecord>> {
        select_function::<D>(&mut *self.reader().await?, id, "")
            .await?
            .map(FunctionRow::into_record)
            .transpose()
    }

    pub(super) async fn get_function_with_bytes(
        &self,
        id: &str,
    ) -> Result<Option<(FunctionRecord, Vec<u8>)>> {
        let query = Query::new(format!(
            "SELECT {}, bytes FROM functions WHERE id = $1",
            columns::<D>()
        ))
        .bind(id);
        let row: Option<FunctionRowWithBytes> =
            D::fetch_optional(&mut *self.reader().await?, &query)
                .await
                .with_context(|| format!("reading function {id} with its bytes"))?;
        row.map(|row| Ok((row.row.into_record()?, row.bytes))).transpose()
    }

    pub(super) async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        let query = Query::new(format!("SELECT {} FROM functions ORDER BY id", columns::<D>()));
        let rows: Vec<FunctionRow> = D::fetch_all(&mut *self.reader().await?, &query)
            .await
            .context("listing functions")?;
        rows.into_iter().map(FunctionRow::into_record).collect()
    }

    pub(super) async fn update_function_settings(
        &self,
        id: &str,
        settings: &FunctionSettings,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<Option<FunctionRecord>> {
        let settings = settings_json(settings)?;
        let query = Query::new(format!(
            "UPDATE functions SET settings = $2{}, updated_at = $3 WHERE id = $1 AND updated_at = $4 RETURNING {}",
            D::TO_JSON,
            columns::<D>()
        ))
        .bind(id)
        .bind(settings.as_str())
        .bind(now())
        .bind(expected_updated_at);
        let row: Option<FunctionRow> = D::fetch_optional(&mut *self.writer().await?, &query)
            .await
            .with_context(|| format!("updating settings of function {id}"))?;
        row.map(FunctionRow::into_record).transpose()
    }

    pub(super) async fn delete_function(&self, id: &str) -> Result<bool> {
        let query = Query::new("DELETE FROM functions WHERE id = $1").bind(id);
        let deleted = D::execute(&mut *self.writer().await?, &query)
            .await
            .with_context(|| format!("deleting function {id}"))?;
        Ok(deleted > 0)
    }
}

/// The function `id`; `lock` is [`Dialect::FOR_UPDATE`] inside a write transaction.
async fn select_function<D: Dialect>(
    connection: &mut Connection<D>,
    id: &str,
    lock: &str,
) -> Result<Option<FunctionRow>> {
    let query = Query::new(format!(
        "SELECT {} FROM functions WHERE id = $1{lock}",
        columns::<D>()
    ))
    .bind(id);
    D::fetch_optional(connection, &query)
        .await
        .with_context(|| format!("reading function {id}"))
}

fn settings_json(settings: &FunctionSettings) -> Result<String> {
    serde_json::to_string(settings).context("serialising function settings")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_missing_from_stored_json_take_defaults() {
        let settings: FunctionSettings =
            serde_json::from_str(r#"{"timeoutMs":5000}"#).expect("valid settings JSON");
        assert_eq!(
            settings,
            FunctionSettings {
                timeout_ms: 5000,
                ..FunctionSettings::default()
            }
        );
    }
}
