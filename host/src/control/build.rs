//! Building a snapshot from a config: every policy checked and canaried, nothing live yet.
//!
//! [`plan`] does all the work that can fail, off to the side: it sets up the upstreams, builds
//! each team's catalog, and for every policy decides which version the new snapshot runs. A policy
//! whose file is unchanged since it was last read keeps its live version; a changed file is
//! prepared and canaried. Under a reload, a policy that already runs keeps its live version when
//! its new file is refused (the refusal is recorded, as for a watched file); a policy that is new,
//! or a live version that fails the canary under the new config, fails the whole plan. Only
//! [`Plan::apply`] changes live state, and it cannot fail.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::artifacts::{self, Artifacts};
use super::budget::{Budget, Ledger};
use super::conversations::{Limits, MemoryStore, RedisStore, ResponseStore};
use super::rate::RateLimit;
use super::{Catalog, Snapshot, StartError, Team};
use crate::auth::Keys;
use crate::config::{Config, Env, ModelKind, PolicyConfig, hex};
use crate::fleet::Fleet;
use crate::label::Label;
use crate::policy::canary::{self, Audience};
use crate::policy::{
    LoadError, Model, PlannedTarget, Policy, PolicyEngine, PolicySettings, PolicySlot, cases, input,
};
use crate::telemetry::decisions::DecisionLog;
use crate::upstream::Upstreams;

/// What a reload does to one policy.
struct PlannedPolicy {
    config: PolicyConfig,
    /// The slot it already has, if any.
    slot: Option<Arc<PolicySlot>>,
    /// The version the new snapshot runs.
    version: Arc<Policy>,
    /// Digest of the file as read now.
    file_sha256: Option<String>,
    /// Whether the version came from a registry rather than the file, and passed: the file is
    /// then written.
    fetched: bool,
}

impl PlannedPolicy {
    /// The policy's slot with the planned version live: its slot kept, with the new config and
    /// file digest (the version promoted if it changed), or a new one.
    fn into_slot(self, trigger: &'static str, unsaved: &Arc<Notify>) -> Arc<PolicySlot> {
        let Some(slot) = self.slot else {
            return Arc::new(PolicySlot::new(
                self.config,
                self.version,
                self.file_sha256,
                trigger,
                unsaved.clone(),
            ));
        };
        slot.set_config(self.config);
        if let Some(sha) = self.file_sha256 {
            slot.set_file_sha256(sha);
        }
        if !Arc::ptr_eq(&slot.live(), &self.version) {
            slot.promote(self.version, trigger);
        }
        slot
    }
}

/// A checked snapshot, ready to go live.
pub(super) struct Plan {
    config: Config,
    upstreams: Upstreams,
    /// Per team, in config order.
    catalogs: Vec<Vec<Model>>,
    /// Per team, its embedding models.
    embedding_catalogs: Vec<Vec<Model>>,
    policies: Vec<PlannedPolicy>,
    /// What each team of the live snapshot has spent, by team name.
    ledgers: HashMap<String, Arc<Ledger>>,
    /// Each team's rate limits in the live snapshot, by team name.
    rates: HashMap<String, Arc<RateLimit>>,
    decision_log: Option<Arc<DecisionLog>>,
    conversations: Arc<dyn ResponseStore>,
    fleet: Option<Arc<Fleet>>,
}

