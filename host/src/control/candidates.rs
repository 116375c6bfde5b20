//! Candidate versions of a policy, tried beside its live one before they go live: starting one
//! (with the checks and canary of any new version), promoting it, aborting it.
//!
//! A candidate is started from a component (uploaded) or an OCI reference (fetched by digest),
//! and tried in the shadow of live traffic (`policy::candidate`); the request path runs its
//! decisions. Promoting puts it live as an upload would, written to the policy's file; aborting
//! drops it. A candidate is not live: a restart forgets it.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::lifecycle::{save_live, short};
use super::{App, ChangeError, Changed};
use crate::config::hex;
use crate::policy::candidate::{Candidate, Mode};

/// Where a candidate comes from.
pub enum CandidateSource {
    /// A component's bytes.
    Component(Bytes),
    /// An OCI reference, resolved to its digest and fetched.
    Reference(String),
}

impl App {
    /// Check the candidate `source` names as a version of policy `name` and try it as `mode`
    /// beside the live version, in place of any candidate it had.
    pub async fn start_candidate(
        &self,
        name: &str,
        source: CandidateSource,
        mode: Mode,
    ) -> Result<Arc<Candidate>, ChangeError> {
        let slot = self.slot(name)?;
        let fetch = |source| ChangeError::Fetch {
            policy: name.to_string(),
            source,
        };
        let (bytes, origin, digest) = match source {
            CandidateSource::Component(bytes) => (bytes, "candidate upload".to_string(), None),
            CandidateSource::Reference(reference) => {
                let pinned = self.artifacts.resolve(&reference).await.map_err(fetch)?;
                let pulled = self.artifacts.fetch(&pinned).await.map_err(fetch)?;
                let origin = format!("candidate oci {pinned}");
                (pulled.component.into(), origin, Some(pulled.digest))
            }
        };
        let _change = self.changes.lock().await;
        let sha256 = hex(&Sha256::digest(&bytes));
        let version = match self.validate(&slot, bytes, origin, digest).await {
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
        let candidate = Arc::new(Candidate::new(version, mode, cores, rule));
        slot.start_candidate(candidate.clone());
        Ok(candidate)
    }

    /// Put policy `name`'s candidate live and write it to the policy's file.
    pub async fn promote_candidate(&self, name: &str) -> Result<Changed, ChangeError> {
        let _change = self.changes.lock().await;
        let slot = self.slot(name)?;
        let candidate = slot
            .end_candidate("admin", "promoted")
            .ok_or_else(|| ChangeError::NoCandidate(name.to_string()))?;
        slot.promote(candidate.version.clone(), "candidate");
        let persisted = save_live(&slot).await;
        Ok(Changed {
            version: candidate.version.clone(),
            persisted,
        })
    }

    /// Stop trying policy `name`'s candidate; it is returned with its figures.
    pub async fn abort_candidate(&self, name: &str) -> Result<Arc<Candidate>, ChangeError> {
        let _change = self.changes.lock().await;
        self.slot(name)?
            .end_candidate("admin", "aborted")
            .ok_or_else(|| ChangeError::NoCandidate(name.to_string()))
    }
}
