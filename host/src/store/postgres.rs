//! The PostgreSQL backend, for production and for several nodes and worker processes
//! sharing one database.
//!
//! Transactions run at the default READ COMMITTED level; writes that depend on what
//! they read lock the row with `SELECT … FOR UPDATE`. Claims lock due runs with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers split them instead of queueing on
//! each other.
//!
//! Wake-ups cross processes as notifications, sent after the change commits. A run
//! that settles is announced, with its id, on [`SETTLED_CHANNEL`], which only nodes
//! serving the API (where callers wait on runs) listen to. Work is announced to one
//! worker process, taking the registered ones in turn: each process running workers
//! holds an advisory lock `(WORKER_LOCK_CLASS, slot)` on its listener connection and
//! listens on `trellis_work_<slot>`. The lock is the registry: it ends with the
//! connection, so a dead process drops out of it, and it needs no table or
//! heartbeat. Each process reads the registry at most once per [`WORKER_LIST_TTL`]
//! ([`WorkerList`]).
//!
//! PostgreSQL signals every listening backend of the database for every notifying
//! transaction, whatever its channels, and each backend reads the queue in a
//! transaction of its own. So each process sends its notifications from one
//! [`Outbox`]: what commits while a batch is being sent goes out together in the
//! next, as one statement. Broadcasting every change, one notification each, made
//! commits per step grow with the number of worker processes.
//!
//! What a wake-up can miss (it reached a process whose slots are all busy, or one
//! that died within the last second; or it was lost with a process that died after
//! its commit) is found by the workers' idle poll and the waiters' own re-reads,
//! within a second.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::Arguments;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgConnection, PgListener, PgPoolOptions};

use super::dialect::{Arg, Dialect, Query, WriteTurn, statements_with};
use super::runs::{
    Claim, ClaimedRun, Queue, RUN_COLUMNS, RunRecord, RunStatus, STEP_COLUMNS, StepRecord, Transition, Wake,
    count_transaction, next_due,
};
use super::sql::SqlStore;

pub type PostgresStore = SqlStore<Postgres>;

/// PostgreSQL's default `max_connections` is 100; 16 per node leaves room for several
/// nodes and workers while covering a node's concurrent requests, which mostly wait
/// on Wasm execution rather than on the database.
const MAX_CONNECTIONS: u32 = 16;

/// Where runs that settle are announced, for nodes whose callers wait on runs.
const SETTLED_CHANNEL: &str = "trellis_settled";

/// The first key of the advisory locks that register worker processes ("trls").
const WORKER_LOCK_CLASS: i32 = 0x7472_6c73;

/// More worker processes than any deployment runs against one database; a process
/// that finds every slot taken fails to start rather than go unheard.
const MAX_WORKER_SLOTS: i32 = 4096;

/// The worker slots registered in this database: the advisory locks of
/// [`WORKER_LOCK_CLASS`] held now.
const REGISTERED_WORKERS: &str = "SELECT objid::int4 FROM pg_locks WHERE locktype = 'advisory' \
     AND granted AND classid = $1::oid AND objsubid = 2 \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     ORDER BY objid";

/// How long a read of the registered workers is used. Reading `pg_locks` copies
/// the server's whole lock table, too much for every run start; a worker that
/// started meanwhile claims on its own when it registers, and one that died is
/// covered by the others' idle poll.
const WORKER_LIST_TTL: Duration = Duration::from_secs(1);

/// How long the run listener waits before reconnecting after losing its connection.
const RELISTEN_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Default)]
pub struct Postgres {
    /// Whether this process relays notifications into its signals yet.
    listening: Arc<AtomicBool>,
    outbox: Arc<Outbox>,
}

/// Notifications this process has yet to send (see the module docs): those of
/// changes that commit while a batch is being sent go out together in the next; an
/// idle process sends each at once.
#[derive(Debug, Default)]
struct Outbox {
    pending: Mutex<Pending>,
    workers: WorkerList,
}

#[derive(Debug, Default)]
struct Pending {
    /// A task is sending: what is added now goes with its next batch.
    sending: bool,
    batch: Batch,
}

/// What one `NOTIFY` statement tells.
#[derive(Debug, Default)]
struct Batch {
    /// Changes that gave workers something to do: as many registered workers as
    /// there were (up to all of them) are told, each in turn.
    work: usize,
    settled: SettledRuns,
}

#[derive(Debug, Default)]
enum SettledRuns {
    #[default]
    None,
    Named(Vec<String>),
    /// Runs not named settled, or more than [`MAX_SETTLED_PER_BATCH`]: listeners
    /// read every run they wait on.
    Any,
}

