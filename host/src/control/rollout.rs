//! Rolling a policy version out by OCI digest: [`App::deploy`] resolves a reference and records
//! it as the version the fleet should run (through `fleet`'s rollout keys in Redis) or, on a
//! replica without `[state]`, puts it live at once; [`spawn`] has every replica follow the
//! deploys and activate each one ([`App::activate`]: fetch by digest, the checks and canary of
//! any new version, go live, write it to the policy's file), or refuse it, keep its version and
//! report why. A replica refuses a deploy once; one the registry could not deliver is tried again
//! at every check. A deployed version that this replica then rolled back (by itself or through
//! the admin API) is not put live again until another deploy is made (remembered while the
//! process runs): a fleet-wide rollback is a deploy of the previous digest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::lifecycle::{save_live, short};
use super::{App, ChangeError, Changed};
use crate::config::hex;
use crate::fleet::{Desired, Fleet, FleetError, LivePolicy, Refusal, Report};
use crate::policy::PolicySlot;
use crate::registry::RegistryError;

/// What a deploy recorded.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub policy: String,
    /// The reference pinned to its digest.
    pub reference: String,
    pub digest: String,
    /// The pinned reference it replaced in the fleet, if any (none on a replica without
    /// `[state]`, whose own rollback restores the version replaced).
    pub previous: Option<String>,
    /// Whether it went to the fleet (Redis) rather than this replica alone.
    pub fleet: bool,
    /// Put live here but not saved to the policy's file (a restart would load the file's).
    pub unsaved: Option<String>,
}

impl App {
    /// Make the artifact `reference` names the version policy `name` runs: on every replica of
    /// the fleet (recorded in Redis, followed by each), or on this replica without `[state]`.
    pub async fn deploy(&self, name: &str, reference: &str) -> Result<Deployed, ChangeError> {
        self.slot(name)?;
        let fetch = |source| ChangeError::Fetch {
            policy: name.to_string(),
            source,
        };
        let pinned = self.artifacts.resolve(reference).await.map_err(fetch)?;
        let digest = digest_of(&pinned).to_string();
        let Some(fleet) = self.snapshot().fleet.clone() else {
            // One replica: its rollback (`POST /admin/policies/NAME/rollback`) restores the
            // version this replaces.
            let changed = self.activate(name, &pinned, &digest).await?;
            return Ok(Deployed {
                policy: name.to_string(),
                reference: pinned,
                digest,
                previous: None,
                fleet: false,
                unsaved: changed.persisted.err(),
            });
        };
        let desired = fleet
            .deploy(name, &pinned, &digest)
            .await
            .map_err(ChangeError::Fleet)?;
        tracing::info!(policy = name, reference = %pinned, "deploy recorded for the fleet");
        Ok(Deployed {
            policy: name.to_string(),
            reference: pinned,
            digest,
            previous: desired.previous,
            fleet: true,
            unsaved: None,
        })
    }

    /// Fetch the component `reference` (pinned to `digest`) names, check it as a new version of
    /// policy `name`, put it live and write it to the policy's file; a refusal changes nothing.
    /// The fetch happens before the change lock is taken, so a slow registry holds up no other
    /// change.
    pub async fn activate(
        &self,
        name: &str,
        reference: &str,
        digest: &str,
    ) -> Result<Changed, ChangeError> {
        let slot = self.slot(name)?;
        if slot.live().digest() == Some(digest) {
            return Ok(Changed {
                version: slot.live(),
                persisted: Ok(()),
            });
        }
        let fetched = match digest_of(reference) == digest {
            true => self.artifacts.fetch(reference).await,
            false => Err(RegistryError::Digest {
                reference: reference.to_string(),
                what: "the deployed reference",
                expected: digest.to_string(),
                got: digest_of(reference).to_string(),
            }),
        };
        let pulled = match fetched {
            Ok(pulled) => pulled,
            Err(source) => {
                slot.refused("deploy", Some(reference.to_string()), source.to_string());
                return Err(ChangeError::Fetch {
                    policy: name.to_string(),
                    source,
                });
            }
        };
        let _change = self.changes.lock().await;
        let slot = self.slot(name)?;
        let live = slot.live();
        if live.digest() == Some(digest) {
            return Ok(Changed {
                version: live,
                persisted: Ok(()),
            });
        }
        let sha256 = hex(&Sha256::digest(&pulled.component));
        let origin = format!("oci {reference}");
        let checked = self
            .validate(&slot, pulled.component.into(), origin, Some(pulled.digest))
            .await;
        let version = match checked {
            Ok(version) => version,
            Err(fault) => {
                slot.refused("deploy", Some(short(name, &sha256)), fault.to_string());
                return Err(ChangeError::Refused {
                    policy: name.to_string(),
                    fault,
                });
            }
        };
        slot.promote(version.clone(), "deploy");
        let persisted = save_live(&slot).await;
        Ok(Changed { version, persisted })
    }
}

