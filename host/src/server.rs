//! Boots the server: store (migrations), runtime, optional example functions, HTTP.

use crate::api::{self, AppState};
use crate::config::Config;
use crate::functions::Functions;
use crate::orchestrations::Orchestrations;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::Store;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The examples `--preload-examples` uploads, by functionId.
pub const EXAMPLES: [&str; 3] = ["echo", "digest", "evaluate-request"];

/// A server running in this process; dropping it does not stop it, `shutdown` does.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and returns.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(());
        self.task.await.context("server task")?.context("serving HTTP")
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn wait_for_signal(self) -> Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

pub async fn start(config: Config) -> Result<RunningServer> {
    let store = Store::connect(&config.database_url).await?;
    crate::orchestrations::keys::check_keyring_covers_store(&store, &config.keyring).await?;
    let runtime = Runtime::new(RuntimeConfig {
        artifact_dir: config.data_dir.join("artifacts"),
        scratch_root: config.data_dir.join("scratch"),
        max_concurrency: config.max_concurrency,
        queue_timeout: config.queue_timeout,
        memory_budget_mb: config.memory_budget_mb,
    })?;
    let functions = Functions::new(store.clone(), runtime);
    if let Some(dir) = &config.preload_examples {
        preload_examples(&functions, dir).await?;
    }
    let orchestrations = Orchestrations::new(store.clone(), config.keyring.clone());
    let state = AppState {
        store,
        functions,
        orchestrations,
        token: config.api_token.clone(),
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, signal) = oneshot::channel();
    let app = api::router(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = signal.await;
            })
            .await
    });
    tracing::info!(%addr, backend = state.store.backend(), "trellis listening");
    Ok(RunningServer {
        addr,
        state,
        shutdown,
        task,
    })
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
