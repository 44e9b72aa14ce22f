//! The `trellis` command line: `serve` and `worker` run the server; the resource
//! commands and `mcp` talk to a running server over HTTP through `trellis-client`,
//! exactly as any user would. `--url`, `--token` and `-o` go anywhere on the line.

mod functions;
mod keys;
mod orchestrations;
mod output;
mod runs;

use crate::config::{Config, ServeArgs, WorkerArgs};
use anyhow::Context as _;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use output::Format;
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

    #[command(flatten)]
    remote: Remote,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (SQLite in the data dir unless DATABASE_URL is set).
    Serve(Box<ServeArgs>),
    /// Run workers only, against PostgreSQL (as many processes as needed).
    Worker(Box<WorkerArgs>),
    /// Upload, inspect and invoke functions on a running server.
    Functions(Group<functions::FunctionsCommand>),
    /// Create, read, update and delete orchestrations on a running server.
    Orchestrations(Group<orchestrations::OrchestrationsCommand>),
    /// Start, follow, approve, reject and cancel runs on a running server.
    Runs(Group<runs::RunsCommand>),
    /// Key rotation for encryptedParams.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Serve MCP on stdin/stdout for an AI agent, calling a running server.
    Mcp {
        #[command(flatten)]
        token: TokenFile,
    },
    /// Print the OpenAPI 3.1 document of the REST API (as served at /openapi.json).
    Openapi,
    /// Print a shell completion script: `trellis completions bash > ~/.local/share/bash-completion/completions/trellis`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A resource command, with where to find a generated token.
#[derive(Args)]
struct Group<C: Subcommand> {
    #[command(subcommand)]
    command: C,

    #[command(flatten)]
    token: TokenFile,
}

/// The data dir whose generated token the client uses when none is given.
#[derive(Args)]
struct TokenFile {
    /// Data dir to read a generated token from when no --token is given.
    #[arg(
        long,
        env = "TRELLIS_DATA_DIR",
        default_value = "./trellis-data",
        global = true
    )]
    data_dir: PathBuf,
}

/// Where the client commands find the server, and how they print.
#[derive(Args)]
struct Remote {
    /// Base URL of the Trellis API.
    #[arg(
        long,
        env = "TRELLIS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,

    /// Bearer token; default: the one generated into the data dir.
    #[arg(long, env = "TRELLIS_API_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,

    /// `table` for people, `json` for scripts (exactly the API's JSON).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputArg::Table, global = true)]
    output: OutputArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputArg {
    Table,
    Json,
}

/// What a resource command runs with: a client and an output format.
pub struct Connection {
    pub client: trellis_client::Client,
    pub format: Format,
}

impl Remote {
    fn connect(&self, token_file: &TokenFile) -> anyhow::Result<Connection> {
        let token = match &self.token {
            Some(token) => token.clone(),
            None => {
                let path = token_file.data_dir.join("api-token");
                std::fs::read_to_string(&path)
                    .map_err(|error| {
                        anyhow::anyhow!(
                            "no token: pass --token or set TRELLIS_API_TOKEN, or point --data-dir at the server's data dir ({}: {error})",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(Connection {
            client: trellis_client::Client::new(&self.url, token),
            format: match self.output {
                OutputArg::Table => Format::Table,
                OutputArg::Json => Format::Json,
            },
        })
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    match &cli.command {
        Command::Serve(args) => runtime.worker_threads(args.runtime.threads),
        Command::Worker(args) => runtime.worker_threads(args.runtime.threads),
        _ => &mut runtime,
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Messages can carry text from the server (an error a function wrote):
            // no control character reaches the terminal.
            eprintln!("error: {}", output::printable_text(&describe(&error)));
            ExitCode::FAILURE
        }
    }
}

/// An error as the user reads it: what happened, then what to do.
fn describe(error: &anyhow::Error) -> String {
    match error.downcast_ref::<trellis_client::Error>() {
        Some(trellis_client::Error::Api { status: 401, .. }) => format!(
            "{error:#}\nhint: the token was refused; pass --token or set TRELLIS_API_TOKEN (a generated one is in the server's data dir, api-token)"
        ),
        _ => format!("{error:#}"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::from_args(*args)?;
            crate::server::start(config).await?.wait_for_signal().await
        }
        Command::Worker(args) => crate::server::run_workers(*args).await,
        Command::Functions(group) => group.command.run(cli.remote.connect(&group.token)?).await,
        Command::Orchestrations(group) => group.command.run(cli.remote.connect(&group.token)?).await,
        Command::Runs(group) => group.command.run(cli.remote.connect(&group.token)?).await,
        Command::Keys(command) => command.run().await,
        Command::Mcp { token } => crate::mcp::serve_stdio(cli.remote.connect(&token)?.client).await,
        Command::Openapi => {
            println!("{}", crate::api::openapi_json());
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "trellis", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`), `TRELLIS_LOG_FORMAT=json`
/// switches to one JSON object per line.
fn init_tracing() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let layer = match std::env::var("TRELLIS_LOG_FORMAT").is_ok_and(|format| format == "json") {
        true => layer.json().boxed(),
        false => layer.boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(crate::logging::filter(&directives)))
        .init();
}

/// A JSON argument: the text itself, `-` for stdin, `@path` for a file; `None` when
/// absent. Parse errors say where, never what was found (it may be a secret).
fn read_json(arg: Option<&str>, what: &str) -> anyhow::Result<Option<serde_json::Value>> {
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
        .map_err(|error| anyhow::anyhow!("{what}: not JSON: {}", crate::json::describe_error(&error)))
}
