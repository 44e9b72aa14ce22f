//! The one place that narrows wasmtime to what Trellis uses. Every knob that bounds
//! memory, time or concurrency is set here, with the reason for its value.

use anyhow::{Context, Result};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A running guest checks its deadline at every tick,
/// so this is the resolution of `timeoutMs` and the longest a busy guest can hold a
/// tokio worker before yielding to other requests.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The largest linear memory any function may configure (`memoryLimitMb` max 4096).
/// Pooling reserves this much *virtual* address space per slot, never physical memory.
pub const MAX_MEMORY_BYTES: usize = 4096 << 20;

/// Which allocator the engine ended up with, for the start-up log and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    Pooling,
    OnDemand,
}

/// Builds the engine. Pooling is tried first: it pre-reserves address space for
/// `slots` concurrent instances so instantiation is a few page-table operations.
/// Where the address space is short (a `ulimit -v`, a small container), reserving it
/// fails, and the engine falls back to on-demand allocation with a log line.
pub fn build(slots: u32) -> Result<(Engine, Allocator)> {
    match Engine::new(&config(Some(pooling(slots)))) {
        Ok(engine) => Ok((engine, Allocator::Pooling)),
        Err(error) => {
            tracing::warn!(
                error = %error,
                slots,
                "pooling allocator unavailable (virtual memory short?); using on-demand allocation"
            );
            let engine = Engine::new(&config(None))
                .map_err(anyhow::Error::from)
                .context("creating the wasmtime engine")?;
            Ok((engine, Allocator::OnDemand))
        }
    }
}

fn config(pooling: Option<PoolingAllocationConfig>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines are enforced by epoch interruption: a counter check at loop headers
    // and function entries, far cheaper than fuel metering.
    config.epoch_interruption(true);
    // Guest memories start from a copy-on-write image of their data segments, so
    // instantiation does not copy the heap.
    config.memory_init_cow(true);
    // 512 KiB of wasm stack is wasmtime's default and plenty for real functions; an
    // unbounded recursion hits it in milliseconds and traps with a stack overflow.
    config.max_wasm_stack(512 << 10);
    // The fiber stack must hold the wasm stack plus host frames (WASI calls).
    config.async_stack_size(2 << 20);
    if let Some(pooling) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}

/// Per-component maxima. A Rust `wasm32-wasip2` component instantiates its main
/// module plus a few adapter and shim modules, with one memory and a handful of
/// tables; these leave room for components from other toolchains. A component over
/// them is refused at upload.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;

fn pooling(slots: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    // Every total is the per-component maximum times the concurrent calls, so the
    // pool can never run dry while a concurrency permit is held.
    pool.total_component_instances(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        // One async fiber stack per concurrent call.
        .total_stacks(slots)
        .max_memory_size(MAX_MEMORY_BYTES)
        // Recycled memories are reset by scanning for the pages the last call dirtied
        // (Linux PAGEMAP_SCAN, 6.7+) and restoring just those with memset, up to
        // 4 MiB; the pages stay mapped. Without this every reset is an madvise whose
        // TLB shootdown interrupts both cores, which profiling showed as the largest
        // cost of a small invocation. Older kernels fall back to madvise.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(64 << 10);
    pool
}

/// Advances the epoch every [`EPOCH_TICK`] until the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("trellis-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("spawning the epoch thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_address_space_for_the_pool_it_falls_back_to_on_demand() {
        // 2^20 slots of 4 GiB each is 4 PiB, more than any 64-bit address space.
        let (_engine, allocator) = build(1 << 20).expect("an engine either way");
        assert_eq!(allocator, Allocator::OnDemand);
    }

    #[test]
    fn a_modest_pool_fits() {
        let (_engine, allocator) = build(8).expect("an engine");
        assert_eq!(allocator, Allocator::Pooling);
    }
}
