//! Candidate versions of a policy, tried beside its live one before they go live: starting one
//! (with the checks and canary of any new version), promoting it, aborting it; in a fleet, for
//! every replica at once.
//!
//! A candidate is started from a component (uploaded) or an OCI reference (fetched by digest),
//! and tried in the shadow of live traffic or in a split (`policy::candidate`); the request path
//! runs its decisions. Promoting puts it live as an upload would, written to the policy's file;
//! aborting drops it. With `[state]`, a candidate comes from a reference only: it is recorded
//! in Redis as the fleet's candidate run, every replica follows it (`rollout`), promoting it is a
//! deploy of its digest, and aborting it ends the run everywhere. A candidate is not live: a
//! restart forgets a replica's own, and takes the fleet's up again.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::lifecycle::{save_live, short};
use super::{App, ChangeError, Changed};
use crate::config::hex;
use crate::fleet::FleetCandidate;
use crate::policy::PolicySlot;
use crate::policy::candidate::{Candidate, FleetRun, Mode};

/// Where a candidate comes from.
pub enum CandidateSource {
    /// A component's bytes.
    Component(Bytes),
    /// An OCI reference, resolved to its digest and fetched.
    Reference(String),
}

/// A candidate's component, fetched and not yet checked.
struct Fetched {
    bytes: Bytes,
    origin: String,
    /// The OCI artifact, when it came from one: the pinned reference and its digest.
    artifact: Option<(String, String)>,
}

impl App {
    /// Check the candidate `source` names as a version of policy `name` and try it as `mode`
    /// beside the live version, in place of any candidate it had; with `[state]`, on every
    /// replica.
    pub async fn start_candidate(
        &self,
        name: &str,
        source: CandidateSource,
        mode: Mode,
    ) -> Result<Arc<Candidate>, ChangeError> {
        let slot = self.slot(name)?;
        let fleet = self.snapshot().fleet.clone();
        if fleet.is_some() && matches!(source, CandidateSource::Component(_)) {
            return Err(ChangeError::FleetNeedsReference(name.to_string()));
        }
        let fetched = self.fetch_candidate(name, source).await?;
        let run = match (&fleet, &fetched.artifact) {
            (Some(fleet), Some((reference, digest))) => Some(FleetRun {
                id: uuid::Uuid::new_v4().simple().to_string(),
                reference: reference.clone(),
                digest: digest.clone(),
                by: fleet.replica().to_string(),
            }),
            _ => None,
        };
        let candidate = self
            .try_candidate(&slot, fetched, mode.clone(), run.clone())
            .await?;
        if let (Some(fleet), Some(run)) = (fleet, run) {
            let recorded = FleetCandidate {
                id: run.id,
                reference: run.reference,
                digest: run.digest,
                mode: serde_json::to_value(&mode).expect("serializable"),
                by: run.by,
            };
            if let Err(e) = fleet.start_candidate(name, &recorded).await {
                slot.end_candidate("admin", "it could not be recorded for the fleet");
                return Err(ChangeError::Fleet(e));
            }
        }
        Ok(candidate)
    }

    /// Try the fleet's candidate run `wanted` beside policy `name`'s live version, as this
    /// replica's follower does.
    pub(super) async fn adopt_candidate(
        &self,
        name: &str,
        wanted: &FleetCandidate,
    ) -> Result<Arc<Candidate>, ChangeError> {
        let slot = self.slot(name)?;
        let mode: Mode = serde_json::from_value(wanted.mode.clone())
            .map_err(|e| ChangeError::Fleet(crate::fleet::FleetError::Data(e.to_string())))?;
        let source = CandidateSource::Reference(wanted.reference.clone());
        let fetched = self.fetch_candidate(name, source).await?;
        let run = FleetRun {
            id: wanted.id.clone(),
            reference: wanted.reference.clone(),
            digest: wanted.digest.clone(),
            by: wanted.by.clone(),
        };
        self.try_candidate(&slot, fetched, mode, Some(run)).await
    }

