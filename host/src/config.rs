//! Typed configuration, read once at start (flags win over environment variables)
//! and validated before anything is opened. Handlers never read the environment.

use crate::engine::worker::{DEFAULT_CONCURRENCY, DEFAULT_LEASE};
use crate::secrets::Keyring;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings shared by every command that opens the store.
#[derive(Clone, Args)]
pub struct StoreArgs {
    /// Embedded database, generated API token and compiled-artifact cache.
    #[arg(long, env = "TRELLIS_DATA_DIR", default_value = "./trellis-data")]
    pub data_dir: PathBuf,

    /// `postgres://…` for PostgreSQL, `sqlite://…` for another SQLite file; default:
    /// the SQLite file in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The database URL: the one given, else `trellis.db` in the data dir.
    pub fn database_url(&self) -> Result<String> {
        match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(url.clone())
            }
            Some(url) if url.starts_with("sqlite:") => Ok(url.clone()),
            Some(_) => bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:"),
            None => {
                create_private_dir(&self.data_dir)?;
                Ok(format!("sqlite://{}", self.data_dir.join("trellis.db").display()))
            }
        }
    }
}

/// Where the keyring for `encryptedParams` comes from (docs/architecture.md#secrets).
/// The argument structs here deliberately have no `Debug`: they hold the keyring,
/// the token and the database URL as given.
#[derive(Clone, Args)]
pub struct KeyringArgs {
    /// The keyring JSON: `{ "currentKeyVersion": 2, "keys": { "1": "<base64 of 32 bytes>", … } }`.
    /// As a flag it is visible in `ps`: prefer the environment variable or
    /// SECRET_KEYS_FILE.
    #[arg(
        long,
        env = "SECRET_KEYS",
        hide_env_values = true,
        conflicts_with = "secret_keys_file"
    )]
    pub secret_keys: Option<String>,

    /// A file holding the keyring JSON.
    #[arg(long, env = "SECRET_KEYS_FILE")]
    pub secret_keys_file: Option<PathBuf>,
}

/// Whether [`KeyringArgs::load`] may create the embedded default's keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// `serve` on SQLite: create one on first start.
    IfEmbedded,
    /// Key maintenance commands: a new keyring would match nothing stored.
    Never,
}

/// Where the embedded default keeps its generated keyring.
const GENERATED_KEYRING_FILE: &str = "secret-keys.json";

impl KeyringArgs {
    /// The keyring given by `SECRET_KEYS` or `SECRET_KEYS_FILE`; without either, on
    /// the embedded default only, the one generated into the data dir (created 0600
    /// on first start, with a warning). PostgreSQL deployments must give one: every
    /// node has to share it.
    pub fn load(&self, store: &StoreArgs, generate: Generate) -> Result<Keyring> {
        if let Some(json) = &self.secret_keys {
            return Keyring::from_json(json).map_err(|error| anyhow::anyhow!("SECRET_KEYS: {error}"));
        }
        if let Some(path) = &self.secret_keys_file {
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("reading SECRET_KEYS_FILE {}", path.display()))?;
            return Keyring::from_json(&json)
                .map_err(|error| anyhow::anyhow!("SECRET_KEYS_FILE {}: {error}", path.display()));
        }
        if store
            .database_url
            .as_deref()
            .is_some_and(|url| !url.starts_with("sqlite:"))
        {
            bail!(
                "no keyring: set SECRET_KEYS or SECRET_KEYS_FILE (every node must share it); \
                 `trellis keys generate` prints a new key"
            );
        }
        create_private_dir(&store.data_dir)?;
        let path = store.data_dir.join(GENERATED_KEYRING_FILE);
        if !path.exists() && generate == Generate::Never {
            bail!(
                "no keyring: set SECRET_KEYS or SECRET_KEYS_FILE, or point --data-dir at the server's data dir \
                 ({} does not exist)",
                path.display()
            );
        }
        if !path.exists() {
            let json = Keyring::generate_json();
            if publish_private(&path, &json)? {
                tracing::warn!(
                    path = %path.display(),
                    "generated a keyring for encryptedParams in the data dir; back it up, and set \
                     SECRET_KEYS or SECRET_KEYS_FILE in production"
                );
            }
        }
        let json = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Keyring::from_json(&json).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
    }
}

