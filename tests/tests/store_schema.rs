//! The schema itself, on both backends: the databases accept exactly the statuses the
//! API's enums name, and the SQLite migration that added those constraints by
//! rebuilding the run tables kept every run, step and the cascade between them.

use anyhow::{Context, Result, ensure};
use sqlx::{Connection, PgConnection, SqliteConnection};
use trellis::store::{RunStatus, StepStatus, Store};
use trellis_tests::db::TestDatabase;

const RUN: &str = "INSERT INTO runs (id, orchestration_id, orchestration_version, status, input, \
     step_executions, created_at, updated_at) \
     VALUES ($1, 'o', 1, $2, '{}', 0, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')";
const STEP: &str =
    "INSERT INTO run_steps (run_id, step_id, execution, status, attempts) VALUES ($1, $2, 1, $3, 0)";

/// One test per backend: inserts every run and step status the enums name, then one
/// of each that they do not.
macro_rules! statuses_are_checked {
    ($name:ident, $backend:ident, $connection:ty) => {
        #[tokio::test]
        async fn $name() -> Result<()> {
            let db = TestDatabase::$backend().await?;
            Store::connect(db.url()).await?.close().await;
            let mut db_connection = <$connection>::connect(db.url()).await?;
            let db = &mut db_connection;
            for status in RunStatus::ALL {
                let id = format!("run-{status}");
                sqlx::query(RUN)
                    .bind(&id)
                    .bind(status.as_str())
                    .execute(&mut *db)
                    .await
                    .with_context(|| format!("run status {status} was refused"))?;
                for step in StepStatus::ALL {
                    sqlx::query(STEP)
                        .bind(&id)
                        .bind(step.as_str())
                        .bind(step.as_str())
                        .execute(&mut *db)
                        .await
                        .with_context(|| format!("step status {step} was refused"))?;
                }
            }
            let refused = sqlx::query(RUN)
                .bind("bad")
                .bind("done")
                .execute(&mut *db)
                .await;
            ensure!(refused.is_err(), "a run status outside the enum was stored");
            let refused = sqlx::query(STEP)
                .bind("run-pending")
                .bind("bad")
                .bind("complete")
                .execute(&mut *db)
                .await;
            ensure!(
                refused.is_err(),
                "a step status outside the enum was stored"
            );
            Ok(())
        }
    };
}

statuses_are_checked!(sqlite_accepts_exactly_the_enum_statuses, sqlite, SqliteConnection);
statuses_are_checked!(postgres_accepts_exactly_the_enum_statuses, postgres, PgConnection);

/// A database written before the constraints existed keeps its runs and steps, and
/// deleting a run still deletes its steps.
#[tokio::test]
async fn sqlite_rebuild_keeps_runs_and_their_steps() -> Result<()> {
    let db = TestDatabase::sqlite().await?;
    let options = db
        .url()
        .parse::<sqlx::sqlite::SqliteConnectOptions>()?
        .create_if_missing(true)
        .foreign_keys(true);
    let mut before = sqlx::migrate!("../migrations/sqlite");
    let earlier: Vec<_> = before
        .migrations
        .iter()
        .filter(|m| m.description != "status checks")
        .cloned()
        .collect();
    ensure!(
        earlier.len() + 1 == before.migrations.len(),
        "expected one `status checks` migration"
    );
    before.migrations = earlier.into();
    let mut connection = SqliteConnection::connect_with(&options).await?;
    before.run(&mut connection).await?;
    sqlx::query(RUN)
        .bind("kept")
        .bind("waiting")
        .execute(&mut connection)
        .await?;
    sqlx::query(STEP)
        .bind("kept")
        .bind("approve")
        .bind("waiting")
        .execute(&mut connection)
        .await?;
    connection.close().await?;

    let store = Store::connect(db.url()).await?;
    let (run, steps) = store
        .get_run("kept")
        .await?
        .context("the run survived the rebuild")?;
    ensure!(run.status == RunStatus::Waiting, "run status {}", run.status);
    ensure!(
        steps.len() == 1 && steps[0].step_id == "approve",
        "steps {steps:?}"
    );
    store.close().await;

    let mut connection = SqliteConnection::connect_with(&options).await?;
    let parent: String = sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list('run_steps')")
        .fetch_one(&mut connection)
        .await?;
    ensure!(parent == "runs", "run_steps references {parent}");
    sqlx::query("DELETE FROM runs WHERE id = 'kept'")
        .execute(&mut connection)
        .await?;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM run_steps")
        .fetch_one(&mut connection)
        .await?;
    ensure!(left == 0, "{left} steps outlived their run");
    Ok(())
}
