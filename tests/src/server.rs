//! The real server, in this process, on `127.0.0.1:0`, against a fresh database of
//! either backend, with its own data dir.

use crate::db::TestDatabase;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use trellis::config::{ApiToken, Config};
use trellis::server::RunningServer;

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The bearer token every test server accepts.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Knobs a test may turn before start.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_concurrency: u32,
    pub queue_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_concurrency: 16,
            queue_timeout: Duration::from_secs(10),
        }
    }
}

pub struct TestServer {
    pub base_url: String,
    pub client: trellis_client::Client,
    /// Raw HTTP for what the typed client cannot express (bad tokens, huge bodies).
    pub http: reqwest::Client,
    running: RunningServer,
    database: TestDatabase,
    data_dir: TempDir,
    options: Options,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, options: Options) -> Self {
        let database = match backend {
            Backend::Sqlite => TestDatabase::sqlite().await,
            Backend::Postgres => TestDatabase::postgres().await,
        }
        .expect("creating a test database");
        let data_dir = tempfile::tempdir().expect("creating a data dir");
        Self::boot(database, data_dir, options).await
    }

    async fn boot(database: TestDatabase, data_dir: TempDir, options: Options) -> Self {
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("a socket address"),
            data_dir: data_dir.path().to_owned(),
            database_url: database.url().to_owned(),
            api_token: ApiToken::new(TOKEN.to_owned()).expect("a valid token"),
            max_concurrency: options.max_concurrency,
            queue_timeout: options.queue_timeout,
            memory_budget_mb: 8192,
            preload_examples: None,
        };
        let running = trellis::server::start(config).await.expect("starting the server");
        let base_url = format!("http://{}", running.addr);
        Self {
            client: trellis_client::Client::new(&base_url, TOKEN),
            http: reqwest::Client::new(),
            base_url,
            running,
            database,
            data_dir,
            options,
        }
    }

    /// Stops the server and starts a new one on the same database and data dir, as
    /// an operator restarting the process would.
    pub async fn restart(self) -> Self {
        let Self {
            running,
            database,
            data_dir,
            options,
            ..
        } = self;
        running.shutdown().await.expect("stopping the server");
        Self::boot(database, data_dir, options).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().to_owned()
    }

    /// One Prometheus sample from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
    }
}
