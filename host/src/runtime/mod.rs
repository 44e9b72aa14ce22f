//! Runs functions: validates and compiles components, keeps one pre-instantiated
//! component per function version in use (up to [`MAX_PREPARED`]), and invokes them
//! in a fresh sandbox each time under a deadline, a memory cap and a concurrency
//! bound.

mod artifacts;
mod engine;
pub mod http;
pub mod logs;
pub mod outbound;
mod sandbox;
mod scratch;

pub use engine::{Allocator, MAX_MEMORY_BYTES};
pub use logs::{LINE_TRUNCATED, Level, LogEntry, Source};

use crate::cache::Lru;
use anyhow::{Context, Result};
use artifacts::ArtifactCache;
use sandbox::Sandbox;
use scratch::ScratchDir;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
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

/// What ends a function error message that was cut short.
pub const MESSAGE_TRUNCATED: &str = " …[truncated]";

/// A returned output larger than this is refused: it has to fit in a response and,
/// for orchestrations, in a run record.
pub const MAX_OUTPUT_BYTES: usize = 4 << 20;

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
    /// The sum of `memoryLimitMb` over the calls running at once may not pass this.
    pub memory_budget_mb: u32,
}

/// What a call needs to know about the function beyond its code.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_limit_bytes: usize,
    pub scratch_dir: bool,
    /// Where the function may send HTTP requests; empty: nowhere.
    pub allowed_hosts: std::sync::Arc<[outbound::AllowEntry]>,
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
    pub output: Box<serde_json::value::RawValue>,
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
    /// The stable snake_case code callers see: the function's own for a function
    /// error, else one per failure kind.
    pub fn code(&self) -> &str {
        match self {
            Self::Function { code, .. } => code,
            Self::Trapped { .. } => "function_trapped",
            Self::Timeout { .. } => "function_timeout",
            Self::OutOfMemory { .. } => "function_out_of_memory",
            Self::ScratchFull { .. } => "function_scratch_full",
            Self::OutputTooLarge { .. } => "function_output_too_large",
            Self::InvalidOutput { .. } => "function_invalid_output",
            Self::Overloaded(_) => "overloaded",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether trying again may succeed: the function said so, or it ran out of
    /// time, or the node was busy. A trap or a memory bomb fails the same way again.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Function { retryable, .. } => *retryable,
            Self::Timeout { .. } | Self::Overloaded(_) => true,
            _ => false,
        }
    }

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
    prepared: Lru<String, Arc<Prepared>>,
    slots: Semaphore,
    /// Permits are MiB of guest memory.
    memory: Semaphore,
    /// One compilation at a time: Cranelift already uses every core for one
    /// component, and a second caller waiting here then finds the first one's result.
    compiling: tokio::sync::Mutex<()>,
    config: RuntimeConfig,
}

