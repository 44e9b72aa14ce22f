//! The store over one SQL database, generic over its [`Dialect`]: the pool, the
//! in-process wake-ups, and the three ways a statement gets a connection (a read, a
//! single write, a write transaction). The statements themselves are in
//! `functions.rs`, `orchestrations.rs` and `runs.rs`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use anyhow::{Context, Result};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use super::dialect::{Dialect, WriteTurn};
use super::runs::Signals;

#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pub(super) pool: Pool<D::Db>,
    pub(super) dialect: D,
    /// Wakes this process's workers and waiters (see `runs.rs`).
    pub(super) signals: Arc<Signals>,
}

/// By hand: derived, it would demand `D::Db: Clone`, which the pool does not need.
impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            dialect: self.dialect.clone(),
            signals: self.signals.clone(),
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    pub(super) fn new(pool: Pool<D::Db>, dialect: D) -> Self {
        Self {
            pool,
            dialect,
            signals: Default::default(),
        }
    }

    /// A pooled connection for reads, which never wait for writers.
    pub(super) async fn reader(&self) -> Result<PoolConnection<D::Db>> {
        self.pool.acquire().await.context("acquiring a connection")
    }

    /// A connection for one statement that writes: a single statement is atomic by
    /// itself and needs no transaction, only the writer turn.
    pub(super) async fn writer(&self) -> Result<Write<'_, PoolConnection<D::Db>>> {
        let turn = self.dialect.write_turn().await;
        let connection = self.pool.acquire().await.context("acquiring a connection")?;
        Ok(Write {
            on: connection,
            _turn: turn,
        })
    }

    /// A transaction that writes: the writer turn, then [`Dialect::BEGIN_WRITE`].
    /// Dropped without [`Write::commit`], it rolls back.
    pub(super) async fn begin_write(&self) -> Result<Write<'_, Transaction<'static, D::Db>>> {
        let turn = self.dialect.write_turn().await;
        let transaction = self
            .pool
            .begin_with(D::BEGIN_WRITE)
            .await
            .context("beginning transaction")?;
        Ok(Write {
            on: transaction,
            _turn: turn,
        })
    }

    pub(super) async fn flush(&self) {
        self.dialect.flush().await;
    }

    pub(super) async fn close(&self) {
        self.dialect.flush().await;
        self.pool.close().await;
    }
}

/// A connection or transaction that writes, holding the writer turn until dropped.
/// Fields drop in order: a transaction dropped uncommitted queues its rollback before
/// the turn passes to the next writer.
pub(super) struct Write<'s, C> {
    on: C,
    _turn: WriteTurn<'s>,
}

impl<DB: sqlx::Database> Write<'_, Transaction<'static, DB>> {
    pub async fn commit(self) -> Result<()> {
        self.on.commit().await.context("committing")
    }
}

impl<C: Deref> Deref for Write<'_, C> {
    type Target = C::Target;

    fn deref(&self) -> &C::Target {
        &self.on
    }
}

impl<C: DerefMut> DerefMut for Write<'_, C> {
    fn deref_mut(&mut self) -> &mut C::Target {
        &mut self.on
    }
}