/// Check everything `config` needs; `old` is the live snapshot when reloading.
pub(super) async fn plan(
    engine: &Arc<PolicyEngine>,
    artifacts: &Artifacts,
    config: Config,
    env: &(dyn Env + Sync),
    old: Option<&Snapshot>,
) -> Result<Plan, StartError> {
    let upstreams = Upstreams::from_config(&config, env, old.map(|o| &o.upstreams))?;
    let catalogs = team_catalogs(&config, ModelKind::Chat);
    let embedding_catalogs = team_catalogs(&config, ModelKind::Embeddings);
    let full_catalog = input::catalog(&config, None, ModelKind::Chat);
    let full_embeddings = input::catalog(&config, None, ModelKind::Embeddings);
    let mut policies = Vec::with_capacity(config.policies.len());
    for policy in &config.policies {
        let teams = config
            .teams
            .iter()
            .zip(catalogs.iter().zip(&embedding_catalogs));
        let teams = teams.map(|(t, (chat, embeddings))| {
            let audience = Audience {
                team: Some(t.name.as_str()),
                catalog: chat,
                embedding_catalog: embeddings,
            };
            (t.policy.as_str(), audience)
        });
        let unbound = Audience {
            team: None,
            catalog: &full_catalog,
            embedding_catalog: &full_embeddings,
        };
        let audiences = audiences(teams, unbound, &policy.name);
        let slot = old.and_then(|o| o.policies.get(&policy.name)).cloned();
        policies.push(plan_policy(engine, artifacts, policy, slot, &audiences).await?);
    }
    let ledgers = old
        .into_iter()
        .flat_map(|o| &o.teams)
        .filter_map(|t| Some((t.name.to_string(), t.budget.as_ref()?.ledger().clone())))
        .collect();
    let rates = old
        .into_iter()
        .flat_map(|o| &o.teams)
        .filter_map(|t| Some((t.name.to_string(), t.rate.clone()?)))
        .collect();
    let decision_log = decision_log(&config, old)?;
    let fleet = fleet(&config, old).await?;
    let conversations = conversations(&config, old, fleet.as_ref());
    Ok(Plan {
        fleet,
        conversations,
        config,
        upstreams,
        catalogs,
        embedding_catalogs,
        policies,
        ledgers,
        rates,
        decision_log,
    })
}

/// Each team's catalog of models of `kind`, in config order.
fn team_catalogs(config: &Config, kind: ModelKind) -> Vec<Vec<Model>> {
    config
        .teams
        .iter()
        .map(|team| input::catalog(config, team.models.as_deref(), kind))
        .collect()
}

/// The decision log: the open log's writer carries over while its path stays the same.
fn decision_log(
    config: &Config,
    old: Option<&Snapshot>,
) -> Result<Option<Arc<DecisionLog>>, StartError> {
    let Some(settings) = &config.decision_log else {
        return Ok(None);
    };
    match old.and_then(|o| o.decision_log.as_ref()) {
        Some(log) => log.reopen(settings),
        None => DecisionLog::open(settings).map(Arc::new),
    }
    .map(Some)
    .map_err(StartError::DecisionLog)
}

/// The fleet's shared state: `[state]` needs a restart to change, so a reload keeps the fleet
/// state it has.
async fn fleet(config: &Config, old: Option<&Snapshot>) -> Result<Option<Arc<Fleet>>, StartError> {
    match (&config.state, old.and_then(|o| o.fleet.clone())) {
        (None, _) => Ok(None),
        (Some(_), Some(fleet)) => Ok(Some(fleet)),
        (Some(state), None) => {
            let fleet = Fleet::new(state).map_err(StartError::Fleet)?;
            fleet.connect().await;
            Ok(Some(fleet))
        }
    }
}

/// The kept responses: they carry over, under the new limits; a fleet keeps them in Redis.
fn conversations(
    config: &Config,
    old: Option<&Snapshot>,
    fleet: Option<&Arc<Fleet>>,
) -> Arc<dyn ResponseStore> {
    let limits = Limits {
        ttl: Duration::from_secs(config.responses.ttl_secs),
        max_bytes: config.responses.max_mib as usize * 1024 * 1024,
    };
    match (old, fleet) {
        (Some(old), _) => {
            old.conversations.set_limits(limits);
            old.conversations.clone()
        }
        (None, Some(fleet)) => Arc::new(RedisStore::new(fleet.clone(), limits)),
        (None, None) => Arc::new(MemoryStore::new(limits)),
    }
}