/// Settled runs named in one batch; beyond that the batch says "some runs settled".
/// It bounds a batch's size however far the database falls behind.
const MAX_SETTLED_PER_BATCH: usize = 256;

impl Batch {
    fn add(&mut self, wake: Wake, run: Option<&str>) {
        self.work += usize::from(wake.work);
        if !wake.settled {
            return;
        }
        self.settled = match (std::mem::take(&mut self.settled), run) {
            (SettledRuns::None, Some(run)) => SettledRuns::Named(vec![run.to_owned()]),
            (SettledRuns::Named(mut runs), Some(run)) if runs.len() < MAX_SETTLED_PER_BATCH => {
                runs.push(run.to_owned());
                SettledRuns::Named(runs)
            }
            _ => SettledRuns::Any,
        };
    }

    fn is_empty(&self) -> bool {
        self.work == 0 && matches!(self.settled, SettledRuns::None)
    }
}

/// The registered worker slots as last read, and whose turn it is to be woken.
#[derive(Debug)]
struct WorkerList {
    read: Mutex<Option<(Instant, Arc<[i32]>)>>,
    turn: AtomicUsize,
    /// This process's own slot while it is registered (-1: none): its workers hear of
    /// its changes in-process.
    own: AtomicI32,
}

impl Default for WorkerList {
    fn default() -> Self {
        Self {
            read: Mutex::default(),
            // Each process starts its turns at a different worker, so that several
            // API nodes do not wake the same ones in lockstep.
            turn: AtomicUsize::new(uuid::Uuid::new_v4().as_u128() as usize),
            own: AtomicI32::new(-1),
        }
    }
}

impl WorkerList {
    /// The channels of the next `count` workers in turn (each at most once), other
    /// than this process, reading the registry through `connection` when the last
    /// read is older than [`WORKER_LIST_TTL`]; none when no other worker is
    /// registered (the next to start claims what is due).
    async fn next_channels(&self, connection: &mut PgConnection, count: usize) -> Result<Vec<String>> {
        let fresh = {
            let read = lock(&self.read);
            read.as_ref()
                .filter(|(at, _)| at.elapsed() < WORKER_LIST_TTL)
                .map(|(_, slots)| slots.clone())
        };
        let slots = match fresh {
            Some(slots) => slots,
            None => {
                let slots: Arc<[i32]> = sqlx::query_scalar(REGISTERED_WORKERS)
                    .bind(WORKER_LOCK_CLASS)
                    .fetch_all(&mut *connection)
                    .await
                    .context("reading the registered workers")?
                    .into();
                *lock(&self.read) = Some((Instant::now(), slots.clone()));
                slots
            }
        };
        let own = self.own.load(Ordering::Relaxed);
        let others: Vec<i32> = slots.iter().copied().filter(|slot| *slot != own).collect();
        let count = count.min(others.len());
        if count == 0 {
            return Ok(Vec::new());
        }
        let first = self.turn.fetch_add(count, Ordering::Relaxed) % others.len();
        Ok((0..count)
            .map(|i| worker_channel(others[(first + i) % others.len()]))
            .collect())
    }
}

/// Sends what is pending, batch after batch, until nothing is. A batch that fails or
/// takes longer than [`SEND_TIMEOUT`] is dropped with a warning: workers find the work
/// by their idle poll, and waiters read their run again at their own interval.
async fn send_pending(pool: sqlx::PgPool, mut task: SendingTask) {
    let outbox = task.outbox.clone();
    loop {
        let batch = {
            let mut pending = lock(&outbox.pending);
            let batch = std::mem::take(&mut pending.batch);
            // Under the lock `announce` adds with: nothing added after this check goes
            // unsent, as the next `announce` starts another task.
            if batch.is_empty() {
                pending.sending = false;
                task.finished = true;
                return;
            }
            batch
        };
        match tokio::time::timeout(SEND_TIMEOUT, send(&pool, &outbox.workers, batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(error))
                if matches!(error.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::PoolClosed)) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "notifying other processes failed")
            }
            Err(_) => tracing::warn!("notifying other processes timed out"),
        }
    }
}

/// The sending task: if it ends other than by finding nothing to send (it panicked,
/// or its runtime shut down), the next change starts another.
struct SendingTask {
    outbox: Arc<Outbox>,
    finished: bool,
}

impl Drop for SendingTask {
    fn drop(&mut self) {
        if !self.finished {
            lock(&self.outbox.pending).sending = false;
        }
    }
}

