//! Boots a node: store (migrations), runtime, optional example functions, then the
//! HTTP API with in-process workers (`trellis serve`) or workers alone
//! (`trellis worker`).

use crate::api::{self, AppState};
use crate::config::{Config, Generate, WorkerArgs};
use crate::engine::{Engine, Worker, WorkerConfig, WorkerHandle};
use crate::functions::Functions;
use crate::orchestrations::Orchestrations;
use crate::runs::Runs;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::secrets::{Keyring, Rotation};
use crate::store::{Listen, Store};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The examples `--preload-examples` uploads, by functionId.
pub const EXAMPLES: [&str; 3] = ["echo", "digest", "evaluate-request"];

/// A server running in this process; dropping it does not stop it, `shutdown` does.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The services the API serves.
    pub state: AppState,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    workers: Vec<WorkerHandle>,
    store: Store,
}

impl RunningServer {
    /// Stops the workers (their runs are released for other nodes or the next
    /// start), stops accepting, finishes in-flight requests, and returns.
    pub async fn shutdown(self) -> Result<()> {
        stop_workers(self.workers).await;
        let _ = self.shutdown.send(());
        let served = self.task.await.context("server task")?.context("serving HTTP");
        // The word of the last changes (runs the workers handed back) goes out
        // before the process does.
        self.store.flush().await;
        served
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn wait_for_signal(self) -> Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

/// What every node opens: the store, the runtime and the engine around them.
struct Node {
    store: Store,
    functions: Functions,
    engine: Engine,
}

async fn open_node(
    database_url: &str,
    keyring: Arc<Keyring>,
    runtime: RuntimeConfig,
    listen: Listen,
) -> Result<Node> {
    let store = Store::connect(database_url).await?;
    Rotation::new(store.clone(), keyring.clone())
        .check_keyring_covers_store()
        .await?;
    // Runs are driven and awaited across processes on PostgreSQL.
    store.listen_for_runs(listen).await?;
    let functions = Functions::new(store.clone(), Runtime::new(runtime)?);
    let engine = Engine::new(store.clone(), functions.clone(), keyring);
    Ok(Node {
        store,
        functions,
        engine,
    })
}

fn runtime_config(
    data_dir: &Path,
    max_concurrency: u32,
    queue_timeout: std::time::Duration,
    memory_budget_mb: u32,
) -> RuntimeConfig {
    RuntimeConfig {
        artifact_dir: data_dir.join("artifacts"),
        scratch_root: data_dir.join("scratch"),
        max_concurrency,
        queue_timeout,
        memory_budget_mb,
    }
}

fn spawn_workers(engine: &Engine, count: u32, config: &WorkerConfig) -> Vec<WorkerHandle> {
    (0..count)
        .map(|_| Worker::spawn(engine.clone(), config.clone()))
        .collect()
}

async fn stop_workers(workers: Vec<WorkerHandle>) {
    for worker in workers {
        worker.stop().await;
    }
}

pub async fn start(config: Config) -> Result<RunningServer> {
    let runtime = runtime_config(
        &config.data_dir,
        config.max_concurrency,
        config.queue_timeout,
        config.memory_budget_mb,
    );
    let Node {
        store,
        functions,
        engine,
    } = open_node(
        &config.database_url,
        config.keyring.clone(),
        runtime,
        Listen {
            waiters: true,
            workers: config.workers > 0,
        },
    )
    .await?;
    if let Some(dir) = &config.preload_examples {
        preload_examples(&functions, dir).await?;
    }
    let orchestrations = Orchestrations::new(store.clone(), config.keyring.clone());
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let workers = spawn_workers(&engine, config.workers, &config.worker);
    let state = AppState {
        backend: store.backend(),
        functions,
        orchestrations,
        runs: Runs::new(store.clone(), engine.definitions.clone()),
        token: config.api_token.clone(),
        mcp: api::McpEndpoint::new(own_url(addr), config.mcp_allowed_hosts.clone()),
    };
    let (shutdown, signal) = oneshot::channel();
    let app = api::router(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = signal.await;
            })
            .await
    });
    tracing::info!(%addr, backend = state.backend, workers = workers.len(), "trellis listening");
    Ok(RunningServer {
        addr,
        state,
        shutdown,
        task,
        workers,
        store: store.clone(),
    })
}

/// Where this node's own API answers, for the MCP tools to call: the bound address,
/// with a wildcard replaced by loopback.
fn own_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// `trellis worker`: workers against PostgreSQL until Ctrl-C or SIGTERM, then their
/// runs are released for the other workers.
pub async fn run_workers(args: WorkerArgs) -> Result<()> {
    let database_url = args.store.database_url()?;
    if !database_url.starts_with("postgres") {
        anyhow::bail!(
            "trellis worker needs PostgreSQL (DATABASE_URL=postgres://…): the embedded SQLite database is \
             served by one process, `trellis serve`, which runs its own workers (--workers)"
        );
    }
    args.runtime.validate()?;
    if args.workers == 0 {
        anyhow::bail!("--workers must be at least 1 for trellis worker (it runs nothing else)");
    }
    let config = args.engine.worker_config()?;
    let keyring = Arc::new(args.keyring.load(&args.store, Generate::Never)?);
    let data_dir = &args.store.data_dir;
    crate::config::create_private_dir(data_dir)?;
    let runtime = runtime_config(
        data_dir,
        args.runtime.max_concurrency,
        std::time::Duration::from_millis(args.runtime.queue_timeout_ms),
        args.runtime.memory_budget_mb,
    );
    let listen = Listen {
        waiters: false,
        workers: args.workers > 0,
    };
    let node = open_node(&database_url, keyring, runtime, listen).await?;
    let workers = spawn_workers(&node.engine, args.workers, &config);
    tracing::info!(workers = workers.len(), "trellis worker running");
    shutdown_signal().await;
    tracing::info!("shutting down");
    stop_workers(workers).await;
    node.store.close().await;
    Ok(())
}

async fn preload_examples(functions: &Functions, dir: &Path) -> Result<()> {
    for id in EXAMPLES {
        let path = dir.join(format!("{}.wasm", id.replace('-', "_")));
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading example {} (build the examples first: cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml)",
                path.display()
            )
        })?;
        let outcome = functions
            .upload(id, bytes.into())
            .await
            .map_err(|error| anyhow::anyhow!("uploading example `{id}`: {error}"))?;
        tracing::info!(
            function = id,
            version = outcome.record().version,
            "example loaded"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
