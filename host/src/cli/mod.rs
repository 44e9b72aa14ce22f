//! The `trellis` command line: `serve` runs the server; the resource commands talk to
//! a running server over HTTP through `trellis-client`, exactly as any user would.

mod functions;
mod keys;
mod orchestrations;
mod runs;

use crate::config::{Config, ServeArgs, WorkerArgs};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "WebAssembly function host with durable orchestrations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (SQLite in the data dir unless DATABASE_URL is set).
    Serve(Box<ServeArgs>),
    /// Run workers only, against PostgreSQL (as many processes as needed).
    Worker(Box<WorkerArgs>),
    /// Upload, inspect and invoke functions on a running server.
    #[command(subcommand)]
    Functions(functions::FunctionsCommand),
    /// Create, read, update and delete orchestrations on a running server.
    #[command(subcommand)]
    Orchestrations(orchestrations::OrchestrationsCommand),
    /// Start, follow, approve, reject and cancel runs on a running server.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Key rotation for encryptedParams.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Where the resource commands find the server.
#[derive(Clone, Args)]
pub struct Remote {
    /// Base URL of the Trellis API.
    #[arg(long, env = "TRELLIS_URL", default_value = "http://127.0.0.1:8080")]
    url: String,

    /// Bearer token; default: the one generated into the data dir.
    #[arg(long, env = "TRELLIS_API_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Data dir to read a generated token from when no token is given.
    #[arg(long, env = "TRELLIS_DATA_DIR", default_value = "./trellis-data")]
    data_dir: PathBuf,
}

impl Remote {
    fn client(&self) -> anyhow::Result<trellis_client::Client> {
        let token = match &self.token {
            Some(token) => token.clone(),
            None => {
                let path = self.data_dir.join("api-token");
                std::fs::read_to_string(&path)
                    .map_err(|error| {
                        anyhow::anyhow!(
                            "no token: pass --token or TRELLIS_API_TOKEN, or point --data-dir at the server's data dir ({}: {error})",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(trellis_client::Client::new(&self.url, token))
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = Config::from_args(*args)?;
            crate::server::start(config).await?.wait_for_signal().await
        }
        Command::Worker(args) => crate::server::run_workers(*args).await,
        Command::Functions(command) => command.run().await,
        Command::Orchestrations(command) => command.run().await,
        Command::Runs(command) => command.run().await,
        Command::Keys(command) => command.run().await,
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`), `TRELLIS_LOG_FORMAT=json`
/// switches to one JSON object per line.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("TRELLIS_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A JSON argument: the text itself, `-` for stdin, `@path` for a file; `None` when
/// absent. Parse errors say where, never what was found (it may be a secret).
fn read_json(arg: Option<&str>, what: &str) -> anyhow::Result<Option<serde_json::Value>> {
    use anyhow::Context;
    let text = match arg {
        None => return Ok(None),
        Some("-") => {
            std::io::read_to_string(std::io::stdin()).with_context(|| format!("reading {what} from stdin"))?
        }
        Some(arg) => match arg.strip_prefix('@') {
            Some(path) => {
                std::fs::read_to_string(path).with_context(|| format!("reading {what} from {path}"))?
            }
            None => arg.to_owned(),
        },
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| anyhow::anyhow!("{what} are not JSON: {}", crate::api::describe_json_error(&error)))
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
