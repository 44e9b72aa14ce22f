//! The per-invocation store data: a WASI context with nothing of the host in it, a
//! memory limiter, the log collector and the optional scratch directory. A fresh
//! `Sandbox` is built for every call and dropped after it; nothing carries over.

use super::http::OutboundHooks;
use super::logs::{Level, LogCollector, Source};
use super::outbound::AllowEntry;
use super::scratch::ScratchDir;
use crate::runtime::bindings::trellis::function::log;
use anyhow::Result;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Where the scratch directory appears inside the guest.
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outbound: OutboundHooks,
    pub limiter: MemoryLimiter,
    pub logs: LogCollector,
    pub scratch: Option<ScratchDir>,
}

impl Sandbox {
    /// No environment, no arguments, no preopened directory but the optional scratch,
    /// no sockets, stdin closed; stdout and stderr go into the log collector.
    pub fn new(
        memory_limit_bytes: usize,
        scratch: Option<ScratchDir>,
        allowed_hosts: std::sync::Arc<[AllowEntry]>,
        deadline: tokio::time::Instant,
    ) -> Result<Self> {
        let logs = LogCollector::default();
        let mut wasi = WasiCtx::builder();
        wasi.stdout(logs.stream(Source::Stdout))
            .stderr(logs.stream(Source::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(scratch) = &scratch {
            wasi.preopened_dir(scratch.path(), SCRATCH_GUEST_PATH, FsPerms::ReadWrite)?;
        }
        Ok(Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: OutboundHooks::new(allowed_hosts, logs.clone(), deadline),
            limiter: MemoryLimiter::new(memory_limit_bytes),
            logs,
            scratch,
        })
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Outbound requests go through [`OutboundHooks`], which enforces `allowedHosts`.
impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl crate::runtime::bindings::trellis::function::types::Host for Sandbox {}

impl log::Host for Sandbox {
    fn write(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.logs.push(level, Source::Log, message);
    }
}

/// Caps linear memory at the function's `memoryLimitMb` and remembers whether the
/// guest hit the cap, so the trap that follows (Rust aborts when an allocation
/// fails) is reported as out-of-memory rather than as a generic trap.
pub struct MemoryLimiter {
    limit_bytes: usize,
    pub exceeded: bool,
}

/// Tables hold function references; no real function needs more, and an unbounded
/// table is another way to exhaust host memory.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimiter {
    fn new(limit_bytes: usize) -> Self {
        Self {
            limit_bytes,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
