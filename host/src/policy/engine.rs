//! The one shared Wasmtime engine and the loading of policy components.
//!
//! [`PolicyEngine`] owns the Cranelift/pooling configuration, the epoch ticker that bounds how
//! long guest code of a decision runs, and the linker holding what a policy may import: the Switchyard `host`
//! interface and WASI 0.2, which is linked so that components built by ordinary toolchains load,
//! but grants nothing (see `sandbox`). Loading reads the file, compiles it once (off the request
//! path), and pre-instantiates it against the linker, which is where an import the host does not
//! provide, or a component targeting another world, is refused with its name.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::sandbox::{Sandbox, SandboxLimits};
use super::wit::{self, PolicyPre};
use super::{LoadError, Policy};

/// How often the epoch advances; a decision's deadline is counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Keep this much of a recycled linear memory mapped between instances (the notes measured
/// fresh-instance cost falling from 31 to 26 µs and throughput tripling on two cores).
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Sizes the pooling allocator: how many policy instances may live at once and how large each
/// may grow. A store's memory cap must not exceed `memory_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Simultaneous instances (one per running decision).
    pub instances: u32,
    /// Largest linear memory of one instance, in bytes.
    pub memory_bytes: usize,
}

/// The shared engine, linker and epoch ticker.
pub struct PolicyEngine {
    engine: Engine,
    linker: Linker<Sandbox>,
    /// One permit per pool slot, so a burst waits for a slot instead of failing to instantiate.
    slots: Arc<Semaphore>,
}

impl PolicyEngine {
    /// Build the engine and start its epoch ticker (a thread that stops once the engine and every
    /// policy compiled with it are dropped).
    pub fn new(pool: PoolSize) -> Result<Self, LoadError> {
        let engine_error = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        // A component built by an ordinary toolchain is several core modules (the program plus
        // adapter shims), each with its own instance and tables but one memory in all; size the
        // pool so every slot fits such a component.
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(pool.instances)
            .total_core_instances(pool.instances * 8)
            .total_memories(pool.instances * 2)
            .total_tables(pool.instances * 4)
            .total_stacks(pool.instances)
            .max_memory_size(pool.memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES.min(pool.memory_bytes))
            .table_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).map_err(engine_error)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        wit::Policy::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |s| s)
            .map_err(engine_error)?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self {
            engine,
            linker,
            slots: Arc::new(Semaphore::new(pool.instances as usize)),
        })
    }

    /// Read, compile and link the policy component at `path`.
    pub fn load(
        &self,
        name: &str,
        path: &Path,
        limits: SandboxLimits,
    ) -> Result<Policy, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let component = Component::new(&self.engine, &bytes).map_err(|e| LoadError::Compile {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        let link = |e: wasmtime::Error| LoadError::Link {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let pre = PolicyPre::new(instance_pre).map_err(link)?;
        Ok(Policy::new(
            name.to_string(),
            &sha256,
            Arc::new(pre),
            limits,
            self.slots.clone(),
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Epoch ticks for `deadline`. One tick is added because the next tick may come at once: guest
/// code is then stopped between `deadline` and `deadline` + one tick after it started.
pub fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros();
    u64::try_from(deadline.as_micros().div_ceil(tick)).unwrap_or(u64::MAX - 1) + 1
}
