//! Routing policies: WebAssembly components that decide which model serves a request.
//!
//! Lifecycle of a version: [`PolicyEngine::prepare`] checks the bytes (`inspect`), compiles them
//! once or takes them from the on-disk cache (`cache`), and pre-links them into a [`Policy`];
//! `canary` runs sample decisions (and the policy's own cases, `cases`) before the version may
//! go live; a [`PolicySlot`] (`registry`) holds the live version of one policy name, swaps it
//! atomically, keeps the previous one and rolls back by itself when a new version fails too often
//! (`stats`). For every request [`Policy::decide`] creates a fresh store (a [`sandbox::Sandbox`])
//! from the pre-linked instance (or takes a spare one instantiated ahead of it, `instance`; or, for
//! a policy configured with `reuse_instances`, a kept one), with a CPU deadline and a memory cap,
//! calls `decide`, drops the store, and validates the result ([`decision::validate`]). Whatever the policy does, the caller
//! gets either a [`Verdict`] or a [`DecisionFailure`] that says what kind of fault it was; the
//! proxy decides what a failure means. This module reads the request view and catalog it is given
//! and touches nothing outside the sandbox but the compile cache's folder.

mod cache;
pub mod canary;
pub mod candidate;
pub mod cases;
pub mod decision;
pub mod engine;
pub mod input;
pub mod inspect;
mod instance;
pub mod json;
mod output;
pub mod registry;
pub mod sandbox;
mod slice;
pub mod stats;
mod untrusted;
pub mod wit;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::Semaphore;

pub use decision::{PlannedTarget, Verdict};
pub use engine::{PolicyEngine, PoolSize};
pub use instance::Pool;
pub use registry::{PolicySlot, SlotEvent};
pub use sandbox::{MessageSource, PolicyLog, SandboxLimits};
pub use stats::{RollbackRule, Stats};
pub use wit::{Model, Request};

use crate::config::{PolicyConfig, RandomSource};
use crate::label::Label;
use instance::{Instance, Spares};
use sandbox::{HostData, Sandbox};
use wit::PolicyPre;

/// Why a policy version cannot go live. Never retryable as it is: the component, its cases or the
/// engine must change.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("it is not WebAssembly: {0}")]
    NotWasm(String),
    #[error(
        "it is a core WebAssembly module, not a component: build it with `--target wasm32-wasip2` \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("it is not a valid component: {0}")]
    Compile(String),
    #[error("it imports {}, which this host does not provide: {hint}", quoted(.imports))]
    UnsupportedImport { imports: Vec<String>, hint: String },
    #[error("it targets another world: {0}")]
    WrongWorld(String),
    #[error("it cannot be linked: {0}")]
    Link(String),
    #[error("it failed the canary: {0}")]
    Canary(String),
    #[error("policy engine: {0}")]
    Engine(String),
    #[error("cannot fetch it: {0}")]
    Fetch(String),
}

/// `names` in backticks, separated by commas.
fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

impl LoadError {
    /// A stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::NotWasm(_) => "not-wasm",
            Self::CoreModule => "core-module",
            Self::Compile(_) => "compile",
            Self::UnsupportedImport { .. } => "import",
            Self::WrongWorld(_) => "world",
            Self::Link(_) => "link",
            Self::Canary(_) => "canary",
            Self::Engine(_) => "engine",
            Self::Fetch(_) => "fetch",
        }
    }
}

/// Why a decision failed. Every kind but `Busy` is the policy's fault; the request itself may
/// still be served by the team's failure behaviour (e.g. the static fallback route).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionFailure {
    #[error("the policy ran past its deadline")]
    Timeout,
    #[error("the policy hit its memory cap")]
    Memory,
    #[error("the policy trapped: {0}")]
    Trap(String),
    #[error("the policy returned an error: {0}")]
    Error(String),
    #[error("the policy returned an invalid decision: {0}")]
    InvalidDecision(String),
    /// No slot was free within the deadline, or one was found only after more than half of it,
    /// too late for the policy to finish.
    #[error("no policy slot was free in time")]
    Busy,
}

impl DecisionFailure {
    /// A stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::Trap(_) => "trap",
            Self::Error(_) => "error",
            Self::InvalidDecision(_) => "invalid-decision",
            Self::Busy => "busy",
        }
    }
}

