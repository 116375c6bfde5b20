//! Policy instances: a store with its sandbox and pool slot, and the spares a version keeps ready.
//!
//! An [`Instance`] is one store of the engine's pool, fuelled so that its guest code yields in
//! slices, holding a pool slot while it lives. [`Spares`] instantiates up to `spare_instances`
//! of them ahead of need, in the task that drops a decision's spent instance (on another worker
//! thread, or while requests wait for their upstreams), so a decision that finds one ready costs
//! its call alone. A spare is as
//! fresh as an instance made on the request path: it has served no decision and serves exactly
//! one; its `wasi:random` is seeded from the request it serves, not from when it was made. A
//! policy that calls the host or WASI while it is instantiated would see a spare's empty request
//! instead of its own, so such a spare is never used. Spares take pool slots only while more than
//! half the pool is free, so they hold at most half of it; a version whose spare
//! fails to instantiate, or calls out while instantiated, makes no more. This module
//! touches the pool, the version's pre-linked component and nothing else.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;

use super::engine;
use super::sandbox::{HostData, Sandbox, SandboxLimits};
use super::wit::{self, PolicyPre};

/// The engine's pool of instance slots, shared by every policy: one permit a slot.
#[derive(Clone)]
pub struct Pool {
    pub slots: Arc<Semaphore>,
    /// Slots in all.
    pub size: usize,
}

impl Pool {
    pub fn new(size: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// A slot for a spare, only if at least half the pool (rounded up) stays free after it: so
    /// spares hold at most half the pool, and none are made in a pool of one slot.
    fn spare_slot(&self) -> Option<OwnedSemaphorePermit> {
        if self.slots.available_permits() <= self.size.div_ceil(2) {
            return None;
        }
        self.slots.clone().try_acquire_owned().ok()
    }
}

/// One policy instance and its store. Fields drop in order: the store before the pool slot, so
/// a slot is free only once the pooling allocator has its memory back.
pub struct Instance {
    pub store: Store<Sandbox>,
    /// Instantiated on first use, or ahead of it for a spare.
    pub policy: Option<wit::Policy>,
    /// Decisions it has served.
    pub uses: u32,
    _slot: OwnedSemaphorePermit,
}

impl Instance {
    /// A store for `sandbox`, holding the pool's `slot`; not instantiated yet.
    pub fn new(pre: &PolicyPre<Sandbox>, sandbox: Sandbox, slot: OwnedSemaphorePermit) -> Self {
        let mut store = Store::new(pre.engine(), sandbox);
        store.limiter(|s| s);
        // The fuel never runs out (a decision is bounded by its deadline); it slices the guest's
        // code so that it yields and the deadline is checked.
        store
            .set_fuel(u64::MAX)
            .and_then(|()| store.fuel_async_yield_interval(Some(engine::SLICE_FUEL)))
            .expect("the engine meters fuel");
        Self {
            store,
            policy: None,
            uses: 0,
            _slot: slot,
        }
    }
}

/// The instances a version keeps instantiated for its next decisions.
pub struct Spares {
    pre: Arc<PolicyPre<Sandbox>>,
    pool: Pool,
    name: Arc<str>,
    limits: SandboxLimits,
    seeded: bool,
    /// How many to keep ready; 0 makes none.
    target: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    ready: Vec<Instance>,
    /// Being instantiated now.
    making: usize,
    /// Set once a spare failed to instantiate or called out while instantiated: the version makes
    /// no more.
    off: bool,
}

impl Spares {
    /// Spares of the version `pre` of policy `name`, `target` at most, each with the sandbox a
    /// decision of this version gets.
    pub fn new(
        pre: Arc<PolicyPre<Sandbox>>,
        pool: Pool,
        name: Arc<str>,
        limits: SandboxLimits,
        seeded: bool,
        target: usize,
    ) -> Self {
        Self {
            pre,
            pool,
            name,
            limits,
            seeded,
            target,
            state: Mutex::default(),
        }
    }

    /// A ready spare, if there is one.
    pub fn take(&self) -> Option<Instance> {
        self.state.lock().expect("spares lock").ready.pop()
    }

    /// Instantiate one more spare, unless enough are ready or being made, the version stopped
    /// making them, or the pool is more than half taken.
    pub async fn refill(&self) {
        {
            let mut state = self.state.lock().expect("spares lock");
            if state.off || state.ready.len() + state.making >= self.target {
                return;
            }
            state.making += 1;
        }
        match self.pool.spare_slot() {
            Some(slot) => self.make(slot).await,
            None => self.state.lock().expect("spares lock").making -= 1,
        }
    }

    /// Instantiate a spare in `slot` within the decision deadline, and keep it ready.
    async fn make(&self, slot: OwnedSemaphorePermit) {
        let sandbox = Sandbox::new(
            HostData::none(),
            self.name.clone(),
            self.limits,
            self.seeded,
            false,
        );
        let mut spare = Instance::new(&self.pre, sandbox, slot);
        let made = tokio::time::timeout(
            self.limits.deadline,
            self.pre.instantiate_async(&mut spare.store),
        )
        .await;
        let mut state = self.state.lock().expect("spares lock");
        state.making -= 1;
        match made {
            Ok(Ok(policy)) if !spare.store.data().called_host => {
                spare.policy = Some(policy);
                state.ready.push(spare);
            }
            made => {
                state.off = true;
                let why = match made {
                    Ok(Ok(_)) => "it calls the host while it is instantiated",
                    Ok(Err(_)) => "it failed to instantiate",
                    Err(_) => "its instantiation ran past the deadline",
                };
                tracing::debug!(
                    policy = &*self.name,
                    "no spare instances for this version: {why}"
                );
            }
        }
    }
}
