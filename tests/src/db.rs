//! A fresh, empty database per test, so tests run in parallel without seeing each
//! other's rows, on either backend.
//!
//! PostgreSQL is never skipped: when it is unreachable, [`TestDatabase::postgres`]
//! fails with instructions for starting it.

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use trellis::store::redact_url;

/// Where the PostgreSQL tests create their databases. The role needs `CREATEDB`.
pub const POSTGRES_URL_ENV: &str = "TRELLIS_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for as long as this value: dropping it deletes the SQLite
/// directory or drops the PostgreSQL database.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code, reason = "held for its Drop")] TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A SQLite file in a new temporary directory. The file itself is created by the
    /// first connection, as in production.
    pub async fn sqlite() -> Result<TestDatabase> {
        let dir = tempfile::tempdir().context("creating a temporary directory for SQLite")?;
        let url = format!("sqlite://{}", dir.path().join("trellis.db").display());
        Ok(TestDatabase {
            url,
            cleanup: Cleanup::Sqlite(dir),
        })
    }

    /// A new database `trellis_test_<uuid>` on the server named by
    /// `TRELLIS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
    pub async fn postgres() -> Result<TestDatabase> {
        let admin_url = std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let mut admin = PgConnection::connect(&admin_url).await.with_context(|| {
            format!(
                "PostgreSQL is not reachable at {url}. The store tests run against both \
                 backends and never skip one. Start PostgreSQL with trust auth, e.g. \
                 `docker run -d --rm -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15`, \
                 or set {POSTGRES_URL_ENV} to the URL of a role that may CREATE DATABASE",
                url = redact_url(&admin_url),
            )
        })?;
        let name = format!("trellis_test_{}", uuid::Uuid::new_v4().simple());
        // `name` is generated above, never user input, so it is safe to splice in
        // (CREATE DATABASE takes no bind parameters).
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating test database {name}"))?;
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Ok(TestDatabase {
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return; // TempDir removes the SQLite files itself.
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's async runtime, which must not be blocked on, so
        // the drop gets a thread and a runtime of its own. WITH (FORCE) ends the
        // connections a store may still hold. Best effort: a failure only leaves an
        // empty database behind, so it warns rather than failing the test.
        let dropped = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database: {e:#}"),
            Err(_) => eprintln!("warning: the thread dropping a test database panicked"),
        }
    }
}

/// `url` with its database (the path) replaced by `database`, keeping any query.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@db/postgres?sslmode=disable", "t1"),
            "postgres://u:p@db/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db", "t1"), "postgres://db/t1");
    }
}
