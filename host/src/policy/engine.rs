//! The one shared Wasmtime engine and the preparing of policy versions.
//!
//! [`PolicyEngine`] owns the Cranelift/pooling configuration (with fuel metering, which steps
//! the guest code of a decision so that it yields and meets its deadline), the compile cache, and
//! the linker holding what a policy may import: the Switchyard `host` interface and WASI 0.2,
//! which is linked so that components built by ordinary toolchains load, but grants nothing (see
//! `sandbox`). [`PolicyEngine::prepare`] checks a component's bytes and world (`inspect`),
//! compiles it once or takes it from the cache, and pre-instantiates it against the linker. It is
//! blocking work (milliseconds for a Rust policy, seconds for a JavaScript or Python one): callers
//! run it off the request path. [`PolicyEngine::record_pool`] sets the pool's gauges when the
//! metrics are scraped.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

use super::cache::CompileCache;
use super::sandbox::{self, Sandbox};
use super::wit::{self, PolicyPre};
use super::{LoadError, Policy, PolicySettings, Pool, inspect};
use crate::config::hex;

/// How much guest code a decision runs between looks at the clock, in Wasmtime's fuel units
/// (about one per WebAssembly instruction): after each step the guest's future yields, and
/// [`slice::Sliced`](super::slice::Sliced) either runs it on at once or, once its time slice is
/// spent, passes the yield on to the other tasks of its worker thread and checks the decision's
/// deadline. A step is 0.07-0.26 ms of a tight loop on the machines the benchmarks run on. A
/// decision of the bundled Rust policies needs a small fraction of one and never stops; the
/// JavaScript and Python ones stop every few tenths of a millisecond. Steps of 1 million cost a
/// Python decision 2-3% against steps of 100 million; these halve the number of stops. Fuel
/// rather than a clock needs no ticker thread waking a thousand times a second.
pub const FUEL_STEP: u64 = 2_000_000;

/// Keep this much of a recycled linear memory mapped between instances (the notes measured
/// fresh-instance cost falling from 31 to 26 µs and throughput tripling on two cores).
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// The same for a recycled instance's tables (a policy's function tables are a few KiB).
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 << 10;

/// Sizes the pooling allocator: how many policy instances may live at once and how large each
/// may grow. A store's memory cap must not exceed `memory_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Simultaneous instances (one per running decision).
    pub instances: u32,
    /// Largest linear memory of one instance, in bytes.
    pub memory_bytes: usize,
}

/// The engine configuration: Cranelift with fuel metering, and the pooling allocator of
/// [`pooling_config`].
pub fn engine_config(pool: PoolSize) -> Config {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .wasm_backtrace_max_frames(None)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(pool)));
    config
}

/// A pooling allocator with `pool.instances` slots that each fit the sandbox's caps, keeping a
/// recycled instance's memory and tables mapped (reset in place) rather than unmapped.
pub fn pooling_config(pool: PoolSize) -> PoolingAllocationConfig {
    // A component built by an ordinary toolchain is several core modules (the program plus
    // adapter shims), each with its own instance and tables but one memory in all. Every slot
    // holds the sandbox's caps, so a policy within them always finds room, and the decision
    // semaphore (one permit per slot) keeps the pool from running out.
    //
    // Tables and fiber stacks have no affinity to a policy: Wasmtime hands them out least
    // recently used first, and by default takes never-used slots while fewer than 100 used ones
    // are free. So each decision's tables and stack were the coldest of some 100 slots, evicting
    // what the rest of the request had in the cache. With `max_unused_warm_slots(0)` it takes
    // used slots first, and fresh instances cycle through only as many slots as were ever in use
    // at once (memories still go back to their own policy's most recent). The price: a policy
    // with no free memory slot of its own takes another policy's least recently used one, and
    // maps its image there, where it would have mapped it into a never-used slot.
    let (core, tables, memories) = (
        sandbox::MAX_CORE_INSTANCES as u32,
        sandbox::MAX_TABLES as u32,
        sandbox::MAX_MEMORIES as u32,
    );
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(pool.instances)
        .total_core_instances(pool.instances * core)
        .max_core_instances_per_component(core)
        .total_memories(pool.instances * memories)
        .max_memories_per_component(memories)
        .total_tables(pool.instances * tables)
        .max_tables_per_component(tables)
        .total_stacks(pool.instances)
        .max_memory_size(pool.memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES.min(pool.memory_bytes))
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        .pagemap_scan(Enabled::Auto)
        .max_unused_warm_slots(0);
    pooling
}