/// `trellis serve`.
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address the API binds.
    #[arg(long, env = "TRELLIS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub keyring: KeyringArgs,

    /// The bootstrap admin bearer token; default: generated into the data dir.
    #[arg(long, env = "TRELLIS_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// In-process workers that execute runs (0: this node only serves the API, and
    /// `trellis worker` processes run the orchestrations).
    #[arg(long, env = "TRELLIS_WORKERS", default_value_t = 1)]
    pub workers: u32,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Upload the example functions (echo, digest, evaluate-request) at start.
    #[arg(long)]
    pub preload_examples: bool,

    /// Where `--preload-examples` finds the compiled examples.
    #[arg(
        long,
        env = "TRELLIS_EXAMPLES_DIR",
        default_value = "functions/target/wasm32-wasip2/release"
    )]
    pub examples_dir: PathBuf,

    /// A `Host` name `/mcp` accepts besides the loopback names (repeat, or separate
    /// with commas): the names clients use to reach this node. Other names are
    /// refused with 403, so a web page cannot reach the endpoint by DNS rebinding.
    #[arg(
        long = "mcp-allowed-host",
        env = "TRELLIS_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub mcp_allowed_hosts: Vec<String>,
}

/// The `Host` names `/mcp` always accepts: this machine's own.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// `trellis worker`: workers only, against PostgreSQL.
#[derive(Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub keyring: KeyringArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// Workers in this process; each claims and drives runs on its own.
    #[arg(long, env = "TRELLIS_WORKERS", default_value_t = 1)]
    pub workers: u32,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// How this node runs functions.
#[derive(Clone, Args)]
pub struct RuntimeArgs {
    /// Threads this process runs requests, runs and functions on. Default: one per
    /// core. Processes sharing a machine run best when their threads add up to its
    /// cores: more threads than cores spend CPU handing it back and forth.
    #[arg(long, env = "TRELLIS_THREADS", default_value_t = cores(),
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub threads: usize,

    /// Invocations running at once on this node; more wait in line.
    #[arg(long, env = "TRELLIS_MAX_CONCURRENCY", default_value_t = default_concurrency())]
    pub max_concurrency: u32,

    /// How long an invocation waits for a free slot before a 503. Ten seconds
    /// absorbs a burst without letting clients hang on a saturated node.
    #[arg(long, env = "TRELLIS_QUEUE_TIMEOUT_MS", default_value_t = 10_000)]
    pub queue_timeout_ms: u64,

    /// Guest memory (the sum of running calls' `memoryLimitMb`) this node allows at
    /// once; calls over it wait in line. Default: three quarters of physical memory.
    #[arg(long, env = "TRELLIS_MEMORY_BUDGET_MB", default_value_t = default_memory_budget_mb())]
    pub memory_budget_mb: u32,
}

/// How workers hold runs.
#[derive(Clone, Args)]
pub struct EngineArgs {
    /// How long a worker's claim on a run lasts unless renewed; after a crash, its
    /// runs are taken over this long after its last renewal.
    #[arg(long, env = "TRELLIS_LEASE_MS", default_value_t = DEFAULT_LEASE.as_millis() as u64)]
    pub lease_ms: u64,

    /// Runs one worker drives at once.
    #[arg(long, env = "TRELLIS_WORKER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY as u32)]
    pub worker_concurrency: u32,
}

impl RuntimeArgs {
    pub fn validate(&self) -> Result<()> {
        // Each concurrent call reserves a pool slot with up to 4 GiB of address space;
        // 4096 of them is 16 TiB, an eighth of the 47-bit user address space.
        if self.max_concurrency == 0 || self.max_concurrency > 4096 {
            bail!(
                "--max-concurrency must be between 1 and 4096 (got {})",
                self.max_concurrency
            );
        }
        // Below 16 MiB not even a small function's default heap and stack fit.
        if self.memory_budget_mb < 16 {
            bail!(
                "--memory-budget-mb must be at least 16 (got {})",
                self.memory_budget_mb
            );
        }
        Ok(())
    }
}

impl EngineArgs {
    pub fn worker_config(&self) -> Result<crate::engine::WorkerConfig> {
        // Renewed every third of the lease; below a second, a busy database could
        // delay a renewal past expiry and hand a healthy run to another worker.
        if !(1_000..=3_600_000).contains(&self.lease_ms) {
            bail!(
                "--lease-ms must be between 1000 and 3600000 (got {})",
                self.lease_ms
            );
        }
        if !(1..=10_000).contains(&self.worker_concurrency) {
            bail!(
                "--worker-concurrency must be between 1 and 10000 (got {})",
                self.worker_concurrency
            );
        }
        Ok(crate::engine::WorkerConfig {
            concurrency: self.worker_concurrency as usize,
            lease: Duration::from_millis(self.lease_ms),
            ..Default::default()
        })
    }
}