/// The digest a pinned reference ends with (`sha256:...`), or `""`.
fn digest_of(reference: &str) -> &str {
    reference.rsplit_once('@').map_or("", |(_, digest)| digest)
}

/// Have this replica follow the fleet's deploys for as long as the runtime runs: at every
/// announced deploy and every `state.rollout_check_ms`, each policy whose deployed digest differs
/// from its live one is activated, and what the replica runs is reported.
pub fn spawn(app: Arc<App>) {
    let snapshot = app.snapshot();
    let (Some(fleet), Some(state)) = (snapshot.fleet.clone(), snapshot.config.state.as_ref())
    else {
        return;
    };
    let check = Duration::from_millis(state.rollout_check_ms);
    let mut follower = Follower {
        app,
        fleet,
        check,
        refused: HashMap::new(),
        applied: HashMap::new(),
        last_refusal: None,
        refused_runs: HashMap::new(),
    };
    tokio::spawn(async move {
        let mut after = "0-0".to_string();
        loop {
            follower.reconcile().await;
            match follower.fleet.next_deploy(&after, check).await {
                Ok(Some(id)) => after = id,
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("waiting for deploys: {e}");
                    tokio::time::sleep(check.min(Duration::from_secs(1))).await;
                }
            }
        }
    });
}

/// One replica's view of the rollouts it follows.
struct Follower {
    app: Arc<App>,
    fleet: Arc<Fleet>,
    /// How often the versions are compared (and reported) when no deploy comes.
    check: Duration,
    /// Per policy, the deploy (digest and time) this replica refused for good.
    refused: HashMap<String, (String, u64)>,
    /// Per policy, the deploy this replica last put live: not put live again when a rollback
    /// here replaced it, until another deploy is made.
    applied: HashMap<String, (String, u64)>,
    last_refusal: Option<Refusal>,
    /// Per policy, the fleet's candidate run this replica refused for good.
    refused_runs: HashMap<String, String>,
}

