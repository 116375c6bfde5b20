//! Policy instances: a store with its sandbox and pool slot, and the spares a version keeps ready.
//!
//! An [`Instance`] is one store of the engine's [`Pool`], fuelled so that its guest code yields
//! in slices, holding a pool slot while it lives. [`Spares`] instantiates up to
//! `spare_instances` of them ahead of need, in the task that drops a decision's spent instance
//! (on another worker thread, or while requests wait for their upstreams), so a decision that
//! finds one ready costs its call alone. A spare is as fresh as an instance made on the request
//! path: it has served no decision and serves exactly one; its `wasi:random` is seeded from the
//! request it serves, and the time its instantiation took is taken off that decision's deadline.
//! A policy that calls the host or WASI while it is instantiated would see a spare's empty
//! request instead of its own, so such a spare is thrown away and its version makes no more.
//! Spares take pool slots only while more than half the pool would stay free, and a decision that
//! finds no free slot takes one back from an idle spare (of any version) before it waits, so
//! spares never make a decision wait. A spent instance is dropped in a task of its own, but at
//! most [`MAX_DEFERRED_DROPS`] wait so at a time. This module touches the pool, the version's
//! pre-linked component and nothing else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;

use super::engine;
use super::sandbox::{HostData, Sandbox, SandboxLimits};
use super::wit::{self, PolicyPre};

/// Most spent instances waiting, all policies together, for the tasks that drop them; past
/// this a spent instance is dropped where its decision ended. Under load those tasks queue
/// behind every request ready to run (10-19 pool slots were in use in the gateway benchmark's
/// closed loop), each holding a pool slot, and every slot in use widens the set of slots, with
/// their tables and fiber stacks, that fresh instances cycle through and find cold in the cache.
/// At 2, 1-2 are in use; a decision that drops its instance at once spends its drop's 5 µs
/// then, which only happens while the worker has more work queued than it can run.
pub const MAX_DEFERRED_DROPS: usize = 2;

/// The engine's pool of instance slots, shared by every policy: one permit a slot, the spares
/// that hold some of them, and the spent instances waiting to be dropped.
#[derive(Clone)]
pub struct Pool {
    pub slots: Arc<Semaphore>,
    /// Slots in all.
    size: usize,
    /// Every version's spares; also serialises the taking of slots for spares.
    spares: Arc<Mutex<Vec<Weak<Spares>>>>,
    /// Spent instances waiting for their drop's task.
    deferred_drops: Arc<AtomicUsize>,
}

/// A spent instance's place among those waiting to be dropped, given back when it drops.
pub struct DeferredDrop(Arc<AtomicUsize>);

impl Drop for DeferredDrop {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    pub fn new(size: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size,
            spares: Arc::default(),
            deferred_drops: Arc::default(),
        }
    }

    /// A place for a spent instance among those waiting to be dropped in a task; `None` when
    /// [`MAX_DEFERRED_DROPS`] already wait, and it is to be dropped at once.
    pub fn defer_drop(&self) -> Option<DeferredDrop> {
        let waiting = self.deferred_drops.fetch_add(1, Ordering::Relaxed);
        let place = DeferredDrop(self.deferred_drops.clone());
        (waiting < MAX_DEFERRED_DROPS).then_some(place)
    }

    /// Slots in all, and slots held now (by running decisions, spares, kept reused instances and
    /// spent instances not yet given back).
    pub fn occupancy(&self) -> (usize, usize) {
        (self.size, self.size - self.slots.available_permits())
    }

    /// Let decisions that find the pool full take slots back from `spares`.
    pub fn register(&self, spares: &Arc<Spares>) {
        let mut all = self.spares.lock().expect("pool lock");
        all.retain(|spares| spares.strong_count() > 0);
        all.push(Arc::downgrade(spares));
    }

    /// A slot for a spare, only if at least half the pool (rounded up) stays free after it: so
    /// spares hold at most half the pool, and none are made in a pool of one slot.
    fn spare_slot(&self) -> Option<OwnedSemaphorePermit> {
        let _one_at_a_time = self.spares.lock().expect("pool lock");
        if self.slots.available_permits() <= self.size.div_ceil(2) {
            return None;
        }
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Throw away one idle spare, of any version, giving its slot back; false if none is idle.
    pub fn evict_spare(&self) -> bool {
        let spare = {
            let all = self.spares.lock().expect("pool lock");
            all.iter()
                .filter_map(Weak::upgrade)
                .find_map(|spares| spares.take())
        };
        spare.is_some()
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
    /// How long a spare's instantiation took (zero for other instances, which are instantiated
    /// within their decision's deadline).
    pub instantiated_in: Duration,
    _slot: OwnedSemaphorePermit,
}

impl Instance {
    /// A store for `sandbox`, holding the pool's `slot`; not instantiated yet.
    pub fn new(pre: &PolicyPre<Sandbox>, sandbox: Sandbox, slot: OwnedSemaphorePermit) -> Self {
        Self {
            store: engine::store(pre.engine(), sandbox),
            policy: None,
            uses: 0,
            instantiated_in: Duration::ZERO,
            _slot: slot,
        }
    }
}

/// The instances a version keeps instantiated for its next decisions, and the maker of every
/// instance of the version.
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
    /// Set once a spare called the host or WASI while it was instantiated: the version makes no
    /// more.
    off: bool,
}

