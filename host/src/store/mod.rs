//! Persistent state behind one interface, [`Store`], with two backends: embedded SQLite
//! (the default, a file in the data dir) and PostgreSQL (production and multi-node).
//!
//! One SQL layer serves both ([`sql::SqlStore`]), generic over a [`dialect::Dialect`]
//! that carries only what really differs (JSON casts, the row lock, the timestamp
//! type, how a write transaction begins, a planner hint, cross-process
//! notifications). Each statement is written once, in the module of its tables:
//! `functions.rs`, `orchestrations.rs`, `runs.rs`. Only claiming runs, applying a
//! worker's transition and listening for runs are written per backend, in
//! `sqlite.rs` and `postgres.rs`. `Store` dispatches to whichever backend the URL
//! chose, and the conformance suites (`tests/tests/store_conformance.rs`,
//! `tests/tests/runs.rs`) run every case against both.
//!
//! Adding a table: a migration in both `migrations/sqlite/` and `migrations/postgres/`,
//! its statements in a module here, a forwarding method on `Store`, and conformance
//! cases.

mod dialect;
mod functions;
mod orchestrations;
mod postgres;
mod runs;
mod sql;
mod sqlite;

pub use postgres::{Listen, Postgres, PostgresStore};
pub use runs::{
    CancelOutcome, Claim, ClaimedRun, DecideOutcome, Decision, RUN_TRANSACTIONS, RunRecord, RunStatus,
    Settled, Signals, StepRecord, StepStatus, Transition, Wake,
};
pub use sql::SqlStore;
pub use sqlite::{Sqlite, SqliteStore};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use std::time::Duration;

/// A stored function without its bytes (which can be megabytes), as the API shows it.
pub use trellis_types::{Function as FunctionRecord, FunctionSettings};

/// How long [`Store::checkpoint`] waits for other connections: short, since every
/// writer of the server waits behind it meanwhile.
const CHECKPOINT_PATIENCE: Duration = Duration::from_millis(250);

/// What [`Store::put_function`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// No function had this id: stored as version 1 with default settings.
    Created(FunctionRecord),
    /// Different bytes replaced the stored ones: version + 1, settings kept.
    Replaced(FunctionRecord),
    /// The stored bytes have the same sha256: nothing was written.
    Unchanged(FunctionRecord),
}

impl PutOutcome {
    pub fn record(&self) -> &FunctionRecord {
        match self {
            PutOutcome::Created(r) | PutOutcome::Replaced(r) | PutOutcome::Unchanged(r) => r,
        }
    }

    pub fn into_record(self) -> FunctionRecord {
        match self {
            PutOutcome::Created(r) | PutOutcome::Replaced(r) | PutOutcome::Unchanged(r) => r,
        }
    }
}

/// The current version of an orchestration.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct OrchestrationRecord {
    pub id: String,
    /// The current version: 1 on creation, +1 on every update.
    pub version: i64,
    /// JSON text, opaque to the store and returned byte for byte as stored. Secrets in
    /// it are encrypted blobs; it still belongs in no log or error message.
    pub definition: String,
    pub created_at: DateTime<Utc>,
    /// When the current version was written.
    pub updated_at: DateTime<Utc>,
}

/// One stored version of an orchestration's definition, current or not, of an
/// orchestration that may since have been deleted.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct StoredDefinition {
    pub orchestration_id: String,
    pub version: i64,
    pub definition: String,
}

/// What [`Store::update_orchestration`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// The new definition is stored as the next version, now the current one.
    Updated(OrchestrationRecord),
    /// No orchestration has this id (or it was deleted).
    NotFound,
    /// The current version is not the expected one: someone else updated first.
    /// Nothing was written.
    Conflict { current_version: i64 },
}

/// The database, whichever backend the URL chose. Cheap to clone: it wraps a pool.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever backend `$store` holds.
macro_rules! dispatch {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            Store::Sqlite($backend) => $call.await,
            Store::Postgres($backend) => $call.await,
        }
    };
}
pub(crate) use dispatch;

impl Store {
    /// Opens the database at `url` and brings its schema up to date.
    ///
    /// `sqlite:…` (the file is created if missing, with its directory) or
    /// `postgres://…` / `postgresql://…`. Errors name the backend and never contain
    /// the password from the URL.
    pub async fn connect(url: &str) -> Result<Store> {
        Self::open(url, false).await
    }

    /// A store whose SQLite connections zero the content they free (`secure_delete`),
    /// for rewrap, which replaces secrets under a retired key: a row that shrinks or
    /// moves leaves no old bytes in free space. The server does not use it, since
    /// zeroing makes every large write (an upload, a step's logs) also overwrite what
    /// it frees.
    pub async fn connect_erasing(url: &str) -> Result<Store> {
        Self::open(url, true).await
    }

