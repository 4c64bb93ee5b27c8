//! The shared wasmtime engine: pooling allocator, epoch interruption, per-store memory cap.

use super::ticker::Ticker;
use std::sync::Arc;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter};

pub use super::ticker::EPOCH_TICK;

/// Address space reserved per linear memory: the whole 32-bit index space, so that
/// Cranelift drops the explicit bounds check on every load and store (the guard pages
/// below catch what would overrun). Only the pages a plugin uses are ever committed;
/// `memory_bytes` still caps growth. With a 64 MiB reservation (explicit checks) extract +
/// price took 76.6k instructions, with 4 GiB 59.0k (`--bench plugin_instructions`).
pub const MEMORY_RESERVATION: u64 = 4 << 30;

/// Guard region after each memory: static offsets below it need no check either.
pub const MEMORY_GUARD: u64 = 32 << 20;

/// Core instance (and table) slots per component instance (see `PluginEngine::new`).
const CORE_PER_COMPONENT: u32 = 4;

/// Resource limits for plugin execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call into a plugin, in milliseconds.
    pub call_timeout_ms: u64,
    /// Instances that may exist at once across all plugins (pool slots). Each slot
    /// reserves (not commits) [`MEMORY_RESERVATION`] + [`MEMORY_GUARD`] of virtual
    /// address space: 2,000 slots are ~8 TiB of the 128 TiB a process has.
    pub max_instances: u32,
    /// Ready instances kept per plugin between calls.
    pub idle_per_plugin: usize,
    /// Calls on inputs larger than this run on tokio's blocking pool (`*_async` calls).
    pub offload_bytes: usize,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            memory_bytes: 64 << 20,
            call_timeout_ms: 100,
            max_instances: 2_000,
            idle_per_plugin: 32,
            offload_bytes: 256 << 10,
        }
    }
}

/// Per-store state: the memory limiter, which remembers that it refused growth.
pub struct StoreState {
    memory_cap: usize,
    /// Set when the plugin tried to grow past the cap (the call then traps).
    pub memory_cap_hit: bool,
}

impl StoreState {
    pub(crate) fn new(memory_cap: usize) -> Self {
        StoreState { memory_cap, memory_cap_hit: false }
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_cap_hit = true;
            wasmtime::bail!("memory cap of {} bytes exceeded (wanted {desired})", self.memory_cap);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The engine every plugin is compiled for, with its epoch ticker thread.
pub struct PluginEngine {
    engine: Engine,
    limits: RuntimeLimits,
    ticker: Arc<Ticker>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").field("limits", &self.limits).finish()
    }
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(limits: RuntimeLimits) -> wasmtime::Result<Arc<Self>> {
        let mut pool = PoolingAllocationConfig::default();
        // A plugin component instantiates several core modules (a Rust one for wasm32-wasip2:
        // its own module plus wit-component's shim and fix-up modules, each with a table), so
        // core instance and table slots are sized at CORE_PER_COMPONENT per component: the
        // component count, `max_instances`, is then the limit that binds.
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances.saturating_mul(CORE_PER_COMPONENT))
            // A Rust plugin component has one memory; a component with more uses more slots.
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances.saturating_mul(CORE_PER_COMPONENT))
            .max_memory_size(limits.memory_bytes)
            .max_memories_per_component(4)
            .max_tables_per_component(4);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_reservation(MEMORY_RESERVATION)
            .memory_guard_size(MEMORY_GUARD)
            .memory_reservation_for_growth(0)
            .wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| {
            let reserve_gib = (u64::from(limits.max_instances) * (MEMORY_RESERVATION + MEMORY_GUARD)) >> 30;
            e.context(format!(
                "reserving ~{reserve_gib} GiB of virtual address space for {} plugin instances \
                 (not memory: only used pages are committed; a `ulimit -v` limit prevents it)",
                limits.max_instances
            ))
        })?;
        let ticker = Ticker::start(engine.clone(), deadline_ticks(&limits))?;
        Ok(Arc::new(PluginEngine { engine, limits, ticker }))
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits plugins run under.
    pub fn limits(&self) -> RuntimeLimits {
        self.limits
    }

    /// Epoch ticks for one call's budget (rounded up, plus one for the tick in progress);
    /// asking for it is setting a deadline: the epoch ticker runs for at least that long.
    pub fn call_deadline_ticks(&self) -> u64 {
        self.ticker.deadline_set();
        deadline_ticks(&self.limits)
    }
}

fn deadline_ticks(limits: &RuntimeLimits) -> u64 {
    let tick = EPOCH_TICK.as_millis() as u64;
    limits.call_timeout_ms.div_ceil(tick) + 1
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_beyond_the_address_space_is_a_clear_error() {
        // 100,000 slots × ~4 GiB is more than the 128 TiB a process can map.
        let limits = RuntimeLimits { max_instances: 100_000, ..RuntimeLimits::default() };
        let e = PluginEngine::new(limits).expect_err("no process can reserve ~400 TiB");
        assert!(format!("{e:#}").contains("virtual address space for 100000 plugin instances"), "{e:#}");
    }

    /// The epoch ticker sleeps once no call can be running, and a deadline wakes it for at
    /// least the call's budget.
    #[test]
    fn the_ticker_parks_when_idle_and_a_deadline_wakes_it() {
        let limits = RuntimeLimits { call_timeout_ms: 20, max_instances: 2, ..RuntimeLimits::default() };
        let engine = PluginEngine::new(limits).unwrap();
        let wait_parked = || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !engine.ticker.is_parked() {
                assert!(std::time::Instant::now() < deadline, "the ticker never parked");
                std::thread::sleep(EPOCH_TICK);
            }
        };
        wait_parked();
        let before = engine.ticker.ticks();
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(engine.ticker.ticks(), before, "parked: no ticks");
        let budget = engine.call_deadline_ticks();
        std::thread::sleep(EPOCH_TICK * 2);
        assert!(!engine.ticker.is_parked(), "a deadline wakes it");
        wait_parked();
        assert!(engine.ticker.ticks() - before > budget, "it ticked past the deadline before parking");
    }
}
