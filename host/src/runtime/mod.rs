//! Runs functions: validates and compiles components, keeps one pre-instantiated
//! component per function version, and invokes them in a fresh sandbox each time
//! under a deadline, a memory cap and a concurrency bound.

mod artifacts;
mod engine;
pub mod logs;
mod sandbox;
mod scratch;

pub use engine::{Allocator, MAX_MEMORY_BYTES};
pub use logs::{Level, LogEntry, Source};

use anyhow::{Context, Result};
use artifacts::ArtifactCache;
use sandbox::Sandbox;
use scratch::ScratchDir;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// Host bindings for `wit/function.wit`.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "function",
        exports: { default: async },
    });
}

use bindings::trellis::function::types::{FunctionError as WitFunctionError, Invocation as WitInvocation};

/// The WIT interface every function must export.
pub const HANDLER_INTERFACE: &str = "trellis:function/handler@0.1.0";

/// A returned output larger than this is refused: it has to fit in a response and,
/// for orchestrations, in a run record.
pub const MAX_OUTPUT_BYTES: usize = 4 << 20;

/// Extra time past the epoch deadline before the async timeout gives up on a call
/// that is stuck in a host call rather than in guest code.
const ASYNC_TIMEOUT_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Compiled artifacts (`<data dir>/artifacts`).
    pub artifact_dir: PathBuf,
    /// Parent of per-invocation scratch directories (`<data dir>/scratch`).
    pub scratch_root: PathBuf,
    /// Invocations running at once; more wait in line.
    pub max_concurrency: u32,
    /// How long a call waits for a free slot before it is refused as overloaded.
    pub queue_timeout: Duration,
}

/// What a call needs to know about the function beyond its code.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_limit_bytes: usize,
    pub scratch_dir: bool,
}

/// The invocation facts handed to the function outside its triggerParams.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function_id: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub attempt: u32,
    pub idempotency_key: String,
}

#[derive(Debug)]
pub struct Outcome {
    pub output: serde_json::Value,
    pub logs: Vec<LogEntry>,
    pub duration: Duration,
}

/// Why an invocation did not produce an output. Every variant but `Overloaded` and
/// `Internal` carries the logs the function wrote before it failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("{message}")]
    Function {
        code: String,
        message: String,
        retryable: bool,
        logs: Vec<LogEntry>,
    },
    #[error("function trapped: {reason}")]
    Trapped { reason: String, logs: Vec<LogEntry> },
    #[error("function exceeded its deadline of {} ms", .timeout.as_millis())]
    Timeout { timeout: Duration, logs: Vec<LogEntry> },
    #[error("function exceeded its memory limit of {} MiB", .limit_bytes >> 20)]
    OutOfMemory { limit_bytes: usize, logs: Vec<LogEntry> },
    #[error("function wrote more than {} MiB to its scratch directory", scratch::SCRATCH_CAP_BYTES >> 20)]
    ScratchFull { logs: Vec<LogEntry> },
    #[error("function output is {size} bytes; the limit is {MAX_OUTPUT_BYTES}")]
    OutputTooLarge { size: usize, logs: Vec<LogEntry> },
    #[error("function output is not JSON: {reason}")]
    InvalidOutput { reason: String, logs: Vec<LogEntry> },
    #[error("all {0} invocation slots are busy; try again shortly")]
    Overloaded(u32),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl InvokeError {
    /// The function's logs up to the failure, where there are any.
    pub fn logs(&self) -> &[LogEntry] {
        match self {
            Self::Function { logs, .. }
            | Self::Trapped { logs, .. }
            | Self::Timeout { logs, .. }
            | Self::OutOfMemory { logs, .. }
            | Self::ScratchFull { logs }
            | Self::OutputTooLarge { logs, .. }
            | Self::InvalidOutput { logs, .. } => logs,
            Self::Overloaded(_) | Self::Internal(_) => &[],
        }
    }
}

/// Why an uploaded component was refused.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("not a WebAssembly binary")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component; build with `--target wasm32-wasip2` (see the guest SDK guide)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("the component does not fit the Trellis world: {0}")]
    WrongWorld(String),
}

/// A function version ready to instantiate.
pub struct Prepared {
    pre: bindings::FunctionPre<Sandbox>,
}