/// How one policy's decisions run: the sandbox limits and what the request view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    pub limits: SandboxLimits,
    /// Request headers the policy may see.
    pub headers: Vec<String>,
    /// Most decisions of this version running at once.
    pub max_concurrency: u32,
    pub rollback: RollbackRule,
    /// Where `wasi:random` comes from.
    pub random: RandomSource,
    /// Decisions one instance serves before it is replaced; 0 for a fresh one every time.
    pub reuse_instances: u32,
    /// Fresh instances kept instantiated ahead of the next decisions (none while instances are
    /// reused).
    pub spare_instances: u32,
}

impl PolicySettings {
    pub fn from_config(config: &PolicyConfig) -> Self {
        Self {
            limits: SandboxLimits {
                memory_bytes: config.memory_mib as usize * 1024 * 1024,
                deadline: Duration::from_millis(config.deadline_ms),
                max_message_chars: config.max_message_chars,
            },
            headers: config.headers.clone(),
            max_concurrency: config.max_concurrency,
            rollback: RollbackRule {
                window: config.rollback_window,
                failure_share: config.rollback_failure_share,
            },
            random: config.random,
            reuse_instances: config.reuse_instances,
            spare_instances: config.spare_instances,
        }
    }
}

/// One loaded, pre-linked version of a policy, with its settings and counters.
pub struct Policy {
    name: Arc<str>,
    version: Label,
    sha256: String,
    /// The component as loaded, kept so that a rollback can write it back to the policy's file.
    component: Bytes,
    /// Where the bytes came from: a file path or an upload.
    origin: String,
    /// The OCI manifest digest the component was pulled as, when it came from a registry.
    digest: Option<String>,
    loaded_at: SystemTime,
    pre: Arc<PolicyPre<Sandbox>>,
    settings: PolicySettings,
    /// This version's own bound on concurrent decisions.
    concurrency: Semaphore,
    /// Instances kept for reuse (`reuse_instances`), idle.
    warm: std::sync::Mutex<Vec<Instance>>,
    /// Fresh instances made ahead of need (`spare_instances`).
    spares: Arc<Spares>,
    /// The engine's pool, shared by every policy.
    pool: Pool,
    pub stats: Stats,
}

/// Live figures the host keeps that a policy may ask for during a decision.
pub trait LiveView: Send + Sync {
    /// The estimated time to the first token of a stream from `model`, in milliseconds, when
    /// `team` may use that model (`host.first-token-ms`).
    fn first_token_ms(&self, team: &str, model: &str) -> Option<f32>;
}

/// Time-to-first-token figures fixed in advance (by a test case or a decision record), for any
/// team.
pub struct FixedLive(pub std::collections::BTreeMap<String, f32>);

impl LiveView for FixedLive {
    fn first_token_ms(&self, _team: &str, model: &str) -> Option<f32> {
        self.0.get(model).copied()
    }
}

/// Everything one decision reads.
pub struct DecisionInput<'a> {
    /// The request's message text, for `host.message-text`.
    pub request: Arc<dyn MessageSource>,
    pub request_id: Arc<str>,
    pub view: &'a Request,
    pub catalog: &'a [Model],
    /// The request's team, for `host.first-token-ms`.
    pub team: Option<Arc<str>>,
    /// The team's budget standing, for `host.team-budget`; `None` when it has no budget.
    pub budget: Option<wit::Budget>,
    /// For `host.first-token-ms`; `None` answers `none` for every model.
    pub live: Option<Arc<dyn LiveView>>,
    /// For `host.request-operation`.
    pub operation: wit::Operation,
}

impl Policy {
    fn new(
        name: &str,
        sha256: String,
        component: Bytes,
        origin: String,
        pre: Arc<PolicyPre<Sandbox>>,
        settings: PolicySettings,
        pool: Pool,
    ) -> Self {
        let version = Label::new(&format!("{name}@{}", &sha256[..12]));
        let name: Arc<str> = name.into();
        let spares = match settings.reuse_instances {
            0 => settings.spare_instances as usize,
            _ => 0,
        };
        let spares = Spares::new(
            pre.clone(),
            pool.clone(),
            name.clone(),
            settings.limits,
            settings.random == RandomSource::Seeded,
            spares,
        );
        Self {
            stats: Stats::new(&name, &version),
            concurrency: Semaphore::new(settings.max_concurrency as usize),
            warm: std::sync::Mutex::new(Vec::new()),
            spares,
            name,
            version,
            sha256,
            component,
            origin,
            digest: None,
            loaded_at: SystemTime::now(),
            pre,
            settings,
            pool,
        }
    }

