//! What differs between the two SQL databases, and nothing else: the [`Dialect`]
//! trait. Every statement is written once (in `functions.rs`, `orchestrations.rs` and
//! `runs.rs`) as a [`Query`], SQL text with its arguments, and a dialect runs it.
//!
//! Arguments are values of one small enum ([`Arg`]) rather than sqlx types bound
//! generically: each dialect binds them to its own database's types (a timestamp is
//! `TIMESTAMPTZ` on PostgreSQL and fixed-width text on SQLite), so the shared code
//! needs no sqlx trait bounds. Rows are read with the same `FromRow` types on both.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, FromRow, Pool};

use super::runs::Wake;
use super::{RunStatus, StepStatus};

/// A row type both backends read.
pub trait Record: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

impl<T> Record for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// A connection of dialect `D`'s database: a transaction or a pooled connection
/// dereferences to one.
pub type Connection<D> = <<D as Dialect>::Db as Database>::Connection;

/// The turn a dialect may make this process's writers take; see [`Dialect::write_turn`].
pub type WriteTurn<'a> = Option<tokio::sync::MutexGuard<'a, ()>>;

/// The real differences between SQLite and PostgreSQL, as the shared statements meet
/// them. `$n` placeholders work on both.
pub trait Dialect: Clone + Send + Sync + 'static {
    type Db: Database;

    /// Follows a parameter written into a JSON column: `::jsonb` on PostgreSQL;
    /// nothing on SQLite, which stores JSON as text.
    const TO_JSON: &'static str;
    /// Follows a JSON column read back as text: `::text` on PostgreSQL.
    const JSON_AS_TEXT: &'static str;
    /// Ends a read whose row the same transaction then writes: `FOR UPDATE` locks it on
    /// PostgreSQL. Empty on SQLite, where [`Dialect::BEGIN_WRITE`] already took the
    /// database's only write lock.
    const FOR_UPDATE: &'static str;
    /// Starts a transaction that writes: `BEGIN IMMEDIATE` on SQLite takes the write
    /// lock up front, because a deferred transaction that reads and then writes fails
    /// at once with `SQLITE_BUSY` when another connection committed in between.
    const BEGIN_WRITE: &'static str;
    /// Joins each orchestration to its current version. `CROSS JOIN` is SQLite's
    /// planner hint that fixes the join order: without it SQLite may scan every
    /// version and look its orchestration up, rather than the reverse.
    const JOIN_CURRENT_VERSION: &'static str;

    /// Waits for this process's turn to write, where the database needs one (SQLite);
    /// held until the write commits.
    fn write_turn(&self) -> impl Future<Output = WriteTurn<'_>> + Send;

    fn execute(
        connection: &mut Connection<Self>,
        query: &Query<'_>,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send;

    fn fetch_optional<T: Record>(
        connection: &mut Connection<Self>,
        query: &Query<'_>,
    ) -> impl Future<Output = sqlx::Result<Option<T>>> + Send;

    fn fetch_all<T: Record>(
        connection: &mut Connection<Self>,
        query: &Query<'_>,
    ) -> impl Future<Output = sqlx::Result<Vec<T>>> + Send;

    /// Tells other processes of `wake` after a change to `run` (`None`: to runs not
    /// named) has committed, without waiting for it to be sent: `NOTIFY` on
    /// PostgreSQL; nothing on SQLite, which has no other processes.
    fn announce(&self, pool: &Pool<Self::Db>, wake: Wake, run: Option<&str>);

    /// Waits, briefly, for what [`Dialect::announce`] was given to be sent: called
    /// before the pool closes.
    fn flush(&self) -> impl Future<Output = ()> + Send;
}

/// One statement with its arguments, in `$1, $2, …` order.
pub struct Query<'a> {
    pub sql: Cow<'static, str>,
    pub args: Vec<Arg<'a>>,
}

/// An argument, in the few types the schema uses. Statuses are bound from their enums
/// (as their wire names), never written into the SQL.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Text(Option<&'a str>),
    Int(i64),
    Bytes(&'a [u8]),
    Time(Option<DateTime<Utc>>),
}

impl<'a> Query<'a> {
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    pub fn bind(mut self, arg: impl Into<Arg<'a>>) -> Self {
        self.args.push(arg.into());
        self
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Arg::Text(value.as_deref())
    }
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(value)
    }
}

impl From<u32> for Arg<'_> {
    fn from(value: u32) -> Self {
        Arg::Int(value.into())
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Bytes(value)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(value: DateTime<Utc>) -> Self {
        Arg::Time(Some(value))
    }
}

impl From<Option<DateTime<Utc>>> for Arg<'_> {
    fn from(value: Option<DateTime<Utc>>) -> Self {
        Arg::Time(value)
    }
}

impl From<RunStatus> for Arg<'_> {
    fn from(value: RunStatus) -> Self {
        Arg::Text(Some(value.as_str()))
    }
}

impl From<StepStatus> for Arg<'_> {
    fn from(value: StepStatus) -> Self {
        Arg::Text(Some(value.as_str()))
    }
}

/// The three statement methods of a [`Dialect`] impl, the same for every database but
/// for its connection type and its `arguments` function (which turns [`Arg`]s into
/// that database's arguments). A macro because written generically they would need
/// sqlx's executor bounds, which the shared code is free of.
macro_rules! statements_with {
    ($connection:ty, $arguments:path) => {
        async fn execute(
            connection: &mut $connection,
            query: &$crate::store::dialect::Query<'_>,
        ) -> sqlx::Result<u64> {
            let done = sqlx::query_with(&query.sql, $arguments(&query.args)?)
                .execute(connection)
                .await?;
            Ok(done.rows_affected())
        }

        async fn fetch_optional<T: $crate::store::dialect::Record>(
            connection: &mut $connection,
            query: &$crate::store::dialect::Query<'_>,
        ) -> sqlx::Result<Option<T>> {
            sqlx::query_as_with(&query.sql, $arguments(&query.args)?)
                .fetch_optional(connection)
                .await
        }

        async fn fetch_all<T: $crate::store::dialect::Record>(
            connection: &mut $connection,
            query: &$crate::store::dialect::Query<'_>,
        ) -> sqlx::Result<Vec<T>> {
            sqlx::query_as_with(&query.sql, $arguments(&query.args)?)
                .fetch_all(connection)
                .await
        }
    };
}

pub(super) use statements_with;
