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
    /// The `SECRET_KEYS` JSON.
    pub secret_keys: String,
    /// `--memory-budget-mb`.
    pub memory_budget_mb: u32,
    /// `--workers`: in-process workers that execute runs.
    pub workers: u32,
    /// `--lease-ms`.
    pub lease: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_concurrency: 16,
            queue_timeout: Duration::from_secs(10),
            secret_keys: keyring_json(1, &[1]),
            memory_budget_mb: 8192,
            workers: 1,
            lease: Duration::from_secs(15),
        }
    }
}

/// A keyring with deterministic keys (version `v` is 32 bytes of `v`), so restarts
/// with an extended or reduced keyring agree on what each version is.
pub fn keyring_json(current: u32, versions: &[u32]) -> String {
    use base64::Engine;
    let keys: serde_json::Map<String, serde_json::Value> = versions
        .iter()
        .map(|&v| {
            (
                v.to_string(),
                base64::engine::general_purpose::STANDARD
                    .encode([v as u8; 32])
                    .into(),
            )
        })
        .collect();
    serde_json::json!({ "currentKeyVersion": current, "keys": keys }).to_string()
}

pub struct TestServer {
    pub base_url: String,
    pub client: trellis_client::Client,
    /// Raw HTTP for what the typed client cannot express (bad tokens, huge bodies).
    pub http: reqwest::Client,
    running: RunningServer,
    keyring: std::sync::Arc<trellis::secrets::Keyring>,
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
        Stopped { database, data_dir }
            .start(options)
            .await
            .unwrap_or_else(|(error, _)| panic!("starting the server: {error:#}"))
    }

    /// Stops the server, keeping its database and data dir for a later start.
    pub async fn stop(self) -> Stopped {
        let Self {
            running,
            database,
            data_dir,
            ..
        } = self;
        running.shutdown().await.expect("stopping the server");
        Stopped { database, data_dir }
    }

    /// Restarts with other options (a rotated keyring, say).
    pub async fn restart_with(self, options: Options) -> Self {
        let stopped = self.stop().await;
        Self::boot(stopped.database, stopped.data_dir, options).await
    }

    /// The services the server's API calls: functions, orchestrations, runs.
    pub fn state(&self) -> &trellis::api::AppState {
        &self.running.state
    }

    /// The server's database, opened as another process would (`trellis keys`, or a
    /// test looking at stored rows).
    pub async fn store(&self) -> trellis::store::Store {
        trellis::store::Store::connect(self.database_url())
            .await
            .expect("opening the server's database")
    }

    /// The keyring the server runs with.
    pub fn keyring(&self) -> &std::sync::Arc<trellis::secrets::Keyring> {
        &self.keyring
    }

    pub fn database_url(&self) -> &str {
        self.database.url()
    }
}

/// A stopped server's database and data dir.
pub struct Stopped {
    database: TestDatabase,
    data_dir: TempDir,
}

impl Stopped {
    /// Starts a server on them; on failure returns the error and the parts.
    pub async fn start(self, options: Options) -> Result<TestServer, (anyhow::Error, Stopped)> {
        let Stopped { database, data_dir } = self;
        let keyring = match trellis::secrets::Keyring::from_json(&options.secret_keys) {
            Ok(keyring) => std::sync::Arc::new(keyring),
            Err(error) => return Err((error.into(), Stopped { database, data_dir })),
        };
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("a socket address"),
            data_dir: data_dir.path().to_owned(),
            database_url: database.url().to_owned(),
            api_token: ApiToken::new(TOKEN.to_owned()).expect("a valid token"),
            keyring: keyring.clone(),
            max_concurrency: options.max_concurrency,
            queue_timeout: options.queue_timeout,
            memory_budget_mb: options.memory_budget_mb,
            workers: options.workers,
            worker: trellis::engine::WorkerConfig {
                lease: options.lease,
                ..Default::default()
            },
            preload_examples: None,
            mcp_allowed_hosts: vec!["localhost".into(), "127.0.0.1".into()],
        };
        let running = match trellis::server::start(config).await {
            Ok(running) => running,
            Err(error) => return Err((error, Stopped { database, data_dir })),
        };
        let base_url = format!("http://{}", running.addr);
        Ok(TestServer {
            client: trellis_client::Client::new(&base_url, TOKEN),
            http: reqwest::Client::new(),
            base_url,
            running,
            keyring,
            database,
            data_dir,
            options,
        })
    }
}

impl TestServer {
    /// Stops the server and starts a new one on the same database and data dir, as
    /// an operator restarting the process would.
    pub async fn restart(self) -> Self {
        let options = self.options.clone();
        self.restart_with(options).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `method path` with a JSON body and the token: the status and the JSON answer
    /// (`null` when it is not JSON).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
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