    /// The same compiled component under other settings, with fresh counters.
    pub fn with_settings(&self, settings: PolicySettings) -> Self {
        let mut same = Self::new(
            &self.name,
            self.sha256.clone(),
            self.component.clone(),
            self.origin.clone(),
            self.pre.clone(),
            settings,
            self.pool.clone(),
        );
        same.digest = self.digest.clone();
        same
    }

    /// This version, known to be the OCI artifact `digest` (`sha256:...`).
    pub fn with_digest(mut self, digest: Option<String>) -> Self {
        self.digest = digest;
        self
    }

    /// The OCI manifest digest this version was pulled as, if it came from a registry.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// `name@` and the first 12 hex digits of the component's sha256: what headers and logs show.
    pub fn version(&self) -> &Label {
        &self.version
    }

    /// The component's full SHA-256, in hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The component's bytes, as loaded.
    pub fn component_bytes(&self) -> &Bytes {
        &self.component
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// The compiled component, for inspecting its imports and exports.
    pub fn component(&self) -> &wasmtime::component::Component {
        self.pre.instance_pre().component()
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        self.pre.engine()
    }

    /// Run the policy for one request in a fresh sandbox and validate its decision.
    ///
    /// One wall-clock deadline bounds the whole decision, waiting for a pool slot included. Guest
    /// code runs in time slices of [`slice::SLICE`]: after each it yields to the other tasks of
    /// its worker thread (so a looping policy cannot hold a thread that other requests need). The
    /// decision's timer stops it at the first fuel step past the deadline, or while it waits
    /// inside a host call (a WASI poll, say).
    pub async fn decide(&self, input: DecisionInput<'_>) -> Result<Verdict, DecisionFailure> {
        self.run(input, false, true).await.0
    }

    /// [`Policy::decide`], but only with a sandbox free now: `Busy` rather than wait for one,
    /// for work that must never hold up the requests waiting for a slot (a shadow decision).
    pub async fn decide_if_free(
        &self,
        input: DecisionInput<'_>,
    ) -> Result<Verdict, DecisionFailure> {
        self.run(input, false, false).await.0
    }

    /// [`Policy::decide`], also saying how long the decision took, the largest memory the policy
    /// grew to and the lines it logged (kept here rather than logged).
    pub async fn decide_traced(
        &self,
        input: DecisionInput<'_>,
    ) -> (Result<Verdict, DecisionFailure>, Trace) {
        self.run(input, true, true).await
    }

    /// Decide; `wait`: wait for a free slot until the deadline, else take one only if free.
    async fn run(
        &self,
        input: DecisionInput<'_>,
        traced: bool,
        wait: bool,
    ) -> (Result<Verdict, DecisionFailure>, Trace) {
        let started = std::time::Instant::now();
        let mut trace = Trace {
            elapsed: Duration::ZERO,
            memory_peak: 0,
            logs: Vec::new(),
        };
        let stop_at = tokio::time::Instant::now() + self.settings.limits.deadline;
        let own = match wait {
            true => tokio::time::timeout_at(stop_at, self.concurrency.acquire())
                .await
                .ok()
                .map(|permit| permit.expect("never closed")),
            false => self.concurrency.try_acquire().ok(),
        };
        let Some(_own) = own else {
            trace.elapsed = started.elapsed();
            return (Err(DecisionFailure::Busy), trace);
        };
        let host = HostData {
            request: input.request,
            request_id: input.request_id,
            team: input.team,
            budget: input.budget,
            live: input.live,
            operation: input.operation,
        };
        let reuse = self.settings.reuse_instances > 0 && !traced;
        let made = self.instance(host, reuse, traced, wait, stop_at).await;
        let Some((mut instance, origin)) = made else {
            trace.elapsed = started.elapsed();
            return (Err(DecisionFailure::Busy), trace);
        };
        self.stats.instance(origin);
        // A spare's instantiation counts against the deadline, as it would on the request path.
        let stop_at = stop_at
            .checked_sub(instance.instantiated_in)
            .unwrap_or(stop_at);
        let waited = started.elapsed();
        let outcome = self
            .call(&mut instance, stop_at, input.view, input.catalog)
            .await;
        // Out of time after waiting for a slot for most of it: the policy never had a fair run,
        // so this is the pool's congestion, not the policy's timeout (and not held against it).
        let outcome = match outcome {
            Err(DecisionFailure::Timeout) if waited > self.settings.limits.deadline / 2 => {
                Err(DecisionFailure::Busy)
            }
            outcome => outcome,
        };
        let sandbox = instance.store.data_mut();
        sandbox.log_output();
        trace.memory_peak = sandbox.memory_peak;
        if traced {
            trace.logs = sandbox.take_logs();
        }
        instance.uses += 1;
        let reusable = reuse && outcome.is_ok() && instance.uses < self.settings.reuse_instances;
        self.put_back(instance, reusable, !traced);
        let outcome = outcome.and_then(|decision| {
            decision::validate(decision, input.catalog).map_err(DecisionFailure::InvalidDecision)
        });
        trace.elapsed = started.elapsed();
        (outcome, trace)
    }

    /// Keep `instance` for the next decision if it is `reusable` and there is room, else drop it
    /// in a task of its own, which then makes the next spare if `refill` (and spares are kept).
    /// That task runs once the request's task next waits (for the upstream, typically), or on
    /// another worker thread: giving an instance's memory and tables back to the pool, and
    /// instantiating the next, take microseconds the request need not wait for. When
    /// [`instance::MAX_DEFERRED_DROPS`] such tasks wait already, it is dropped here, and the
    /// next spare is left to the tasks waiting (or to the next decision's).
    fn put_back(&self, instance: Instance, reusable: bool, refill: bool) {
        if reusable {
            let mut warm = self.warm.lock().expect("warm lock");
            if warm.len() < MAX_WARM {
                warm.push(instance);
                return;
            }
        }
        let Some(place) = self.pool.defer_drop() else {
            drop(instance);
            return;
        };
        let spares = refill.then(|| self.spares.clone());
        tokio::spawn(async move {
            drop(instance);
            drop(place);
            if let Some(spares) = spares {
                spares.refill().await;
            }
        });
    }

    /// The instance a decision for `host` runs on: a kept one (reused, or a spare), else a
    /// fresh one ([`Policy::fresh`]); `None` when no pool slot came free in time.
    async fn instance(
        &self,
        host: HostData,
        reuse: bool,
        traced: bool,
        wait: bool,
        stop_at: tokio::time::Instant,
    ) -> Option<(Instance, Origin)> {
        let kept = if reuse {
            let kept = self.warm.lock().expect("warm lock").pop();
            kept.map(|kept| (kept, Origin::Reused))
        } else if !traced {
            self.spares.take().map(|kept| (kept, Origin::Spare))
        } else {
            None
        };
        match kept {
            Some((mut kept, origin)) => {
                let sandbox = kept.store.data_mut();
                match origin {
                    Origin::Reused => sandbox.renew(host),
                    _ => sandbox.serve(host),
                }
                Some((kept, origin))
            }
            None => {
                let fresh = self.fresh(host, traced, wait, stop_at).await?;
                Some((fresh, Origin::Fresh))
            }
        }
    }

    /// A new sandbox for the request `host` describes, in a pool slot: if none is free and
    /// `wait`, one taken back from an idle spare, or else waited for until `stop_at`; if not
    /// `wait`, only one free now. `None` when there is none.
    async fn fresh(
        &self,
        host: HostData,
        traced: bool,
        wait: bool,
        stop_at: tokio::time::Instant,
    ) -> Option<Instance> {
        let slots = self.pool.slots.clone();
        let slot = match (slots.clone().try_acquire_owned(), wait) {
            (Ok(slot), _) => slot,
            (Err(_), false) => return None,
            (Err(_), true) => {
                self.pool.evict_spare();
                tokio::time::timeout_at(stop_at, slots.acquire_owned())
                    .await
                    .ok()?
                    .expect("never closed")
            }
        };
        Some(self.spares.instance(host, traced, slot))
    }

    /// Instantiate (unless reused) and call `decide`, stopped at `stop_at`.
    async fn call(
        &self,
        instance: &mut Instance,
        stop_at: tokio::time::Instant,
        view: &Request,
        catalog: &[Model],
    ) -> Result<wit::Decision, DecisionFailure> {
        let Instance { store, policy, .. } = instance;
        let fuel = hostcall_fuel(catalog);
        store.set_hostcall_fuel(fuel);
        let run = async {
            let policy = match policy {
                Some(policy) => policy,
                None => policy.insert(self.pre.instantiate_async(&mut *store).await?),
            };
            policy.call_decide(&mut *store, view, catalog).await
        };
        // Boxed: Wasmtime's instantiation and call are futures of kilobytes, and every future
        // that awaits this one, up to the request's, would otherwise be that large and be copied
        // whole at each level.
        let run = Box::pin(run);
        let outcome =
            tokio::time::timeout_at(stop_at, slice::Sliced::new(run, slice::SLICE, stop_at)).await;
        match outcome {
            Err(_) => Err(DecisionFailure::Timeout),
            Ok(Ok(Ok(decision))) => Ok(decision),
            Ok(Ok(Err(message))) => Err(DecisionFailure::Error(untrusted::text(
                &message,
                decision::MAX_ERROR_BYTES,
            ))),
            Ok(Err(error)) => Err(classify(&error, store.data(), fuel)),
        }
    }
}

/// Most reused instances a policy version keeps between decisions; each holds a pool slot.
const MAX_WARM: usize = 8;

/// Where a decision's instance came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Instantiated for it.
    Fresh,
    /// Instantiated ahead of it, for it alone (`spare_instances`).
    Spare,
    /// Kept from earlier decisions (`reuse_instances`).
    Reused,
}