impl Follower {
    /// Activate every deployed version this replica does not run, then report.
    async fn reconcile(&mut self) {
        let snapshot = self.app.snapshot();
        for (name, slot) in &snapshot.policies {
            let desired = match self.fleet.desired(name).await {
                Ok(Some(desired)) => desired,
                Ok(None) => continue,
                Err(e @ FleetError::Data(_)) => {
                    tracing::warn!(policy = %name, "cannot follow the deployed version: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::debug!("reading the deployed versions: {e}");
                    break;
                }
            };
            let deploy = (desired.digest.clone(), desired.at_ms);
            let seen = |memory: &HashMap<String, (String, u64)>| memory.get(name) == Some(&deploy);
            if slot.live().digest() == Some(desired.digest.as_str())
                || seen(&self.refused)
                || seen(&self.applied)
            {
                continue;
            }
            self.activate(name, &desired).await;
        }
        for (name, slot) in &snapshot.policies {
            self.follow_candidate(name, slot).await;
        }
        self.report().await;
    }

    /// Try the fleet's candidate of policy `name` if this replica does not yet, or drop the
    /// fleet's candidate it tries when the fleet's run ended.
    async fn follow_candidate(&mut self, name: &str, slot: &PolicySlot) {
        let wanted = match self.fleet.candidate(name).await {
            Ok(wanted) => wanted,
            Err(e) => {
                tracing::debug!(policy = %name, "reading the fleet's candidate: {e}");
                return;
            }
        };
        let local = slot.candidate();
        let local_run = local
            .as_ref()
            .and_then(|c| c.fleet.as_ref())
            .map(|r| r.id.clone());
        match wanted {
            Some(wanted) if local_run.as_deref() != Some(wanted.id.as_str()) => {
                if self.refused_runs.get(name) == Some(&wanted.id) {
                    return;
                }
                match self.app.adopt_candidate(name, &wanted).await {
                    Ok(candidate) => {
                        tracing::info!(policy = %name, candidate = %candidate.version.version(), run = %wanted.id, "the fleet's candidate is tried here")
                    }
                    Err(e) => {
                        let retrying = e.retryable();
                        if !retrying {
                            self.refused_runs
                                .insert(name.to_string(), wanted.id.clone());
                        }
                        tracing::warn!(policy = %name, digest = %wanted.digest, retrying, "the fleet's candidate is refused here: {e}");
                        self.last_refusal = Some(Refusal {
                            policy: name.to_string(),
                            digest: wanted.digest.clone(),
                            reason: format!("candidate: {e}"),
                            retrying,
                            at_ms: crate::clock::unix_millis(),
                        });
                    }
                }
            }
            None if local_run.is_some() => {
                slot.end_candidate("fleet", "the fleet's candidate run ended");
            }
            // The same run: take up a share another replica stepped up to.
            Some(wanted) => {
                let percent = wanted
                    .mode
                    .get("percent")
                    .and_then(serde_json::Value::as_f64);
                if let (Some(local), Some(percent)) = (local, percent) {
                    local.raise_percent(percent);
                }
            }
            None => {}
        }
    }

    async fn activate(&mut self, name: &str, desired: &Desired) {
        let deploy = (desired.digest.clone(), desired.at_ms);
        let digest = &desired.digest;
        match self.app.activate(name, &desired.reference, digest).await {
            Ok(changed) => {
                self.applied.insert(name.to_string(), deploy);
                if self.last_refusal.as_ref().is_some_and(|r| r.policy == name) {
                    self.last_refusal = None;
                }
                tracing::info!(policy = %name, digest = %digest, version = %changed.version.version(), "deployed version live");
            }
            Err(e) => {
                let retrying = e.retryable();
                if !retrying {
                    self.refused.insert(name.to_string(), deploy);
                }
                tracing::warn!(policy = %name, digest = %digest, retrying, "deployed version refused, the live version keeps serving: {e}");
                self.last_refusal = Some(Refusal {
                    policy: name.to_string(),
                    digest: digest.clone(),
                    reason: e.to_string(),
                    retrying,
                    at_ms: crate::clock::unix_millis(),
                });
            }
        }
    }

    async fn report(&self) {
        let snapshot = self.app.snapshot();
        let policies: BTreeMap<String, LivePolicy> = snapshot
            .policies
            .iter()
            .map(|(name, slot)| {
                let live = slot.live();
                let policy = LivePolicy {
                    version: live.version().to_string(),
                    digest: live.digest().map(str::to_string),
                };
                (name.clone(), policy)
            })
            .collect();
        let candidates = snapshot
            .policies
            .iter()
            .filter_map(|(name, slot)| {
                let figures = slot.candidate()?.figures();
                Some((
                    name.clone(),
                    serde_json::to_value(figures).expect("serializable"),
                ))
            })
            .collect();
        let report = Report {
            replica: self.fleet.replica().to_string(),
            policies,
            last_refusal: self.last_refusal.clone(),
            candidates,
        };
        if let Err(e) = self.fleet.report(&report, self.check).await {
            tracing::debug!("reporting to the fleet: {e}");
        }
    }
}
