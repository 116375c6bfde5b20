//! A split between a policy's live version and its candidate: which arm a request is in
//! ([`choose`], from `decide`), and adding it to its arm's figures once it has ended
//! ([`record`], from `log`), where what the candidate's rollout rule judges is applied, to the
//! fleet too when the whole fleet tries the candidate.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;

use super::admit::Admitted;
use super::context::{ArmTicket, Exchange};
use crate::api::ClientRequest;
use crate::auth;
use crate::config::hex;
use crate::control::Snapshot;
use crate::fleet::Fleet;
use crate::policy::Policy;
use crate::policy::candidate::{Arm, ArmSample, Candidate, FleetRun, Judgement, Mode, Sticky};

/// The version that decides: the live one, or the candidate of a split for the requests in its
/// arm, which `exchange` then names and whose figures its `log` phase adds to.
pub fn choose(
    snapshot: &Snapshot,
    exchange: &mut Exchange,
    headers: &HeaderMap,
    admitted: &Admitted<'_>,
    candidate: Option<&Arc<Candidate>>,
) -> Arc<Policy> {
    let slot = &admitted.team.policy;
    let Some(candidate) = candidate.cloned() else {
        return admitted.policy.clone();
    };
    let Mode::Split { sticky, .. } = &candidate.mode else {
        return admitted.policy.clone();
    };
    let value = sticky_value(sticky, headers, &admitted.request);
    let arm = candidate.arm(value.as_deref().unwrap_or(&exchange.id));
    let version = match arm {
        Arm::Candidate => candidate.version.clone(),
        Arm::Live => admitted.policy.clone(),
    };
    exchange.policy = Some(version.version().clone());
    exchange.arm = Some(ArmTicket {
        candidate,
        slot: slot.clone(),
        arm,
        fleet: snapshot.fleet.clone(),
    });
    version
}

/// What keeps the request in one arm of a split: its key's digest, its `metadata.user`, or a
/// header's value.
fn sticky_value(sticky: &Sticky, headers: &HeaderMap, request: &ClientRequest) -> Option<String> {
    match sticky {
        Sticky::Key => auth::key_digest(headers).map(|digest| hex(&digest)),
        Sticky::User => request
            .metadata
            .iter()
            .find(|(name, _)| name == "user" || name == "user_id")
            .map(|(_, value)| value.clone()),
        Sticky::Header(name) => headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Add the request to its split arm's figures, if it is in a split, and apply what the
/// candidate's rule judges of them.
pub fn record(exchange: &mut Exchange, latency: Duration) {
    let Some(ticket) = exchange.arm.take() else {
        return;
    };
    let sample = ArmSample {
        upstream_error: exchange.status >= 500
            || exchange.attempts.iter().any(|a| a.result.is_err()),
        // Pool congestion (`busy`) is not the version's fault.
        policy_failed: exchange.policy_failure.is_some_and(|kind| kind != "busy"),
        latency,
        time_to_first_token: exchange.time_to_first_token,
        cost_usd: exchange.cost_usd,
    };
    if let Some(judgement) = ticket.candidate.record_arm(ticket.arm, &sample) {
        if let (Some(fleet), Some(run)) = (&ticket.fleet, &ticket.candidate.fleet) {
            for_the_fleet(fleet, ticket.slot.name(), run, &judgement);
        }
        ticket.slot.judged(&ticket.candidate, judgement);
    }
}

/// Apply a judgement of the fleet's candidate run to the whole fleet: a step raises the share
/// recorded in Redis (the other replicas take it at their next check, so a user stays in one
/// arm everywhere); an abort ends the run (the other replicas drop it) and a promotion also
/// deploys its digest. Off the request's path, on its own task.
fn for_the_fleet(fleet: &Arc<Fleet>, policy: &str, run: &FleetRun, judgement: &Judgement) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (fleet, policy, run) = (fleet.clone(), policy.to_string(), run.clone());
    let promote = match judgement {
        Judgement::Step { percent, .. } => {
            let percent = *percent;
            runtime.spawn(async move {
                if let Err(e) = fleet.step_candidate(&policy, &run.id, percent).await {
                    tracing::warn!(policy = %policy, run = %run.id, "the fleet's candidate share could not be raised in redis: {e}");
                }
            });
            return;
        }
        Judgement::Abort { .. } => false,
        Judgement::Promote { .. } => true,
    };
    runtime.spawn(async move {
        let ended = fleet.end_candidate(&policy, &run.id).await;
        let deployed = match (promote, &ended) {
            (true, Ok(true)) => fleet.deploy(&policy, &run.reference, &run.digest).await.map(drop),
            _ => Ok(()),
        };
        if let Err(e) = ended.map(drop).and(deployed) {
            tracing::warn!(policy = %policy, run = %run.id, "the fleet's candidate run could not be ended in redis: {e}");
        }
    });
}