/// How one traced decision went, beside its outcome.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Wall-clock time of the whole decision, waiting for a slot included.
    pub elapsed: Duration,
    /// The largest linear memory the policy grew to, in bytes.
    pub memory_peak: usize,
    /// What the policy logged, and wrote to stdout and stderr.
    pub logs: Vec<PolicyLog>,
}

/// Most bytes the host copies out of a policy at once: its whole decision (sized from the
/// contract's limits and the catalog's longest model id), or the arguments of one host call.
///
/// Wasmtime charges every string and list it lifts out of a guest against the store's "hostcall
/// fuel" before copying it, and fails the lift once the fuel is spent; the fuel starts afresh for
/// each host call and for the result of the export. So a decision whose targets alias one huge
/// block of the guest's memory, or a log line of megabytes, fails at once, without the copy.
fn hostcall_fuel(catalog: &[Model]) -> usize {
    decision::max_bytes(catalog).max(sandbox::MAX_HOST_CALL_BYTES)
}

/// Wasmtime's message when a lift ran out of hostcall fuel (its error type is private). The
/// sandbox tests catch a change of wording: an aliasing policy must fail as an invalid decision.
const FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// Name the fault behind a failed call; `fuel` is the hostcall fuel the call had.
fn classify(error: &wasmtime::Error, sandbox: &Sandbox, fuel: usize) -> DecisionFailure {
    if sandbox.memory_denied {
        return DecisionFailure::Memory;
    }
    if error
        .chain()
        .any(|cause| cause.to_string().contains(FUEL_EXHAUSTED))
    {
        return DecisionFailure::InvalidDecision(format!(
            "it handed the host more than {fuel} bytes at once (a decision holds at most {} \
             targets naming catalog models and a reason of at most {} bytes; one host call \
             takes at most {} bytes)",
            decision::MAX_TARGETS,
            decision::MAX_REASON_BYTES,
            sandbox::MAX_HOST_CALL_BYTES
        ));
    }
    let stderr = sandbox.stderr();
    let what = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{:#}", error.root_cause()),
    };
    let detail = if stderr.is_empty() {
        what
    } else {
        format!("{what}; stderr: {stderr}")
    };
    DecisionFailure::Trap(untrusted::text(&detail, decision::MAX_ERROR_BYTES))
}
