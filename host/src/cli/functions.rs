//! `trellis functions …`.

use super::output::{self, Format, Table};
use super::{Connection, read_json};
use anyhow::{Context as _, Result};
use clap::Subcommand;
use std::path::PathBuf;
use trellis_client::{Function, InvokeResult, SettingsPatch};

#[derive(Subcommand)]
pub enum FunctionsCommand {
    /// Upload a component (`.wasm`) under a functionId; replaces the bytes if it exists.
    Upload { id: String, file: PathBuf },
    /// List functions.
    List,
    /// Show one function.
    Get { id: String },
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
    },
    /// Delete a function.
    Delete { id: String },
    /// Invoke with a JSON object as triggerParams (default `{}`): inline, `@file.json`
    /// or `-` for stdin.
    Invoke { id: String, params: Option<String> },
}

impl FunctionsCommand {
    pub async fn run(self, Connection { client, format }: Connection) -> Result<()> {
        match self {
            Self::Upload { id, file } => {
                let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                show(format, &client.upload_function(&id, bytes).await?)
            }
            Self::List => {
                let functions = client.list_functions().await?;
                if format == Format::Json {
                    return output::json(&trellis_client::List { data: functions });
                }
                let mut table = Table::new([
                    "ID", "VERSION", "SIZE", "SHA256", "TIMEOUT", "MEMORY", "HOSTS", "UPDATED",
                ]);
                for function in &functions {
                    table.row([
                        function.id.clone(),
                        function.version.to_string(),
                        size(function.size_bytes),
                        function.sha256.chars().take(12).collect(),
                        format!("{}ms", function.settings.timeout_ms),
                        format!("{}MiB", function.settings.memory_limit_mb),
                        hosts(&function.settings.allowed_hosts),
                        output::time(function.updated_at),
                    ]);
                }
                table.print();
                Ok(())
            }
            Self::Get { id } => show(format, &client.get_function(&id).await?),
            Self::Settings {
                id,
                timeout_ms,
                memory_limit_mb,
                allowed_hosts,
                scratch_dir,
            } => {
                let patch = SettingsPatch {
                    timeout_ms,
                    memory_limit_mb,
                    allowed_hosts,
                    scratch_dir,
                };
                show(format, &client.update_function_settings(&id, &patch).await?)
            }
            Self::Delete { id } => {
                client.delete_function(&id).await?;
                if format == Format::Table {
                    println!("deleted function {id}");
                }
                Ok(())
            }
            Self::Invoke { id, params } => {
                let params = read_json(params.as_deref(), "params")?.unwrap_or_else(|| serde_json::json!({}));
                let result = client.invoke_function(&id, &params).await?;
                match format {
                    Format::Json => output::json(&result),
                    Format::Table => invocation(&result),
                }
            }
        }
    }
}

fn show(format: Format, function: &Function) -> Result<()> {
    if format == Format::Json {
        return output::json(function);
    }
    output::fields(&[
        ("id", function.id.clone()),
        ("version", function.version.to_string()),
        ("size", size(function.size_bytes)),
        ("sha256", function.sha256.clone()),
        ("timeout", format!("{}ms", function.settings.timeout_ms)),
        (
            "memory limit",
            format!("{}MiB", function.settings.memory_limit_mb),
        ),
        ("allowed hosts", hosts(&function.settings.allowed_hosts)),
        ("scratch dir", function.settings.scratch_dir.to_string()),
        ("created", output::time(function.created_at)),
        ("updated", output::time(function.updated_at)),
    ]);
    Ok(())
}

/// The output as pretty JSON, then each log line, then how long it took.
fn invocation(result: &InvokeResult) -> Result<()> {
    output::json(&result.output)?;
    for entry in &result.logs {
        eprintln!(
            "[{} {}] {}",
            serde_json::to_value(entry.level)?.as_str().unwrap_or_default(),
            serde_json::to_value(entry.source)?.as_str().unwrap_or_default(),
            output::printable(&entry.message)
        );
    }
    eprintln!("({:.2}ms)", result.duration_ms);
    Ok(())
}

fn size(bytes: i64) -> String {
    match bytes {
        bytes if bytes < 1 << 10 => format!("{bytes}B"),
        bytes if bytes < 1 << 20 => format!("{:.1}KiB", bytes as f64 / 1024.0),
        bytes => format!("{:.1}MiB", bytes as f64 / (1 << 20) as f64),
    }
}

fn hosts(hosts: &[String]) -> String {
    match hosts {
        [] => "-".into(),
        hosts => hosts.join(","),
    }
}