#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    allocator: Allocator,
    linker: Linker<Sandbox>,
    artifacts: ArtifactCache,
    /// Keyed by the component's sha256, so a replaced function is a new entry and
    /// every node agrees on what a key means.
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    slots: Semaphore,
    config: RuntimeConfig,
}

/// Prepared components kept in memory; past this the cache starts over (each entry
/// is a compiled component, typically a few hundred KiB).
const MAX_PREPARED: usize = 1024;

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        // Pool slots cover every concurrent call plus one in flight per queued call
        // being torn down.
        let (engine, allocator) = engine::build(config.max_concurrency * 2)?;
        engine::start_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        bindings::Function::add_to_linker::<_, HasSelf<_>>(&mut linker, |sandbox| sandbox)
            .map_err(anyhow::Error::from)
            .context("linking the trellis:function imports")?;
        let artifacts = ArtifactCache::open(&config.artifact_dir, &engine)?;
        tracing::info!(
            ?allocator,
            max_concurrency = config.max_concurrency,
            "wasm runtime ready"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                allocator,
                linker,
                artifacts,
                prepared: Mutex::new(HashMap::new()),
                slots: Semaphore::new(config.max_concurrency as usize),
                config,
            }),
        })
    }

    pub fn allocator(&self) -> Allocator {
        self.inner.allocator
    }

    /// Components compiled by this process; a restart with a warm artifact cache
    /// compiles nothing.
    pub fn compilations(&self) -> u64 {
        self.inner.artifacts.compilations()
    }

    pub fn artifact_cache_hits(&self) -> u64 {
        self.inner.artifacts.hits()
    }

    /// The prepared component for `sha256`, if this process has it in memory.
    pub fn cached(&self, sha256: &str) -> Option<Arc<Prepared>> {
        self.lock_prepared().get(sha256).cloned()
    }

    /// Validates `bytes` as a Trellis component and prepares it for instantiation,
    /// loading the compiled artifact from disk when there is one. CPU-heavy: runs on
    /// the blocking pool.
    pub async fn prepare(&self, sha256: &str, bytes: bytes::Bytes) -> Result<Arc<Prepared>, PrepareError> {
        if let Some(prepared) = self.cached(sha256) {
            return Ok(prepared);
        }
        check_header(&bytes)?;
        let runtime = self.clone();
        let key = sha256.to_owned();
        let prepared = tokio::task::spawn_blocking(move || runtime.prepare_blocking(&key, &bytes))
            .await
            .context("compilation task")??;
        let mut cache = self.lock_prepared();
        if cache.len() >= MAX_PREPARED {
            cache.clear();
        }
        cache.insert(sha256.to_owned(), prepared.clone());
        Ok(prepared)
    }

    fn prepare_blocking(&self, sha256: &str, bytes: &[u8]) -> Result<Arc<Prepared>, PrepareError> {
        let inner = &self.inner;
        let component = inner
            .artifacts
            .load_or_compile(&inner.engine, sha256, bytes)
            .map_err(|error| match error.downcast::<ValidationError>() {
                Ok(invalid) => PrepareError::Invalid(invalid),
                Err(internal) => PrepareError::Internal(internal),
            })?;
        Ok(Arc::new(Prepared {
            pre: self.pre_instantiate(&component)?,
        }))
    }

    fn pre_instantiate(
        &self,
        component: &Component,
    ) -> Result<bindings::FunctionPre<Sandbox>, ValidationError> {
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|error| ValidationError::WrongWorld(format!("{error:#}")))?;
        bindings::FunctionPre::new(instance_pre).map_err(|error| {
            ValidationError::WrongWorld(format!("it must export `{HANDLER_INTERFACE}`: {error:#}"))
        })
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Prepared>>> {
        self.inner
            .prepared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Calls the function once in a fresh sandbox.
    pub async fn invoke(
        &self,
        prepared: &Prepared,
        limits: &Limits,
        invocation: &Invocation,
        params: &serde_json::Value,
    ) -> Result<Outcome, InvokeError> {
        let inner = &self.inner;
        let _slot = tokio::time::timeout(inner.config.queue_timeout, inner.slots.acquire())
            .await
            .map_err(|_| InvokeError::Overloaded(inner.config.max_concurrency))?
            .context("invocation slots closed")?;

        let scratch = match limits.scratch_dir {
            true => Some(ScratchDir::create(&inner.config.scratch_root)?),
            false => None,
        };
        let mut store = Store::new(&inner.engine, Sandbox::new(limits.memory_limit_bytes, scratch)?);
        store.limiter(|sandbox| &mut sandbox.limiter);
        let started = Instant::now();
        let deadline = started + limits.timeout;
        store.set_epoch_deadline(1);
        let mut ticks = 0u64;
        store.epoch_deadline_callback(move |sandbox| {
            ticks += 1;
            if Instant::now() >= deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            if ticks.is_multiple_of(scratch::CHECK_EVERY_TICKS)
                && let Some(scratch) = &sandbox.data().scratch
                && scratch.over_cap()
            {
                return Err(ScratchOverCap.into());
            }
            // Yield to the executor at every tick, so a busy guest shares its tokio
            // worker with other requests.
            Ok(UpdateDeadline::Yield(1))
        });

        let params = serde_json::to_string(params).context("serialising triggerParams")?;
        let facts = WitInvocation {
            function_id: invocation.function_id.clone(),
            run_id: invocation.run_id.clone(),
            step_id: invocation.step_id.clone(),
            attempt: invocation.attempt,
            idempotency_key: invocation.idempotency_key.clone(),
        };
        let call = async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instance
                .trellis_function_handler()
                .call_handle(&mut store, &facts, &params)
                .await
        };
        let result = tokio::time::timeout(limits.timeout + ASYNC_TIMEOUT_GRACE, call).await;
        let duration = started.elapsed();
        let sandbox = store.into_data();
        let logs = sandbox.logs.finish();

        let returned = match result {
            Err(_elapsed) => {
                return Err(InvokeError::Timeout {
                    timeout: limits.timeout,
                    logs,
                });
            }
            Ok(Err(error)) => return Err(classify_failure(error, &sandbox, limits, logs)),
            Ok(Ok(returned)) => returned,
        };
        match returned {
            Err(WitFunctionError {
                code,
                message,
                retryable,
            }) => Err(InvokeError::Function {
                code,
                message,
                retryable,
                logs,
            }),
            Ok(text) if text.len() > MAX_OUTPUT_BYTES => Err(InvokeError::OutputTooLarge {
                size: text.len(),
                logs,
            }),
            Ok(text) => match serde_json::from_str(&text) {
                Ok(output) => Ok(Outcome {
                    output,
                    logs,
                    duration,
                }),
                Err(error) => Err(InvokeError::InvalidOutput {
                    reason: error.to_string(),
                    logs,
                }),
            },
        }
    }
}

