//! Routing policies: WebAssembly components that decide which model serves a request.
//!
//! Lifecycle: [`PolicyEngine::load`] compiles a component once and pre-links it ([`Policy`]);
//! for every request [`Policy::decide`] creates a fresh store (a [`sandbox::Sandbox`]) from the
//! pre-linked instance, with a CPU deadline and a memory cap, calls `decide`, drops the store, and
//! validates the result ([`decision::validate`]). Whatever the policy does, the caller gets either
//! a [`Verdict`] or a [`DecisionFailure`] that says what kind of fault it was; the proxy decides
//! what a failure means. This module reads the request view and catalog it is given and touches
//! nothing outside the sandbox.

pub mod decision;
pub mod engine;
pub mod input;
pub mod sandbox;
pub mod wit;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::Store;

pub use decision::{PlannedTarget, Verdict};
pub use engine::{PolicyEngine, PoolSize};
pub use sandbox::SandboxLimits;
pub use wit::{Model, Request};

use crate::api::ChatRequest;
use sandbox::Sandbox;
use wit::PolicyPre;

/// Longest policy error message kept; longer ones are cut.
const MAX_ERROR_BYTES: usize = 512;

/// A policy could not be loaded. Not retryable: the file or the engine must change.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {path} is not a valid WebAssembly component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("policy file {path} cannot be linked: {message}")]
    Link { path: PathBuf, message: String },
    #[error("policy engine: {0}")]
    Engine(String),
}

/// Why a decision failed. Every kind is the policy's fault; the request itself may still be
/// served by the failure behaviour (e.g. the static fallback route).
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
    #[error("no policy slot was free within the deadline")]
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

/// A loaded, pre-linked policy component.
pub struct Policy {
    name: Arc<str>,
    version: Arc<str>,
    pre: Arc<PolicyPre<Sandbox>>,
    limits: SandboxLimits,
    slots: Arc<Semaphore>,
}

/// Everything one decision reads.
pub struct DecisionInput<'a> {
    /// The parsed request, for `host.message-text`.
    pub request: Arc<ChatRequest>,
    pub request_id: Arc<str>,
    pub view: &'a Request,
    pub catalog: &'a [Model],
}

impl Policy {
    fn new(
        name: String,
        sha256: &str,
        pre: Arc<PolicyPre<Sandbox>>,
        limits: SandboxLimits,
        slots: Arc<Semaphore>,
    ) -> Self {
        Self {
            version: format!("{name}@{}", &sha256[..12]).into(),
            name: name.into(),
            pre,
            limits,
            slots,
        }
    }

    /// `name@` and the first 12 hex digits of the component's sha256: what headers and logs show.
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// Run the policy for one request in a fresh sandbox and validate its decision.
    ///
    /// The deadline bounds the whole decision twice over: epoch interruption stops guest code
    /// that runs past it, and a timer stops a guest that waits in a host call (a WASI poll, say).
    /// Waiting for a free pool slot is bounded by the same deadline.
    pub async fn decide(&self, input: DecisionInput<'_>) -> Result<Verdict, DecisionFailure> {
        let deadline = self.limits.deadline;
        let _slot = tokio::time::timeout(deadline, self.slots.acquire())
            .await
            .map_err(|_| DecisionFailure::Busy)?
            .expect("the slot semaphore is never closed");
        let sandbox = Sandbox::new(
            input.request,
            input.request_id,
            self.name.clone(),
            self.limits,
        );
        let mut store = Store::new(self.pre.engine(), sandbox);
        store.limiter(|s| s);
        store.set_epoch_deadline(engine::deadline_ticks(deadline));
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance
                .call_decide(&mut store, input.view, input.catalog)
                .await
        };
        let outcome = tokio::time::timeout(deadline, run)
            .await
            .map_err(|_| DecisionFailure::Timeout)?;
        match outcome {
            Ok(Ok(decision)) => decision::validate(decision, input.catalog)
                .map_err(DecisionFailure::InvalidDecision),
            Ok(Err(message)) => Err(DecisionFailure::Error(truncated(message, MAX_ERROR_BYTES))),
            Err(error) => Err(classify(&error, store.data())),
        }
    }
}

/// Name the fault behind a failed call.
fn classify(error: &wasmtime::Error, sandbox: &Sandbox) -> DecisionFailure {
    if sandbox.memory_denied {
        return DecisionFailure::Memory;
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => DecisionFailure::Timeout,
        trap => {
            let stderr = sandbox.stderr();
            let what = match trap {
                Some(t) => t.to_string(),
                None => format!("{:#}", error.root_cause()),
            };
            let detail = if stderr.is_empty() {
                what
            } else {
                format!("{what}; stderr: {stderr}")
            };
            DecisionFailure::Trap(truncated(detail, MAX_ERROR_BYTES))
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` appended when cut.
pub(crate) fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        text.truncate(text.floor_char_boundary(max));
        text.push('…');
    }
    text
}