    /// The component `source` names, fetched by digest when it is a reference.
    async fn fetch_candidate(
        &self,
        name: &str,
        source: CandidateSource,
    ) -> Result<Fetched, ChangeError> {
        let fetch = |source| ChangeError::Fetch {
            policy: name.to_string(),
            source,
        };
        Ok(match source {
            CandidateSource::Component(bytes) => Fetched {
                bytes,
                origin: "candidate upload".to_string(),
                artifact: None,
            },
            CandidateSource::Reference(reference) => {
                let pinned = self.artifacts.resolve(&reference).await.map_err(fetch)?;
                let pulled = self.artifacts.fetch(&pinned).await.map_err(fetch)?;
                Fetched {
                    bytes: pulled.component.into(),
                    origin: format!("candidate oci {pinned}"),
                    artifact: Some((pinned, pulled.digest)),
                }
            }
        })
    }

    /// Check `fetched` as a version of `slot`'s policy and start trying it as `mode`.
    async fn try_candidate(
        &self,
        slot: &PolicySlot,
        fetched: Fetched,
        mode: Mode,
        run: Option<FleetRun>,
    ) -> Result<Arc<Candidate>, ChangeError> {
        let _change = self.changes.lock().await;
        let name = slot.name();
        let sha256 = hex(&Sha256::digest(&fetched.bytes));
        let digest = fetched.artifact.map(|(_, digest)| digest);
        let checked = self
            .validate(slot, fetched.bytes, fetched.origin, digest)
            .await;
        let version = match checked {
            Ok(version) => version,
            Err(fault) => {
                slot.refused("candidate", Some(short(name, &sha256)), fault.to_string());
                return Err(ChangeError::Refused {
                    policy: name.to_string(),
                    fault,
                });
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let rule = slot.config().rollout;
        let candidate = Arc::new(Candidate::new(version, mode, cores, rule).in_fleet(run));
        slot.start_candidate(candidate.clone());
        Ok(candidate)
    }

    /// Put policy `name`'s candidate live and write it to the policy's file; a fleet's
    /// candidate ends everywhere and its digest is deployed to every replica. The change lock is
    /// held throughout, so this replica's follower acts on the fleet's change only after it.
    pub async fn promote_candidate(&self, name: &str) -> Result<Changed, ChangeError> {
        let _change = self.changes.lock().await;
        let slot = self.slot(name)?;
        let candidate = self.end_candidate(name, &slot, true, "promoted").await?;
        slot.promote(candidate.version.clone(), "candidate");
        let persisted = save_live(&slot).await;
        Ok(Changed {
            version: candidate.version.clone(),
            persisted,
        })
    }

    /// Stop trying policy `name`'s candidate (a fleet's, everywhere); it is returned with its
    /// figures.
    pub async fn abort_candidate(&self, name: &str) -> Result<Arc<Candidate>, ChangeError> {
        let _change = self.changes.lock().await;
        let slot = self.slot(name)?;
        self.end_candidate(name, &slot, false, "aborted").await
    }

    /// End `slot`'s candidate, `why`: a fleet's run first in Redis (and its digest deployed
    /// when `deploy`), then here. The candidate ended, even when this replica's follower saw
    /// the fleet's change first and dropped it already.
    async fn end_candidate(
        &self,
        name: &str,
        slot: &PolicySlot,
        deploy: bool,
        why: &str,
    ) -> Result<Arc<Candidate>, ChangeError> {
        let current = slot
            .candidate()
            .ok_or_else(|| ChangeError::NoCandidate(name.to_string()))?;
        if let (Some(fleet), Some(run)) = (self.snapshot().fleet.clone(), &current.fleet) {
            fleet
                .end_candidate(name, &run.id)
                .await
                .map_err(ChangeError::Fleet)?;
            if deploy {
                fleet
                    .deploy(name, &run.reference, &run.digest)
                    .await
                    .map_err(ChangeError::Fleet)?;
            }
        }
        Ok(slot.end_candidate("admin", why).unwrap_or(current))
    }
}