/// Raised from the epoch callback when the scratch directory is over its cap.
#[derive(Debug, thiserror::Error)]
#[error("scratch directory over its cap")]
struct ScratchOverCap;

fn classify_failure(
    error: wasmtime::Error,
    sandbox: &Sandbox,
    limits: &Limits,
    logs: Vec<LogEntry>,
) -> InvokeError {
    if error.is::<ScratchOverCap>() {
        return InvokeError::ScratchFull { logs };
    }
    if sandbox.limiter.exceeded {
        return InvokeError::OutOfMemory {
            limit_bytes: limits.memory_limit_bytes,
            logs,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout {
            timeout: limits.timeout,
            logs,
        },
        Some(trap) => {
            let mut reason = trap.to_string();
            if let Some(panic) = logs::panic_message(&logs) {
                reason = format!("{reason} ({panic})");
            }
            InvokeError::Trapped { reason, logs }
        }
        None => InvokeError::Internal(anyhow::Error::from(error).context("invoking the function")),
    }
}

/// Why `prepare` failed: the component's fault, or ours.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Tells a component from a core module or garbage before paying for compilation.
fn check_header(bytes: &[u8]) -> Result<(), ValidationError> {
    // The preamble is `\0asm`, then a 16-bit version and a 16-bit layer: layer 0 is
    // a core module, layer 1 a component.
    match bytes {
        [0, b'a', b's', b'm', _, _, 0, 0, ..] => Err(ValidationError::CoreModule),
        [0, b'a', b's', b'm', _, _, 1, 0, ..] => Ok(()),
        _ => Err(ValidationError::NotWasm),
    }
}