/// Concurrent invocations per node: enough to keep both cores busy while some calls
/// wait on I/O, few enough that the pool's address-space reservation stays modest.
/// The cores this process may use; 2 when the system does not say.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn default_concurrency() -> u32 {
    (cores() as u32 * 32).min(512)
}

/// Three quarters of physical memory leaves the rest for the host process, the
/// database and the page cache.
fn default_memory_budget_mb() -> u32 {
    let total_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|meminfo| {
        let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    // Without /proc, assume a small machine.
    let total_mb = total_kb.map_or(4096, |kb| kb / 1024);
    u32::try_from(total_mb * 3 / 4).unwrap_or(u32::MAX)
}

/// Everything the server needs, resolved and validated.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub api_token: ApiToken,
    pub keyring: std::sync::Arc<Keyring>,
    pub max_concurrency: u32,
    pub queue_timeout: Duration,
    pub memory_budget_mb: u32,
    /// In-process workers.
    pub workers: u32,
    pub worker: crate::engine::WorkerConfig,
    pub preload_examples: Option<PathBuf>,
    /// `Host` names `/mcp` accepts.
    pub mcp_allowed_hosts: Vec<String>,
}

/// By hand, so the database password never reaches a log line.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &crate::store::redact_url(&self.database_url))
            .field("api_token", &self.api_token)
            .field("keyring", &self.keyring)
            .field("max_concurrency", &self.max_concurrency)
            .field("queue_timeout", &self.queue_timeout)
            .field("memory_budget_mb", &self.memory_budget_mb)
            .field("workers", &self.workers)
            .field("worker", &self.worker)
            .field("preload_examples", &self.preload_examples)
            .field("mcp_allowed_hosts", &self.mcp_allowed_hosts)
            .finish()
    }
}

impl Config {
    pub fn from_args(args: ServeArgs) -> Result<Self> {
        args.runtime.validate()?;
        let worker = args.engine.worker_config()?;
        let keyring = std::sync::Arc::new(args.keyring.load(&args.store, Generate::IfEmbedded)?);
        let database_url = args.store.database_url()?;
        let data_dir = args.store.data_dir;
        create_private_dir(&data_dir)?;
        let api_token = match args.api_token {
            Some(token) => ApiToken::new(token)?,
            None => ApiToken::load_or_generate(&data_dir)?,
        };
        Ok(Self {
            listen: args.listen,
            data_dir,
            database_url,
            api_token,
            keyring,
            max_concurrency: args.runtime.max_concurrency,
            queue_timeout: Duration::from_millis(args.runtime.queue_timeout_ms),
            memory_budget_mb: args.runtime.memory_budget_mb,
            workers: args.workers,
            worker,
            preload_examples: args.preload_examples.then_some(args.examples_dir),
            mcp_allowed_hosts: LOOPBACK_HOSTS
                .iter()
                .map(|host| host.to_string())
                .chain(
                    args.mcp_allowed_hosts
                        .into_iter()
                        .map(|host| host.trim().to_owned()),
                )
                .filter(|host| !host.is_empty())
                .collect(),
        })
    }
}

/// The bootstrap bearer token. `Debug` never prints it.
#[derive(Clone)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(********)")
    }
}

/// File in the data dir holding the generated token.
const TOKEN_FILE: &str = "api-token";

impl ApiToken {
    pub fn new(token: String) -> Result<Self> {
        // Short tokens can be guessed; 16 characters is the floor for a bearer secret.
        if token.len() < 16 {
            bail!("TRELLIS_API_TOKEN must be at least 16 characters");
        }
        Ok(Self(token))
    }

    fn load_or_generate(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(token) => {
                tracing::info!(path = %path.display(), "using the API token stored in the data dir");
                Self::new(token.trim().to_owned())
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("generating a token: {e}"))?;
                let token = format!("trl_{}", hex::encode(bytes));
                write_private(&path, &token)?;
                // Printed once, to the terminal that started the server; never logged.
                println!("Generated API token (saved to {}):\n{token}", path.display());
                Ok(Self(token))
            }
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Constant-time comparison, so response timing does not reveal a prefix.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The data dir holds the database, the token and compiled code: owner only (0700).
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))
}

/// Creates `path` (0600) with `contents` all at once: written beside it, then linked
/// into place, so a crash never leaves half a file and a concurrent start never sees
/// one. Returns false when another process created it first (its file is kept).
fn publish_private(path: &Path, contents: &str) -> Result<bool> {
    let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
    write_private(&partial, contents)?;
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    match linked {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}

/// Writes a file only the owner can read (0600).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