    async fn open(url: &str, erase_freed: bool) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let store = sqlite::connect(url, erase_freed)
                .await
                .with_context(|| format!("opening SQLite database {}", redact_url(url)))?;
            Ok(Store::Sqlite(store))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let store = postgres::connect(url)
                .await
                .with_context(|| format!("opening PostgreSQL database {}", redact_url(url)))?;
            Ok(Store::Postgres(store))
        } else {
            bail!(
                "unsupported database URL {}: expected sqlite://<path> or postgres://<user>@<host>/<database>",
                redact_url(url)
            )
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Stores `bytes` under `id` in one transaction: creates version 1 with default
    /// settings, replaces the bytes as the next version if `sha256` differs, or writes
    /// nothing if it is the same. Concurrent puts of the same id are serialised; none
    /// of them fails because another created the function first.
    pub async fn put_function(&self, id: &str, bytes: &[u8], sha256: &str) -> Result<PutOutcome> {
        dispatch!(self, b => b.put_function(id, bytes, sha256))
    }

    pub async fn get_function(&self, id: &str) -> Result<Option<FunctionRecord>> {
        dispatch!(self, b => b.get_function(id))
    }

    /// The record and the component bytes, for invocation and compilation.
    pub async fn get_function_with_bytes(&self, id: &str) -> Result<Option<(FunctionRecord, Vec<u8>)>> {
        dispatch!(self, b => b.get_function_with_bytes(id))
    }

    /// Every function ordered by id, without bytes.
    pub async fn list_functions(&self) -> Result<Vec<FunctionRecord>> {
        dispatch!(self, b => b.list_functions())
    }

    /// Replaces the settings and bumps `updated_at`, if the function's `updated_at`
    /// is still `expected_updated_at` (compare-and-swap: a concurrent change is never
    /// overwritten with settings merged from an older read). The version is unchanged
    /// because the code is. `None` if no such function or it changed meanwhile.
    pub async fn update_function_settings(
        &self,
        id: &str,
        settings: &FunctionSettings,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<Option<FunctionRecord>> {
        dispatch!(self, b => b.update_function_settings(id, settings, expected_updated_at))
    }

    /// `true` if a function was deleted, `false` if there was none.
    pub async fn delete_function(&self, id: &str) -> Result<bool> {
        dispatch!(self, b => b.delete_function(id))
    }

    /// Stores `definition` as version 1 of a new orchestration, in one transaction;
    /// `created_at` and `updated_at` are now. Errors if `id` exists, or existed and was
    /// deleted (its versions remain): ids are server-generated UUIDs, so either means a
    /// bug, and reusing one would change what runs pinned to its versions execute.
    pub async fn create_orchestration(&self, id: &str, definition: &str) -> Result<OrchestrationRecord> {
        dispatch!(self, b => b.create_orchestration(id, definition))
    }

    /// The current version, or `None` if there is no such orchestration (also after a
    /// delete).
    pub async fn get_orchestration(&self, id: &str) -> Result<Option<OrchestrationRecord>> {
        dispatch!(self, b => b.get_orchestration(id))
    }

    /// One version of an orchestration, current or not, even of a deleted one: what a
    /// run that pinned it executes.
    pub async fn get_orchestration_version(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredDefinition>> {
        dispatch!(self, b => b.get_orchestration_version(id, version))
    }

    /// The current version of every orchestration, ordered by `created_at`, then id.
    pub async fn list_orchestrations(&self) -> Result<Vec<OrchestrationRecord>> {
        dispatch!(self, b => b.list_orchestrations())
    }

    /// In one transaction: if the current version is `expected_version`, stores
    /// `definition` as the next version, makes it current and bumps `updated_at`.
    /// Otherwise writes nothing and says why. Concurrent updates expecting the same
    /// version are serialised: exactly one of them succeeds.
    pub async fn update_orchestration(
        &self,
        id: &str,
        expected_version: i64,
        definition: &str,
    ) -> Result<UpdateOutcome> {
        dispatch!(self, b => b.update_orchestration(id, expected_version, definition))
    }

    /// `true` if an orchestration was deleted, `false` if there was none. Its versions
    /// remain readable with [`Store::get_orchestration_version`].
    pub async fn delete_orchestration(&self, id: &str) -> Result<bool> {
        dispatch!(self, b => b.delete_orchestration(id))
    }

    /// Every stored version of every orchestration, deleted ones included, ordered by
    /// `(orchestration_id, version)` (ids in byte order), starting after the keyset
    /// cursor `after` (exclusive), at most `limit` of them. Pass the last row of a page
    /// as `after` to get the next; an empty page is the end. For key rotation, which
    /// counts and re-encrypts secrets in batches.
    pub async fn definitions_page(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredDefinition>> {
        dispatch!(self, b => b.definitions_page(after, limit))
    }

    /// Compare-and-swap of one stored version's text: writes `new` only if the stored
    /// text is exactly `expected`, and returns whether it wrote (`false` also if there
    /// is no such version). Key rotation re-encrypts blobs in place this way while
    /// servers keep serving: a concurrent change makes the swap fail rather than be
    /// lost. Timestamps are unchanged; the definition means the same.
    pub async fn replace_definition(
        &self,
        id: &str,
        version: i64,
        expected: &str,
        new: &str,
    ) -> Result<bool> {
        dispatch!(self, b => b.replace_definition(id, version, expected, new))
    }

    /// Waits for in-flight queries and closes every connection. Clones of this store
    /// fail afterwards.
    /// Closes the pool once the notifications of the last changes are sent.
    pub async fn close(&self) {
        dispatch!(self, b => b.close())
    }

    /// Waits, briefly, until the notifications of the last changes are sent.
    pub async fn flush(&self) {
        dispatch!(self, b => b.flush())
    }

    /// On SQLite, copies the write-ahead log into the database file and empties it,
    /// so that rows just overwritten leave no older copy in any file. `false` when
    /// another connection's read or write kept it from emptying the log. It waits for
    /// them at most [`CHECKPOINT_PATIENCE`]: while it waits, every writer waits too.
    /// On PostgreSQL there is no such file to empty: true.
    pub async fn checkpoint(&self) -> Result<bool> {
        let Store::Sqlite(backend) = self else {
            return Ok(true);
        };
        let mut connection = backend.pool.acquire().await.context("checkpointing")?;
        let patience = format!("PRAGMA busy_timeout = {}", CHECKPOINT_PATIENCE.as_millis());
        sqlx::query(&patience).execute(&mut *connection).await?;
        let checkpoint = sqlx::query_as::<_, (i64,)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *connection)
            .await
            .context("checkpointing the SQLite write-ahead log");
        // The connection goes back to the pool with the usual patience.
        let usual = format!("PRAGMA busy_timeout = {}", sqlite::BUSY_TIMEOUT.as_millis());
        sqlx::query(&usual).execute(&mut *connection).await?;
        Ok(checkpoint?.0 == 0)
    }
}

/// `url` with any password replaced by `***`, for error messages and logs. Covers the
/// userinfo form (`postgres://user:secret@host/db`) and the `password=` query parameter
/// that PostgreSQL URLs also accept.
///
/// The userinfo is taken to end at the URL's last `@`, not at the first `/` or `?`:
/// a password typed without percent-encoding may hold either, and too much hidden is
/// the safe side of a mistake.
pub fn redact_url(url: &str) -> String {
    let masked = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, after)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{after}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    let Some((base, query)) = masked.split_once('?') else {
        return masked;
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => param.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// The current time at the precision both backends store (PostgreSQL keeps
/// microseconds), so a record returned by a write equals the same record read back.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(now)
}

/// By hand: a definition holds sealed blobs, which never belong in a log line.
impl std::fmt::Debug for OrchestrationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestrationRecord")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("definition", &format_args!("<{} bytes>", self.definition.len()))
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// By hand, for the same reason as [`OrchestrationRecord`].
impl std::fmt::Debug for StoredDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredDefinition")
            .field("orchestration_id", &self.orchestration_id)
            .field("version", &self.version)
            .field("definition", &format_args!("<{} bytes>", self.definition.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords() {
        let cases = [
            (
                "postgres://app:s3cr3t@db:5432/trellis",
                "postgres://app:***@db:5432/trellis",
            ),
            (
                "postgresql://app:p%40ss@db/trellis?sslmode=require",
                "postgresql://app:***@db/trellis?sslmode=require",
            ),
            (
                "postgres://db/trellis?user=app&password=s3cr3t",
                "postgres://db/trellis?user=app&password=***",
            ),
            ("postgres://app@db/trellis", "postgres://app@db/trellis"),
            (
                "sqlite://./trellis-data/trellis.db",
                "sqlite://./trellis-data/trellis.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            // Passwords typed without percent-encoding.
            ("postgres://app:pa/ss@db/trellis", "postgres://app:***@db/trellis"),
            (
                "postgres://app:pa?ss&x@db/trellis?sslmode=require",
                "postgres://app:***@db/trellis?sslmode=require",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