/// Prepared components kept in memory; past this the least recently invoked one makes
/// room (and is loaded again from the artifact cache on disk when next called). Each
/// entry is a compiled component, typically a few hundred KiB, so this bounds the
/// cache to a few hundred MiB while every function in regular use stays ready.
const MAX_PREPARED: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        // A store (and so its pool slot) is dropped before its call releases the
        // concurrency permit, so one slot per concurrent call is enough.
        let (engine, allocator) = engine::build(config.max_concurrency)?;
        scratch::clear_leftovers(&config.scratch_root);
        engine::start_epoch_ticker(&engine)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking wasi:http")?;
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
                prepared: Lru::new(MAX_PREPARED),
                slots: Semaphore::new(config.max_concurrency as usize),
                memory: Semaphore::new(config.memory_budget_mb as usize),
                compiling: tokio::sync::Mutex::new(()),
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

    /// Calls running right now (holding a slot).
    pub fn in_flight(&self) -> u64 {
        (self.inner.config.max_concurrency as usize - self.inner.slots.available_permits()) as u64
    }

    pub fn artifact_cache_hits(&self) -> u64 {
        self.inner.artifacts.hits()
    }

    /// The prepared component for `sha256`, if this process has it in memory.
    pub fn cached(&self, sha256: &str) -> Option<Arc<Prepared>> {
        self.inner.prepared.get(sha256)
    }

    /// Validates `bytes` as a Trellis component and prepares it for instantiation,
    /// loading the compiled artifact from disk when there is one. CPU-heavy: runs on
    /// the blocking pool.
    pub async fn prepare(&self, sha256: &str, bytes: bytes::Bytes) -> Result<Arc<Prepared>, PrepareError> {
        if let Some(prepared) = self.cached(sha256) {
            return Ok(prepared);
        }
        check_header(&bytes)?;
        let _compiling = self.inner.compiling.lock().await;
        // Whoever held the lock may have just prepared this very component.
        if let Some(prepared) = self.cached(sha256) {
            return Ok(prepared);
        }
        let runtime = self.clone();
        let key = sha256.to_owned();
        let prepared = tokio::task::spawn_blocking(move || runtime.prepare_blocking(&key, &bytes))
            .await
            .context("compilation task")??;
        self.inner.prepared.put(sha256.to_owned(), prepared.clone());
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

    /// Calls the function once in a fresh sandbox. `params` is the triggerParams
    /// object as JSON text; the output comes back as validated JSON text, so numbers
    /// and key order pass through exactly as the function wrote them.
    pub async fn invoke(
        &self,
        prepared: &Prepared,
        limits: &Limits,
        invocation: &Invocation,
        params: &str,
    ) -> Result<Outcome, InvokeError> {
        let inner = &self.inner;
        let overloaded = || InvokeError::Overloaded(inner.config.max_concurrency);
        let queue_deadline = tokio::time::Instant::now() + inner.config.queue_timeout;
        let _slot = tokio::time::timeout_at(queue_deadline, inner.slots.acquire())
            .await
            .map_err(|_| overloaded())?
            .context("invocation slots closed")?;
        // Reserve the function's whole memory cap, so concurrent calls can never
        // together exceed the node's budget, whatever each one does.
        let memory_mb = (limits.memory_limit_bytes >> 20).clamp(1, inner.config.memory_budget_mb as usize);
        let _memory = tokio::time::timeout_at(queue_deadline, inner.memory.acquire_many(memory_mb as u32))
            .await
            .map_err(|_| overloaded())?
            .context("memory budget closed")?;

        let scratch = match limits.scratch_dir {
            true => Some(ScratchDir::create(&inner.config.scratch_root)?),
            false => None,
        };
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let sandbox = Sandbox::new(
            limits.memory_limit_bytes,
            scratch,
            limits.allowed_hosts.clone(),
            tokio::time::Instant::from_std(deadline),
        )?;
        let mut store = Store::new(&inner.engine, sandbox);
        store.limiter(|sandbox| &mut sandbox.limiter);
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

        let facts = WitInvocation {
            function_id: invocation.function_id.clone(),
            run_id: invocation.run_id.clone(),
            step_id: invocation.step_id.clone(),
            attempt: invocation.attempt,
            idempotency_key: invocation.idempotency_key.clone(),
        };
        let call = async {
            let instance = prepared
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(Failure::Instantiate)?;
            let handler = instance.trellis_function_handler();
            handler
                .call_handle(&mut store, &facts, params)
                .await
                .map_err(Failure::Call)
        };
        // The epoch callback stops guest code at the deadline; this stops a call that
        // is waiting in a host function (a sleep, a poll) at the same moment.
        let result = tokio::time::timeout_at(deadline.into(), call).await;
        let duration = started.elapsed();
        let mut sandbox = store.into_data();
        if let Some(scratch) = sandbox.scratch.take() {
            // Removing a directory tree is blocking I/O; keep it off the workers.
            tokio::task::spawn_blocking(move || drop(scratch));
        }
        let logs = sandbox.logs.finish();

        let returned = match result {
            Err(_elapsed) => {
                return Err(InvokeError::Timeout {
                    timeout: limits.timeout,
                    logs,
                });
            }
            Ok(Err(failure)) => return Err(classify_failure(failure, &sandbox, limits, logs)),
            Ok(Ok(returned)) => returned,
        };
        match returned {
            Err(error) => Err(function_error(error, logs)),
            Ok(text) if text.len() > MAX_OUTPUT_BYTES => Err(InvokeError::OutputTooLarge {
                size: text.len(),
                logs,
            }),
            Ok(text) => match serde_json::value::RawValue::from_string(text) {
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

/// Where a call failed: before the guest ran (our side: pool, resources) or in it.
enum Failure {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// Raised from the epoch callback when the scratch directory is over its cap.
#[derive(Debug, thiserror::Error)]
#[error("scratch directory over its cap")]
struct ScratchOverCap;

/// A function error's `code` becomes the API's error code, so it must look like one.
const MAX_CODE_LEN: usize = 64;
/// A function error's message travels in responses and run records; past this it is
/// cut, as a runaway message is a bug, not information.
const MAX_ERROR_MESSAGE_BYTES: usize = 16 << 10;

/// The longest reason a guest fault that is not a trap keeps: it is wasmtime's error
/// chain, which can carry a long wasm backtrace, and it travels in responses and run
/// records, where its first lines tell the caller what went wrong.
const MAX_TRAP_REASON_BYTES: usize = 1024;

/// Keeps a function's own error, bounded: an invalid `code` becomes
/// `function_error`, an overlong message is cut.
fn function_error(error: WitFunctionError, logs: Vec<LogEntry>) -> InvokeError {
    let WitFunctionError {
        code,
        mut message,
        retryable,
    } = error;
    let valid_code = code.len() <= MAX_CODE_LEN
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let code = if valid_code {
        code
    } else {
        "function_error".to_owned()
    };
    if message.len() > MAX_ERROR_MESSAGE_BYTES {
        let mut cut = MAX_ERROR_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(MESSAGE_TRUNCATED);
    }
    InvokeError::Function {
        code,
        message,
        retryable,
        logs,
    }
}

fn classify_failure(
    failure: Failure,
    sandbox: &Sandbox,
    limits: &Limits,
    logs: Vec<LogEntry>,
) -> InvokeError {
    let error = match failure {
        Failure::Call(error) => error,
        Failure::Instantiate(error) if error.downcast_ref::<Trap>().is_none() => {
            return InvokeError::Internal(anyhow::Error::from(error).context("instantiating the function"));
        }
        Failure::Instantiate(error) => error,
    };
    if error.is::<ScratchOverCap>() {
        return InvokeError::ScratchFull { logs };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout {
            timeout: limits.timeout,
            logs,
        },
        // Rust aborts when an allocation fails, so the trap that follows a refused
        // memory growth is the out-of-memory, whatever instruction it names.
        _ if sandbox.limiter.exceeded => InvokeError::OutOfMemory {
            limit_bytes: limits.memory_limit_bytes,
            logs,
        },
        Some(trap) => {
            let mut reason = trap.to_string();
            if let Some(panic) = logs::panic_message(&logs) {
                reason = format!("{reason} ({panic})");
            }
            InvokeError::Trapped { reason, logs }
        }
        // Not a trap but still the guest's doing: a string out of bounds of its
        // memory, a bad resource handle, a WASI call refused. Its fault, not ours.
        None => {
            let mut reason = format!("{error:#}");
            if reason.len() > MAX_TRAP_REASON_BYTES {
                reason.truncate(reason.floor_char_boundary(MAX_TRAP_REASON_BYTES));
                reason.push_str(MESSAGE_TRUNCATED);
            }
            InvokeError::Trapped { reason, logs }
        }
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