/// The teams `policy` serves, or `unbound` (no team, the whole catalog) when none is bound to it;
/// `teams` gives every team's audience with the policy it is bound to.
pub(super) fn audiences<'a>(
    teams: impl Iterator<Item = (&'a str, Audience<'a>)>,
    unbound: Audience<'a>,
    policy: &str,
) -> Vec<Audience<'a>> {
    let bound: Vec<Audience<'a>> = teams
        .filter(|(bound_to, _)| *bound_to == policy)
        .map(|(_, audience)| audience)
        .collect();
    if bound.is_empty() {
        vec![unbound]
    } else {
        bound
    }
}

/// What a policy entry asks for now: its file's content, or what its `oci` reference names
/// when the file was not written for it.
struct Source {
    bytes: Bytes,
    sha256: String,
    /// The OCI digest, when known.
    digest: Option<String>,
    /// Where it came from, as versions show it.
    origin: String,
    fetched: bool,
}

async fn read_source(artifacts: &Artifacts, config: &PolicyConfig) -> Result<Source, LoadError> {
    let path = config.path.display();
    if let Some(fetched) = artifacts.wanted(config).await? {
        return Ok(Source {
            sha256: hex(&Sha256::digest(&fetched.component)),
            bytes: fetched.component.into(),
            digest: Some(fetched.digest),
            origin: format!("oci {}", config.oci.as_deref().unwrap_or_default()),
            fetched: true,
        });
    }
    let bytes = tokio::fs::read(&config.path)
        .await
        .map_err(|source| LoadError::Read {
            path: config.path.clone(),
            source,
        })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok(Source {
        digest: artifacts::digest_of(&config.path, &sha256).await,
        bytes: bytes.into(),
        sha256,
        origin: format!("file {path}"),
        fetched: false,
    })
}

