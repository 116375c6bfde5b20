//! The control plane: the live state every request reads, and the only code that changes it.
//!
//! [`App`] holds the policy engine (fixed for the life of the process) and a [`Snapshot`] behind
//! an [`ArcSwap`]: the validated config, the key map, the teams with their catalogs and failure
//! behaviour and budgets (`budget`), the policy slots, the upstreams and the Responses API's
//! kept responses (`conversations`). A request loads the snapshot once and takes its
//! team's live policy version once, so it runs entirely on the state it started with.
//!
//! Changes come from five places and are applied one at a time (`lifecycle`): a config reload
//! (SIGHUP or the admin API) builds a whole new snapshot (`build`, which fetches what `oci`
//! entries name through `artifacts`) and swaps it in, or changes nothing; a policy file change
//! (`watch`), an upload and a deploy (`rollout`: an OCI digest, for the fleet or this replica)
//! each swap one policy's version after it passed validation and the canary; a rollback restores
//! a policy's previous version. Failures leave the live state as it was and are reported in the
//! log, the admin API and metrics. What is live is what a restart loads: an upload, a deploy, a
//! fetched `oci` version and a rollback (the admin's, or an automatic one, which `watch` is woken
//! for) write the version they put live to the policy's file.

mod artifacts;
pub mod budget;
mod build;
mod candidates;
pub mod catalog;
pub mod conversations;
mod lifecycle;
pub mod rate;
pub mod rollout;
pub mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::HeaderMap;

use artifacts::Artifacts;
pub use budget::{Budget, BudgetStatus};
pub use candidates::CandidateSource;
pub use catalog::Catalog;
use conversations::ResponseStore;
pub use lifecycle::{ChangeError, Changed, ReloadSummary};
pub use rate::{Admission, Limited, RateLimit};

use crate::api::Operation;
use crate::auth::{AuthError, Keys};
use crate::config::{Config, ConfigError, Env, FailureMode, OnStateError};
use crate::fleet::{Fleet, FleetError};
use crate::label::Label;
use crate::policy::{self, LiveView, Model, PlannedTarget, PolicyEngine, PolicySlot, PoolSize};
use crate::telemetry::decisions::DecisionLog;
use crate::upstream::{SetupError, Upstreams};

/// Where the config comes from, and what the command line overrides in it.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// `--listen`, applied to every load of the file.
    pub listen: Option<SocketAddr>,
}

impl ConfigSource {
    /// Read and validate the file, with the overrides applied.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load(&self.path)?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        Ok(config)
    }
}

/// Start-up or a config reload failed; the message names the file, field, provider or policy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("policy `{policy}` ({origin}): {fault}")]
    Policy {
        policy: String,
        origin: String,
        fault: policy::LoadError,
    },
    #[error(transparent)]
    Upstream(#[from] SetupError),
    #[error("{0}")]
    Engine(policy::LoadError),
    #[error("decision_log.path: {0}")]
    DecisionLog(String),
    #[error("state.redis_url: {0}")]
    Fleet(FleetError),
}

/// One team as the request path uses it.
pub struct Team {
    pub name: Label,
    /// The slot of the team's policy.
    pub policy: Arc<PolicySlot>,
    /// The chat models the team may use, as its policy sees them for a chat request.
    pub catalog: Catalog,
    /// The embedding models the team may use, as its policy sees them for an embeddings request.
    pub embedding_catalog: Catalog,
    /// The static route used when the policy fails.
    pub fallback: Vec<PlannedTarget>,
    pub on_failure: FailureMode,
    /// The team's spending limit, if it has one.
    pub budget: Option<Arc<Budget>>,
    /// The team's rate limits, if it has any.
    pub rate: Option<Arc<RateLimit>>,
    /// What its requests get while the fleet's shared state is out of reach.
    pub on_state_error: OnStateError,
    /// This replica's share of the rate limits while the fleet's state is out of reach, and the
    /// replica count it was made for.
    rate_share: std::sync::Mutex<Option<(u32, Arc<RateLimit>)>>,
}

impl Team {
    /// The models a policy deciding a request for `operation` sees.
    pub fn catalog_for(&self, operation: Operation) -> &Catalog {
        match operation {
            Operation::Chat => &self.catalog,
            Operation::Embeddings => &self.embedding_catalog,
        }
    }

    /// The team's catalog entry for `id`, if the team may use that model for `operation`.
    pub fn model(&self, id: &str, operation: Operation) -> Option<&Model> {
        self.catalog_for(operation).iter().find(|m| m.id == id)
    }

