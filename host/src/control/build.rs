//! Building a snapshot from a config: every policy checked and canaried, nothing live yet.
//!
//! [`plan`] does all the work that can fail, off to the side: it sets up the upstreams, builds
//! each team's catalog, and for every policy decides which version the new snapshot runs. A policy
//! whose file is unchanged since it was last read keeps its live version; a changed file is
//! prepared and canaried. Under a reload, a policy that already runs keeps its live version when
//! its new file is refused (the refusal is recorded, as for a watched file); a policy that is new,
//! or a live version that fails the canary under the new config, fails the whole plan. Only
//! [`Plan::apply`] changes live state, and it cannot fail.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Snapshot, StartError, Team};
use crate::auth::Keys;
use crate::config::{Config, Env, PolicyConfig, hex};
use crate::policy::canary::{self, Audience};
use crate::policy::{
    LoadError, Model, PlannedTarget, Policy, PolicyEngine, PolicySettings, PolicySlot, cases, input,
};
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
}

/// A checked snapshot, ready to go live.
pub(super) struct Plan {
    config: Config,
    upstreams: Upstreams,
    /// Per team, in config order.
    catalogs: Vec<Vec<Model>>,
    policies: Vec<PlannedPolicy>,
}

/// Check everything `config` needs; `old` is the live snapshot when reloading.
pub(super) async fn plan(
    engine: &Arc<PolicyEngine>,
    config: Config,
    env: &(dyn Env + Sync),
    old: Option<&Snapshot>,
) -> Result<Plan, StartError> {
    let upstreams = Upstreams::from_config(&config, env)?;
    let catalogs: Vec<Vec<Model>> = config
        .teams
        .iter()
        .map(|team| input::catalog(&config, team.models.as_deref()))
        .collect();
    let full_catalog = input::catalog(&config, None);
    let mut policies = Vec::with_capacity(config.policies.len());
    for policy in &config.policies {
        let audiences = audiences(&config, &catalogs, &full_catalog, &policy.name);
        let slot = old.and_then(|o| o.policies.get(&policy.name)).cloned();
        policies.push(plan_policy(engine, policy, slot, &audiences).await?);
    }
    Ok(Plan {
        config,
        upstreams,
        catalogs,
        policies,
    })
}

/// The teams `policy` serves with their catalogs, or the whole catalog when no team is bound.
pub(super) fn audiences<'a>(
    config: &'a Config,
    catalogs: &'a [Vec<Model>],
    full_catalog: &'a [Model],
    policy: &str,
) -> Vec<Audience<'a>> {
    let bound: Vec<Audience<'a>> = config
        .teams
        .iter()
        .zip(catalogs)
        .filter(|(team, _)| team.policy == policy)
        .map(|(team, catalog)| Audience {
            team: Some(team.name.as_str()),
            catalog,
        })
        .collect();
    if bound.is_empty() {
        vec![Audience {
            team: None,
            catalog: full_catalog,
        }]
    } else {
        bound
    }
}

async fn plan_policy(
    engine: &Arc<PolicyEngine>,
    config: &PolicyConfig,
    slot: Option<Arc<PolicySlot>>,
    audiences: &[Audience<'_>],
) -> Result<PlannedPolicy, StartError> {
    let name = config.name.as_str();
    let origin = format!("file {}", config.path.display());
    let fatal = |fault: LoadError| StartError::Policy {
        policy: name.to_string(),
        origin: origin.clone(),
        fault,
    };
    let settings = PolicySettings::from_config(config);
    let bytes = tokio::fs::read(&config.path)
        .await
        .map_err(|source| LoadError::Read {
            path: config.path.clone(),
            source,
        });
    let file_sha256 = bytes.as_ref().ok().map(|b| hex(&Sha256::digest(b)));
    let changed =
        file_sha256.is_some() && file_sha256 != slot.as_ref().and_then(|s| s.file_sha256());
    let candidate = match (bytes, &slot) {
        (Ok(bytes), _) if changed => Some(
            match prepare(engine, name, bytes.into(), settings.clone(), origin.clone()).await {
                Ok(version) => check(Arc::new(version), config, audiences).await,
                Err(fault) => Err(fault),
            },
        ),
        (Ok(_), _) => None,
        (Err(fault), None) => return Err(fatal(fault)),
        (Err(fault), Some(_)) => Some(Err(fault)),
    };
    let version = match (candidate, &slot) {
        (Some(Ok(version)), _) => version,
        (Some(Err(fault)), None) => return Err(fatal(fault)),
        (Some(Err(fault)), Some(slot)) => {
            slot.refused("config", None, fault.to_string());
            keep_live(slot, settings, config, audiences).await?
        }
        (None, Some(slot)) => keep_live(slot, settings, config, audiences).await?,
        (None, None) => unreachable!("a policy without a slot has no file digest to compare"),
    };
    Ok(PlannedPolicy {
        config: config.clone(),
        slot,
        version,
        file_sha256,
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
    tokio::task::spawn_blocking(move || engine.prepare(&name, &bytes, settings, origin))
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
    /// Make the plan live state: update existing slots, create new ones, build the teams.
    pub(super) fn apply(self, trigger: &'static str) -> Snapshot {
        let mut slots = BTreeMap::new();
        for planned in self.policies {
            let slot = match planned.slot {
                Some(slot) => {
                    slot.set_config(planned.config);
                    if let Some(sha) = planned.file_sha256 {
                        slot.set_file_sha256(sha);
                    }
                    if !Arc::ptr_eq(&slot.live(), &planned.version) {
                        slot.promote(planned.version, trigger);
                    }
                    slot
                }
                None => Arc::new(PolicySlot::new(
                    planned.config,
                    planned.version,
                    planned.file_sha256,
                    trigger,
                )),
            };
            slots.insert(slot.name().to_string(), slot);
        }
        let teams = self
            .config
            .teams
            .iter()
            .zip(self.catalogs)
            .map(|(team, catalog)| Team {
                name: team.name.as_str().into(),
                policy: slots[&team.policy].clone(),
                catalog,
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
            })
            .collect();
        Snapshot {
            keys: Keys::from_config(&self.config),
            config: self.config,
            teams,
            policies: slots,
            upstreams: self.upstreams,
        }
    }
}
