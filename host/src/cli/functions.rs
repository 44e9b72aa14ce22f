//! `trellis functions …`.

use super::{Remote, print_json, read_json};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FunctionsCommand {
    /// Upload a component (`.wasm`) under a functionId; replaces the bytes if it exists.
    Upload {
        id: String,
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List functions.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one function.
    Get {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change settings, e.g. `--timeout-ms 5000 --memory-limit-mb 64`.
    Settings {
        id: String,
        #[arg(long)]
        timeout_ms: Option<u32>,
        #[arg(long)]
        memory_limit_mb: Option<u32>,
        /// Replaces the allowlist; repeat for several hosts.
        #[arg(long = "allowed-host")]
        allowed_hosts: Option<Vec<String>>,
        #[arg(long)]
        scratch_dir: Option<bool>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a function.
    Delete {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Invoke with a JSON object as triggerParams (default `{}`); `-` reads stdin.
    Invoke {
        id: String,
        params: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

impl FunctionsCommand {
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Upload { id, file, remote } => {
                let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                print_json(&remote.client()?.upload_function(&id, bytes).await?)
            }
            Self::List { remote } => print_json(&remote.client()?.list_functions().await?),
            Self::Get { id, remote } => print_json(&remote.client()?.get_function(&id).await?),
            Self::Settings {
                id,
                timeout_ms,
                memory_limit_mb,
                allowed_hosts,
                scratch_dir,
                remote,
            } => {
                let patch = trellis_client::SettingsPatch {
                    timeout_ms,
                    memory_limit_mb,
                    allowed_hosts,
                    scratch_dir,
                };
                print_json(&remote.client()?.update_function_settings(&id, &patch).await?)
            }
            Self::Delete { id, remote } => {
                remote.client()?.delete_function(&id).await?;
                eprintln!("deleted {id}");
                Ok(())
            }
            Self::Invoke { id, params, remote } => {
                let params = read_json(params.as_deref(), "params")?.unwrap_or_else(|| serde_json::json!({}));
                print_json(&remote.client()?.invoke_function(&id, &params).await?)
            }
        }
    }
}