/// A store for `sandbox` as every decision gets it: with the sandbox's memory limiter, and fuel
/// that never runs out (a decision is bounded by its deadline) but steps the guest's code so
/// that the clock is looked at.
pub fn store(engine: &Engine, sandbox: Sandbox) -> Store<Sandbox> {
    let mut store = Store::new(engine, sandbox);
    store.limiter(|s| s);
    store
        .set_fuel(u64::MAX)
        .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_STEP)))
        .expect("the engine meters fuel");
    store
}

/// What a policy may import: the Switchyard `host` interface and WASI 0.2 (which the sandbox
/// fills with nothing).
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<Sandbox>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wit::Policy::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The shared engine, linker and compile cache.
pub struct PolicyEngine {
    engine: Engine,
    linker: Linker<Sandbox>,
    /// One permit per pool slot, so a burst waits for a slot instead of failing to instantiate.
    pool: Pool,
    cache: Option<CompileCache>,
}

impl PolicyEngine {
    /// Build the engine. Compiled policies are cached in `cache_dir`; a folder that cannot be
    /// used is logged and compiling goes on without a cache.
    pub fn new(pool: PoolSize, cache_dir: Option<&Path>) -> Result<Self, LoadError> {
        let engine_error = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let engine = Engine::new(&engine_config(pool)).map_err(engine_error)?;
        let linker = linker(&engine).map_err(engine_error)?;
        let cache = cache_dir.and_then(|dir| match CompileCache::open(dir, &engine) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!("not caching compiled policies: {e}");
                None
            }
        });
        Ok(Self {
            engine,
            linker,
            pool: Pool::new(pool.instances as usize),
            cache,
        })
    }

    /// Set the pool's gauges: its slots, the slots held now, and the bytes unused slots keep
    /// resident (memories and tables, for the next instance). Called when metrics are scraped.
    pub fn record_pool(&self) {
        let (slots, in_use) = self.pool.occupancy();
        metrics::gauge!("switchyard_policy_pool_slots").set(slots as f64);
        metrics::gauge!("switchyard_policy_pool_slots_in_use").set(in_use as f64);
        if let Some(pool) = self.engine.pooling_allocator_metrics() {
            let resident = pool.unused_memory_bytes_resident() + pool.unused_table_bytes_resident();
            metrics::gauge!("switchyard_policy_pool_resident_bytes").set(resident as f64);
        }
    }

    /// Check, compile (or take from the cache) and link `bytes` as a version of policy `name`;
    /// `origin` says where the bytes came from. Blocking.
    pub fn prepare(
        &self,
        name: &str,
        bytes: Bytes,
        settings: PolicySettings,
        origin: String,
    ) -> Result<Policy, LoadError> {
        inspect::check_header(&bytes)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let started = Instant::now();
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, &sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, &bytes)
                    .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                if let Some(cache) = &self.cache {
                    cache.store(&sha256, &component);
                }
                component
            }
        };
        inspect::check_world(&component, &self.engine)?;
        let link = |e: wasmtime::Error| LoadError::Link(format!("{e:#}"));
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let pre =
            PolicyPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        tracing::info!(
            policy = name,
            sha256 = &sha256[..12],
            bytes = bytes.len(),
            compile_ms = started.elapsed().as_secs_f64() * 1000.0,
            from_cache,
            "policy component prepared"
        );
        Ok(Policy::new(
            name,
            sha256,
            bytes,
            origin,
            Arc::new(pre),
            settings,
            self.pool.clone(),
        ))
    }
}