impl Spares {
    /// Spares of the version `pre` of policy `name`, `target` at most, each with the sandbox a
    /// decision of this version gets; registered with `pool`.
    pub fn new(
        pre: Arc<PolicyPre<Sandbox>>,
        pool: Pool,
        name: Arc<str>,
        limits: SandboxLimits,
        seeded: bool,
        target: usize,
    ) -> Arc<Self> {
        let spares = Arc::new(Self {
            pre,
            pool: pool.clone(),
            name,
            limits,
            seeded,
            target,
            state: Mutex::default(),
        });
        if target > 0 {
            pool.register(&spares);
        }
        spares
    }

    /// A ready spare, if there is one.
    pub fn take(&self) -> Option<Instance> {
        if self.target == 0 {
            return None;
        }
        self.state.lock().expect("spares lock").ready.pop()
    }

    /// Instantiate one more spare, unless enough are ready or being made, the version stopped
    /// making them, or the pool is more than half taken.
    pub async fn refill(&self) {
        if self.target == 0 {
            return;
        }
        {
            let mut state = self.state.lock().expect("spares lock");
            if state.off || state.ready.len() + state.making >= self.target {
                return;
            }
            state.making += 1;
        }
        let making = Making(self);
        if let Some(slot) = self.pool.spare_slot() {
            making.finish(self.make(slot).await);
        }
    }

    /// A store in `slot` with the sandbox a decision of this version gets, for the request
    /// `host` describes (traced: keeping the policy's log lines rather than logging them); not
    /// instantiated yet. Spares and instances made on the request path alike come from here.
    pub fn instance(&self, host: HostData, traced: bool, slot: OwnedSemaphorePermit) -> Instance {
        let sandbox = Sandbox::new(host, self.name.clone(), self.limits, self.seeded, traced);
        Instance::new(&self.pre, sandbox, slot)
    }

    /// Instantiate a spare in `slot` within the decision deadline: `None` if that failed, or if
    /// the policy called out while instantiated (which turns spares off for this version).
    async fn make(&self, slot: OwnedSemaphorePermit) -> Option<Instance> {
        // Traced, so that anything it logs before it serves a request is kept, not logged.
        let mut spare = self.instance(HostData::none(), true, slot);
        let started = Instant::now();
        let instantiate = self.pre.instantiate_async(&mut spare.store);
        let policy = tokio::time::timeout(self.limits.deadline, instantiate)
            .await
            .ok()?
            .ok()?;
        if spare.store.data().called_host {
            self.state.lock().expect("spares lock").off = true;
            tracing::info!(
                policy = &*self.name,
                "no spare instances for this version: it calls the host while it is instantiated"
            );
            return None;
        }
        spare.policy = Some(policy);
        spare.instantiated_in = started.elapsed();
        Some(spare)
    }
}

/// A spare being made: counted in `making` until it is ready or given up, even if the task making
/// it is cancelled.
struct Making<'a>(&'a Spares);

impl Making<'_> {
    /// Keep the spare, if one was made.
    fn finish(self, spare: Option<Instance>) {
        self.0
            .state
            .lock()
            .expect("spares lock")
            .ready
            .extend(spare);
    }
}

impl Drop for Making<'_> {
    fn drop(&mut self) {
        self.0.state.lock().expect("spares lock").making -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_instances_wait_to_be_dropped_two_at_a_time() {
        let pool = Pool::new(4);
        let first = pool.defer_drop().expect("a first place");
        let second = pool.defer_drop().expect("a second place");
        assert!(pool.defer_drop().is_none());
        drop(first);
        let third = pool.defer_drop().expect("the first place given back");
        assert!(pool.defer_drop().is_none());
        drop((second, third));
        assert!(pool.defer_drop().is_some());
    }
}
