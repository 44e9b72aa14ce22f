//! The `orchestrations` table (one row per live orchestration, pointing at its current
//! version) and `orchestration_versions` (every version's definition text, kept after
//! updates and deletes for the runs pinned to it).

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Utc};

use super::dialect::{Connection, Dialect, Query};
use super::sql::SqlStore;
use super::{OrchestrationRecord, StoredDefinition, UpdateOutcome, now};

/// An `orchestrations` row as a write returns it, without the definition (which the
/// caller already has, and which can be large).
#[derive(sqlx::FromRow)]
struct OrchestrationHeader {
    id: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl OrchestrationHeader {
    fn with_definition(self, definition: &str) -> OrchestrationRecord {
        OrchestrationRecord {
            id: self.id,
            version: self.version,
            definition: definition.to_owned(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The columns of [`OrchestrationHeader`], in its order, from `orchestrations`.
const HEADER_COLUMNS: &str = "id, current_version AS version, created_at, updated_at";

/// Every orchestration with the text of its current version, as the columns of
/// [`OrchestrationRecord`].
fn select_current<D: Dialect>() -> String {
    format!(
        "SELECT o.id, o.current_version AS version, v.definition, o.created_at, o.updated_at \
         FROM orchestrations o {} orchestration_versions v \
         ON v.orchestration_id = o.id AND v.version = o.current_version",
        D::JOIN_CURRENT_VERSION
    )
}

const VERSION_COLUMNS: &str = "SELECT orchestration_id, version, definition FROM orchestration_versions";

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn create_orchestration(
        &self,
        id: &str,
        definition: &str,
    ) -> Result<OrchestrationRecord> {
        let now = now();
        let mut tx = self.begin_write().await?;
        let insert = Query::new(format!(
            "INSERT INTO orchestrations (id, current_version, created_at, updated_at) \
             VALUES ($1, 1, $2, $2) ON CONFLICT (id) DO NOTHING RETURNING {HEADER_COLUMNS}"
        ))
        .bind(id)
        .bind(now);
        let created: Option<OrchestrationHeader> = D::fetch_optional(&mut tx, &insert)
            .await
            .with_context(|| format!("inserting orchestration {id}"))?;
        let created = created.with_context(|| format!("orchestration {id} already exists"))?;
        ensure!(
            insert_version::<D>(&mut tx, id, 1, definition, now).await?,
            "orchestration id {id} was used before: versions of a deleted orchestration remain"
        );
        tx.commit().await?;
        Ok(created.with_definition(definition))
    }

    pub(super) async fn get_orchestration(&self, id: &str) -> Result<Option<OrchestrationRecord>> {
        let query = Query::new(format!("{} WHERE o.id = $1", select_current::<D>())).bind(id);
        D::fetch_optional(&mut *self.reader().await?, &query)
            .await
            .with_context(|| format!("reading orchestration {id}"))
    }

    pub(super) async fn get_orchestration_version(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredDefinition>> {
        let query = Query::new(format!(
            "{VERSION_COLUMNS} WHERE orchestration_id = $1 AND version = $2"
        ))
        .bind(id)
        .bind(version);
        D::fetch_optional(&mut *self.reader().await?, &query)
            .await
            .with_context(|| format!("reading version {version} of orchestration {id}"))
    }

    pub(super) async fn list_orchestrations(&self) -> Result<Vec<OrchestrationRecord>> {
        let query = Query::new(format!("{} ORDER BY o.created_at, o.id", select_current::<D>()));
        D::fetch_all(&mut *self.reader().await?, &query)
            .await
            .context("listing orchestrations")
    }

    pub(super) async fn update_orchestration(
        &self,
        id: &str,
        expected_version: i64,
        definition: &str,
    ) -> Result<UpdateOutcome> {
        let now = now();
        let mut tx = self.begin_write().await?;
        // The write must be excluded from the read on, or a concurrent update could slip
        // in between: SQLite's write lock is already held; on PostgreSQL the row lock
        // makes concurrent updates (and a delete) wait here until this transaction ends,
        // and under READ COMMITTED they then read the version it wrote.
        let current = Query::new(format!(
            "SELECT current_version FROM orchestrations WHERE id = $1{}",
            D::FOR_UPDATE
        ))
        .bind(id);
        let current: Option<(i64,)> = D::fetch_optional(&mut tx, &current)
            .await
            .with_context(|| format!("reading the version of orchestration {id}"))?;
        let Some((current,)) = current else {
            return Ok(UpdateOutcome::NotFound);
        };
        if current != expected_version {
            // Nothing written; dropping `tx` rolls back (and releases any row lock).
            return Ok(UpdateOutcome::Conflict {
                current_version: current,
            });
        }
        let next = current
            .checked_add(1)
            .with_context(|| format!("orchestration {id} has no version numbers left"))?;
        ensure!(
            insert_version::<D>(&mut tx, id, next, definition, now).await?,
            "version {next} of orchestration {id} already exists"
        );
        // `created_at` stays.
        let make_current = Query::new(format!(
            "UPDATE orchestrations SET current_version = $2, updated_at = $3 WHERE id = $1 RETURNING {HEADER_COLUMNS}"
        ))
        .bind(id)
        .bind(next)
        .bind(now);
        let updated: Option<OrchestrationHeader> = D::fetch_optional(&mut tx, &make_current)
            .await
            .with_context(|| format!("moving orchestration {id} to version {next}"))?;
        let updated = updated.with_context(|| format!("orchestration {id} vanished while being updated"))?;
        tx.commit().await?;
        Ok(UpdateOutcome::Updated(updated.with_definition(definition)))
    }

    /// Deletes the `orchestrations` row only; its versions stay for the runs that
    /// pinned them.
    pub(super) async fn delete_orchestration(&self, id: &str) -> Result<bool> {
        let query = Query::new("DELETE FROM orchestrations WHERE id = $1").bind(id);
        let deleted = D::execute(&mut *self.writer().await?, &query)
            .await
            .with_context(|| format!("deleting orchestration {id}"))?;
        Ok(deleted > 0)
    }

    /// Up to `limit` versions after `after`, in primary-key order: a seek in the
    /// primary-key index, however far into the table the page is.
    pub(super) async fn definitions_page(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredDefinition>> {
        let query = match after {
            None => Query::new(format!(
                "{VERSION_COLUMNS} ORDER BY orchestration_id, version LIMIT $1"
            ))
            .bind(limit),
            Some((id, version)) => Query::new(format!(
                "{VERSION_COLUMNS} WHERE (orchestration_id, version) > ($1, $2) \
                 ORDER BY orchestration_id, version LIMIT $3"
            ))
            .bind(id)
            .bind(version)
            .bind(limit),
        };
        D::fetch_all(&mut *self.reader().await?, &query)
            .await
            .context("reading a page of orchestration definitions")
    }

    /// One statement, so the comparison and the write are atomic without a
    /// transaction: on PostgreSQL a concurrent swap of the same row makes this one
    /// wait, then re-check the condition against the text that one wrote.
    pub(super) async fn replace_definition(
        &self,
        id: &str,
        version: i64,
        expected: &str,
        new: &str,
    ) -> Result<bool> {
        let query = Query::new(
            "UPDATE orchestration_versions SET definition = $4 \
             WHERE orchestration_id = $1 AND version = $2 AND definition = $3",
        )
        .bind(id)
        .bind(version)
        .bind(expected)
        .bind(new);
        let replaced = D::execute(&mut *self.writer().await?, &query)
            .await
            .with_context(|| format!("replacing the text of version {version} of orchestration {id}"))?;
        Ok(replaced > 0)
    }
}

/// Inserts one version's text; `false` if that version already exists.
async fn insert_version<D: Dialect>(
    connection: &mut Connection<D>,
    id: &str,
    version: i64,
    definition: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let query = Query::new(
        "INSERT INTO orchestration_versions (orchestration_id, version, definition, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (orchestration_id, version) DO NOTHING",
    )
    .bind(id)
    .bind(version)
    .bind(definition)
    .bind(now);
    let inserted = D::execute(connection, &query)
        .await
        .with_context(|| format!("inserting version {version} of orchestration {id}"))?;
    Ok(inserted > 0)
}