async fn plan_policy(
    engine: &Arc<PolicyEngine>,
    artifacts: &Artifacts,
    config: &PolicyConfig,
    slot: Option<Arc<PolicySlot>>,
    audiences: &[Audience<'_>],
) -> Result<PlannedPolicy, StartError> {
    let name = config.name.as_str();
    let origin = match &config.oci {
        Some(reference) => format!("oci {reference}"),
        None => format!("file {}", config.path.display()),
    };
    let fatal = |fault: LoadError| StartError::Policy {
        policy: name.to_string(),
        origin: origin.clone(),
        fault,
    };
    let settings = PolicySettings::from_config(config);
    // The version asked for now: `None` when it is the file the slot last acted upon; a fetched
    // component is always checked.
    let (file_sha256, fetched, candidate) = match read_source(artifacts, config).await {
        Ok(source) => {
            let seen = match (&slot, source.fetched) {
                (Some(slot), false) => slot.file_sha256(),
                _ => None,
            };
            let candidate = if seen.as_deref() == Some(source.sha256.as_str()) {
                None
            } else {
                let prepared =
                    prepare(engine, name, source.bytes, settings.clone(), source.origin).await;
                Some(match prepared {
                    Ok(version) => {
                        let version = version.with_digest(source.digest);
                        check(Arc::new(version), config, audiences).await
                    }
                    Err(fault) => Err(fault),
                })
            };
            let file_sha256 = (!source.fetched).then_some(source.sha256);
            (file_sha256, source.fetched, candidate)
        }
        Err(fault) => (None, false, Some(Err(fault))),
    };
    // A fetched version is written to the file only once it goes live.
    let fetched = fetched && matches!(candidate, Some(Ok(_)));
    let version = match (&slot, candidate) {
        (_, Some(Ok(version))) => version,
        (None, Some(Err(fault))) => return Err(fatal(fault)),
        (Some(slot), Some(Err(fault))) => {
            slot.refused("config", None, fault.to_string());
            keep_live(slot, settings, config, audiences).await?
        }
        (Some(slot), None) => keep_live(slot, settings, config, audiences).await?,
        (None, None) => unreachable!("a new policy has no digest to match"),
    };
    Ok(PlannedPolicy {
        config: config.clone(),
        slot,
        version,
        file_sha256,
        fetched,
    })
}

/// The slot's live version under `settings`, canaried again under the new config.
async fn keep_live(
    slot: &PolicySlot,
    settings: PolicySettings,
    config: &PolicyConfig,
    audiences: &[Audience<'_>],
) -> Result<Arc<Policy>, StartError> {
    let live = slot.live();
    let version = if live.settings() == &settings {
        live
    } else {
        Arc::new(live.with_settings(settings))
    };
    let origin = format!("live version {}", version.version());
    check(version, config, audiences)
        .await
        .map_err(|fault| StartError::Policy {
            policy: config.name.clone(),
            origin,
            fault,
        })
}

/// Compile and link on a blocking thread.
pub(super) async fn prepare(
    engine: &Arc<PolicyEngine>,
    name: &str,
    bytes: Bytes,
    settings: PolicySettings,
    origin: String,
) -> Result<Policy, LoadError> {
    let engine = engine.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || engine.prepare(&name, bytes, settings, origin))
        .await
        .map_err(|e| LoadError::Engine(format!("the compile task failed: {e}")))?
}

/// Run the canary, with the policy's own cases, on `version`.
pub(super) async fn check(
    version: Arc<Policy>,
    config: &PolicyConfig,
    audiences: &[Audience<'_>],
) -> Result<Arc<Policy>, LoadError> {
    let cases = match config.cases_path() {
        Some(path) => cases::load(&path).map_err(LoadError::Canary)?,
        None => Vec::new(),
    };
    canary::run(&version, audiences, &cases).await?;
    Ok(version)
}

impl Plan {
    /// The policies whose version came from a registry: once live, it is written to their file.
    pub(super) fn fetched(&self) -> Vec<String> {
        self.policies
            .iter()
            .filter(|p| p.fetched)
            .map(|p| p.config.name.clone())
            .collect()
    }

    /// Make the plan live state: update existing slots, create new ones (sharing `unsaved`, see
    /// [`PolicySlot::new`]), build the teams.
    pub(super) fn apply(self, trigger: &'static str, unsaved: &Arc<Notify>) -> Snapshot {
        let slots: BTreeMap<String, Arc<PolicySlot>> = self
            .policies
            .into_iter()
            .map(|planned| {
                let slot = planned.into_slot(trigger, unsaved);
                (slot.name().to_string(), slot)
            })
            .collect();
        let teams = self
            .config
            .teams
            .iter()
            .zip(self.catalogs.into_iter().zip(self.embedding_catalogs))
            .map(|(team, (catalog, embedding_catalog))| Team {
                name: Label::new(&team.name),
                policy: slots[&team.policy].clone(),
                catalog: Catalog::new(catalog),
                embedding_catalog: Catalog::new(embedding_catalog),
                fallback: team
                    .fallback
                    .iter()
                    .map(|model| PlannedTarget {
                        model: model.clone(),
                        timeout: None,
                        max_output_tokens: None,
                    })
                    .collect(),
                on_failure: team.on_failure,
                budget: team.budget.as_ref().map(|budget| {
                    let ledger = self.ledgers.get(&team.name).cloned().unwrap_or_default();
                    Arc::new(Budget::new(budget, ledger))
                }),
                // Buckets carry over while the team's limits stay the same.
                rate: team
                    .rate_limit
                    .as_ref()
                    .map(|limits| match self.rates.get(&team.name) {
                        Some(rate) if rate.config() == limits => rate.clone(),
                        _ => Arc::new(RateLimit::new(limits, Instant::now())),
                    }),
                on_state_error: team.on_state_error,
                rate_share: std::sync::Mutex::new(None),
            })
            .collect();
        Snapshot {
            keys: Keys::from_config(&self.config),
            config: self.config,
            teams,
            policies: slots,
            upstreams: self.upstreams,
            decision_log: self.decision_log,
            conversations: self.conversations,
            fleet: self.fleet,
        }
    }
}