impl Outbox {
    /// Waits (up to [`SEND_TIMEOUT`]) until what is pending has been sent, so that a
    /// process shutting down does not take the word of its last changes with it.
    async fn flush(&self) {
        let deadline = Instant::now() + SEND_TIMEOUT;
        while Instant::now() < deadline && {
            let pending = lock(&self.pending);
            pending.sending || !pending.batch.is_empty()
        } {
            tokio::time::sleep(FLUSH_POLL).await;
        }
    }
}

/// How often a shutting-down process looks whether its notifications went out.
const FLUSH_POLL: Duration = Duration::from_millis(5);

/// How long one batch of notifications may take to send before it is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// One statement for the whole batch: work to the next workers in turn, and each
/// settled run by its id on [`SETTLED_CHANNEL`] (an empty payload: runs not named).
/// A failed read of the registry still lets the settled runs through.
async fn send(pool: &sqlx::PgPool, workers: &WorkerList, batch: Batch) -> Result<()> {
    let mut connection = pool.acquire().await?;
    let mut channels = Vec::new();
    let mut payloads = Vec::new();
    if batch.work > 0 {
        match workers.next_channels(&mut connection, batch.work).await {
            Ok(workers) => {
                payloads.extend(workers.iter().map(|_| String::new()));
                channels.extend(workers);
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "no worker told of new work"),
        }
    }
    let settled = match batch.settled {
        SettledRuns::None => Vec::new(),
        SettledRuns::Named(runs) => runs,
        SettledRuns::Any => vec![String::new()],
    };
    for run in settled {
        channels.push(SETTLED_CHANNEL.to_owned());
        payloads.push(run);
    }
    if !channels.is_empty() {
        sqlx::query(
            "SELECT pg_notify(channel, payload) FROM UNNEST($1::text[], $2::text[]) AS n(channel, payload)",
        )
        .bind(&channels)
        .bind(&payloads)
        .execute(&mut *connection)
        .await
        .context("notifying other processes")?;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn worker_channel(slot: i32) -> String {
    format!("trellis_work_{slot}")
}

pub(super) async fn connect(url: &str) -> Result<PostgresStore> {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect(url)
        .await
        .context("connecting")?;
    // sqlx holds an advisory lock while migrating, so nodes starting together apply
    // each migration once.
    sqlx::migrate!("../migrations/postgres")
        .run(&pool)
        .await
        .context("running migrations")?;
    Ok(SqlStore::new(pool, Postgres::default()))
}

impl Dialect for Postgres {
    type Db = sqlx::Postgres;

    const TO_JSON: &'static str = "::jsonb";
    const JSON_AS_TEXT: &'static str = "::text";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const JOIN_CURRENT_VERSION: &'static str = "JOIN";

    /// Row locks order PostgreSQL's writers; this process need not.
    async fn write_turn(&self) -> WriteTurn<'_> {
        None
    }

    statements_with!(PgConnection, arguments);

    fn announce(&self, pool: &sqlx::PgPool, wake: Wake, run: Option<&str>) {
        if wake == Wake::NONE {
            return;
        }
        let mut pending = lock(&self.outbox.pending);
        pending.batch.add(wake, run);
        if !std::mem::replace(&mut pending.sending, true) {
            // Made here, so that even a task dropped before it first runs clears
            // `sending` for the next change to start another.
            let task = SendingTask {
                outbox: self.outbox.clone(),
                finished: false,
            };
            drop(pending);
            tokio::spawn(send_pending(pool.clone(), task));
        }
    }

    async fn flush(&self) {
        self.outbox.flush().await;
    }
}

fn arguments(args: &[Arg<'_>]) -> sqlx::Result<PgArguments> {
    let mut out = PgArguments::default();
    for arg in args {
        let added: Result<(), BoxDynError> = match *arg {
            Arg::Text(text) => out.add(text),
            Arg::Int(int) => out.add(int),
            Arg::Bytes(bytes) => out.add(bytes),
            Arg::Time(time) => out.add(time),
        };
        added.map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    run: RunRecord,
    previous_owner: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StepOfRun {
    run_id: String,
    #[sqlx(flatten)]
    step: StepRecord,
}

impl Queue for SqlStore<Postgres> {
    async fn claim_runs(
        &self,
        owner: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim> {
        count_transaction();
        let mut tx = self.begin_write().await?;
        let returning: Vec<String> = RUN_COLUMNS
            .split(", ")
            .map(|column| format!("runs.{column}"))
            .collect();
        let claim = Query::new(format!(
            "WITH due AS ( \
                 SELECT id, lease_owner AS previous_owner FROM runs \
                 WHERE due_at IS NOT NULL AND due_at <= $2 ORDER BY due_at LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE runs SET lease_owner = $1, due_at = $3, updated_at = $2, \
                 status = CASE runs.status WHEN $5 THEN $6 ELSE runs.status END \
             FROM due WHERE runs.id = due.id RETURNING due.previous_owner, {}",
            returning.join(", ")
        ))
        .bind(owner)
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .bind(RunStatus::Pending)
        .bind(RunStatus::Running);
        let rows: Vec<ClaimedRow> = Postgres::fetch_all(&mut tx, &claim)
            .await
            .context("claiming runs")?;
        let next_due = next_due::<Postgres>(&mut tx, now).await?;
        if rows.is_empty() {
            // Nothing written: dropping `tx` rolls back.
            return Ok(Claim {
                runs: Vec::new(),
                next_due,
            });
        }
        // Read while the claimed rows are locked, so no decision or cancellation can
        // slip in between the runs and their steps.
        let ids: Vec<&str> = rows.iter().map(|row| row.run.id.as_str()).collect();
        let steps: Vec<StepOfRun> = sqlx::query_as(&format!(
            "SELECT run_id, {STEP_COLUMNS} FROM run_steps WHERE run_id = ANY($1) ORDER BY execution"
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .context("reading step records")?;
        tx.commit().await?;
        let mut claimed: Vec<ClaimedRun> = rows
            .into_iter()
            .map(|row| ClaimedRun {
                run: row.run,
                steps: Vec::new(),
                previous_owner: row.previous_owner,
            })
            .collect();
        for StepOfRun { run_id, step } in steps {
            if let Some(claim) = claimed.iter_mut().find(|claim| claim.run.id == run_id) {
                claim.steps.push(step);
            }
        }
        Ok(Claim {
            runs: claimed,
            next_due,
        })
    }

    /// The engine's hot path, one transaction per step, as one statement (one round
    /// trip): the fenced `UPDATE` and the step records (written only if the fence
    /// held, as they join its result), in data-modifying CTEs, which PostgreSQL runs
    /// in one snapshot and commits together.
    async fn apply(&self, run_id: &str, owner: &str, transition: &Transition) -> Result<bool> {
        count_transaction();
        let steps = &transition.steps;
        let applied: i64 = sqlx::query_scalar(
            "WITH updated AS ( \
                 UPDATE runs SET status = $3, current_step = $4, step_executions = $5, due_at = $6, \
                 lease_owner = $7, error = $8, updated_at = $9 \
                 WHERE id = $1 AND lease_owner = $2 AND status = $10 RETURNING id), \
             written AS ( \
                 INSERT INTO run_steps (run_id, step_id, execution, status, attempts, output, error, \
                 logs, started_at, finished_at) \
                 SELECT updated.id, step.* FROM updated, UNNEST($11::text[], $12::bigint[], \
                 $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[], \
                 $18::timestamptz[], $19::timestamptz[]) AS step \
                 ON CONFLICT (run_id, step_id) DO UPDATE SET execution = excluded.execution, \
                 status = excluded.status, attempts = excluded.attempts, output = excluded.output, \
                 error = excluded.error, logs = excluded.logs, started_at = excluded.started_at, \
                 finished_at = excluded.finished_at RETURNING 1) \
             SELECT (SELECT count(*) FROM updated) + 0 * (SELECT count(*) FROM written)",
        )
        .bind(run_id)
        .bind(owner)
        .bind(transition.status.as_str())
        .bind(&transition.current_step)
        .bind(transition.step_executions)
        .bind(transition.due_at)
        .bind(&transition.lease_owner)
        .bind(&transition.error)
        .bind(super::now())
        .bind(transition.expected.as_str())
        .bind(steps.iter().map(|s| s.step_id.as_str()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.execution).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.attempts).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.output.as_deref()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.error.as_deref()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.logs.as_deref()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.started_at).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.finished_at).collect::<Vec<_>>())
        .fetch_one(&self.pool)
        .await
        .context("applying a transition")?;
        Ok(applied == 1)
    }
}

impl SqlStore<Postgres> {
    /// Starts (once) a task that relays notifications into this process's signals:
    /// settled runs if `listen.waiters`, work if `listen.workers` (registering this
    /// process as a worker). Workers also poll at a slow interval, so nothing waits
    /// forever if a notification is missed.
    pub(super) async fn listen_for_runs(&self, listen: Listen) -> Result<()> {
        if self.dialect.listening.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let workers = &self.dialect.outbox.workers;
        let listener = match start_listening(&self.pool, listen, workers).await {
            Ok(listener) => listener,
            Err(error) => {
                self.dialect.listening.store(false, Ordering::SeqCst);
                return Err(error);
            }
        };
        tokio::spawn(relay(
            listener,
            listen,
            self.signals.clone(),
            self.dialect.outbox.clone(),
        ));
        Ok(())
    }
}

/// A listener on the channels `listen` asks for, registered as a worker if it runs
/// workers. On failure its connection is closed, so a lock it took goes with it.
async fn start_listening(pool: &sqlx::PgPool, listen: Listen, workers: &WorkerList) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .context("connecting the run listener")?;
    let subscribed = async {
        if listen.waiters {
            listener
                .listen(SETTLED_CHANNEL)
                .await
                .with_context(|| format!("LISTEN {SETTLED_CHANNEL}"))?;
        }
        if listen.workers {
            workers
                .own
                .store(register_worker(&mut listener).await?, Ordering::Relaxed);
        }
        anyhow::Ok(())
    }
    .await;
    match subscribed {
        Ok(()) => Ok(listener),
        Err(error) => {
            // Session locks outlive a connection returned to the pool; unlock first.
            let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut listener)
                .await;
            Err(error)
        }
    }
}

/// Relays notifications into `signals` until the store closes. Losing the connection
/// releases the worker registration, so it is taken again, until that succeeds,
/// before anything else: a process that is not registered hears of no work.
async fn relay(mut listener: PgListener, listen: Listen, signals: Arc<super::Signals>, outbox: Arc<Outbox>) {
    let mut registered = true;
    loop {
        if listen.workers && !registered {
            match register_worker(&mut listener).await {
                Ok(slot) => {
                    outbox.workers.own.store(slot, Ordering::Relaxed);
                    registered = true;
                }
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "could not register as a worker again; retrying"
                    );
                    tokio::time::sleep(RELISTEN_DELAY).await;
                    continue;
                }
            }
            // Anything may have changed while unregistered.
            signals.fire(Wake::ALL, None);
        }
        match listener.try_recv().await {
            Ok(Some(notification)) => match notification.channel() {
                SETTLED_CHANNEL => {
                    let run = Some(notification.payload()).filter(|run| !run.is_empty());
                    signals.fire(Wake::SETTLED, run);
                }
                _ => signals.fire(Wake::WORK, None),
            },
            // The connection was lost and re-established.
            Ok(None) => {
                registered = false;
                outbox.workers.own.store(-1, Ordering::Relaxed);
                signals.fire(Wake::ALL, None);
            }
            // The store was closed: this process is shutting down.
            Err(sqlx::Error::PoolClosed) => return,
            // Re-establishing the connection failed; the next receive tries again.
            Err(error) => {
                tracing::warn!(error = %error, "run listener lost its connection; reconnecting");
                registered = false;
                outbox.workers.own.store(-1, Ordering::Relaxed);
                tokio::time::sleep(RELISTEN_DELAY).await;
                signals.fire(Wake::ALL, None);
            }
        }
    }
}

/// Which notifications a process listens for; see [`Store::listen_for_runs`].
///
/// [`Store::listen_for_runs`]: super::Store::listen_for_runs
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// It serves the API, where callers wait for runs to settle.
    pub waiters: bool,
    /// It runs workers, which claim runs that fall due.
    pub workers: bool,
}

/// Takes a free worker slot on the listener's connection and listens on its channel.
/// Slots are tried from a random one on, so processes starting together do not race
/// for the same slots. A channel listened to before is kept: a wake-up chosen for it
/// while the lock was being retaken still arrives.
async fn register_worker(listener: &mut PgListener) -> Result<i32> {
    let start = (uuid::Uuid::new_v4().as_u128() % MAX_WORKER_SLOTS as u128) as i32;
    for slot in (start..MAX_WORKER_SLOTS).chain(0..start) {
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(WORKER_LOCK_CLASS)
            .bind(slot)
            .fetch_one(&mut *listener)
            .await
            .context("registering as a worker")?;
        if taken {
            let channel = worker_channel(slot);
            listener
                .listen(&channel)
                .await
                .with_context(|| format!("LISTEN {channel}"))?;
            return Ok(slot);
        }
    }
    anyhow::bail!("all {MAX_WORKER_SLOTS} worker slots are taken")
}