    /// This replica's share of the team's rate limits, each divided by `replicas`; the same
    /// buckets while the count stays the same.
    pub fn rate_share(&self, replicas: u32) -> Option<Arc<RateLimit>> {
        let config = self.rate.as_ref()?.config();
        let mut share = self.rate_share.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((count, rate)) = &*share
            && *count == replicas
        {
            return Some(rate.clone());
        }
        let divided = |n: Option<u32>| n.map(|n| (n / replicas.max(1)).max(1));
        let config = crate::config::RateLimitConfig {
            requests_per_minute: divided(config.requests_per_minute),
            tokens_per_minute: divided(config.tokens_per_minute),
        };
        let rate = Arc::new(RateLimit::new(&config, std::time::Instant::now()));
        *share = Some((replicas, rate.clone()));
        Some(rate)
    }

    /// Every model the team may use, chat models first.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.catalog.iter().chain(self.embedding_catalog.iter())
    }
}

/// Everything the request path reads, as one consistent, immutable state.
pub struct Snapshot {
    pub config: Config,
    pub keys: Keys,
    pub teams: Vec<Team>,
    /// Policy slots by name.
    pub policies: BTreeMap<String, Arc<PolicySlot>>,
    pub upstreams: Upstreams,
    /// Where decisions are recorded, when `[decision_log]` is set.
    pub decision_log: Option<Arc<DecisionLog>>,
    /// The Responses API responses kept for follow-ups; carried over by reloads.
    conversations: Arc<dyn ResponseStore>,
    /// The state shared with the other replicas, with `[state]`; carried over by reloads.
    pub fleet: Option<Arc<Fleet>>,
}

impl LiveView for Snapshot {
    fn first_token_ms(&self, team: &str, model: &str) -> Option<f32> {
        let team = self.teams.iter().find(|t| &*t.name == team)?;
        let model = team.model(model, Operation::Chat)?;
        self.upstreams.health.model(&model.id)?.first_token_ms()
    }
}

impl Snapshot {
    /// Where Responses API responses are kept.
    pub fn conversations(&self) -> &dyn ResponseStore {
        &*self.conversations
    }

    /// The team of the request with `headers`.
    pub fn team(&self, headers: &HeaderMap) -> Result<&Team, AuthError> {
        self.keys.team(headers).map(|i| &self.teams[i])
    }

    /// The names of the teams bound to policy `name`.
    pub fn teams_of(&self, name: &str) -> Vec<&str> {
        self.teams
            .iter()
            .filter(|t| &**t.policy.name() == name)
            .map(|t| &*t.name)
            .collect()
    }
}

/// The proxy's shared state: the engine and the live snapshot.
pub struct App {
    engine: Arc<PolicyEngine>,
    /// Where `oci` policies and deploys are fetched from.
    artifacts: Artifacts,
    source: ConfigSource,
    env: Arc<dyn Env + Send + Sync>,
    live: ArcSwap<Snapshot>,
    /// Held by every change, so changes apply one at a time.
    changes: tokio::sync::Mutex<()>,
    /// Bumped whenever a new snapshot goes live (the file watcher re-reads its paths).
    generation: tokio::sync::watch::Sender<u64>,
    /// Notified when a rollback leaves a policy's file behind its live version.
    unsaved: Arc<tokio::sync::Notify>,
}

impl App {
    /// Load the config, compile and check every policy, and set up providers; nothing is served
    /// if this fails.
    pub async fn start(
        source: ConfigSource,
        env: Arc<dyn Env + Send + Sync>,
    ) -> Result<Self, StartError> {
        let config = source.load()?;
        let memory_bytes = config.engine.max_memory_mib as usize * 1024 * 1024;
        let engine = PolicyEngine::new(
            PoolSize {
                instances: config.engine.instances,
                memory_bytes,
            },
            config.compile_cache_dir(&*env).as_deref(),
        )
        .map_err(StartError::Engine)?;
        let engine = Arc::new(engine);
        let artifacts = Artifacts::new(&config, env.clone());
        let plan = build::plan(&engine, &artifacts, config, &*env, None).await?;
        let fetched = plan.fetched();
        let unsaved = Arc::new(tokio::sync::Notify::new());
        let snapshot = plan.apply("start", &unsaved);
        let app = Self {
            engine,
            artifacts,
            source,
            env,
            live: ArcSwap::from_pointee(snapshot),
            changes: tokio::sync::Mutex::new(()),
            generation: tokio::sync::watch::Sender::new(0),
            unsaved,
        };
        app.save_fetched(&fetched).await;
        Ok(app)
    }

    /// Set the gauges read when metrics are scraped (the policy pool's).
    pub fn record_gauges(&self) {
        self.engine.record_pool();
    }

    /// The live state; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    /// Notified whenever a new snapshot goes live.
    pub fn generations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn publish(&self, snapshot: Snapshot) {
        self.live.store(Arc::new(snapshot));
        self.generation.send_modify(|g| *g += 1);
    }
}
