//! The one context a request carries through the phases: the [`Exchange`].
//!
//! It is made when the request arrives and filled in as the phases learn things (the team,
//! the policy version, the route and who chose it, the attempts, the usage and cost, the
//! timings); the `log` phase takes it last and writes what it holds. Nothing in it is a prompt
//! or a key. [`RouteBy`] says who chose the route, or who refused the request. This module only
//! holds data; the phases decide what goes in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::shadow::{Job, UsageSender};
use crate::api::{Operation, Wire};
use crate::fleet::Fleet;
use crate::label::Label;
use crate::policy::PolicySlot;
use crate::policy::candidate::{Arm, Candidate};
use crate::policy::json::DecisionRecord;
use crate::telemetry::decisions::DecisionLog;
use crate::upstream::{Attempt, Usage};

/// Who chose the route a request was served on, or who refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteBy {
    /// Nothing chose yet: the request was refused before its team's route was looked for.
    None,
    /// The team's policy.
    Policy,
    /// The team's static fallback route, after the policy failed.
    Fallback,
    /// The model the client asked for, after the policy failed.
    Requested,
    /// The team's budget: its downgrade route, or a refusal once the budget is spent.
    Budget,
    /// The policy refused the request (or failed, with nowhere to fall back to).
    Rejected,
    /// The team's rate limit refused it.
    RateLimit,
}

impl RouteBy {
    /// The word in the log line and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Policy => "policy",
            Self::Fallback => "fallback",
            Self::Requested => "requested",
            Self::Budget => "budget",
            Self::Rejected => "rejected",
            Self::RateLimit => "rate-limit",
        }
    }

    /// The word in `x-switchyard-route`: who chose the route, or refused (a policy's refusal
    /// is `policy`); `None` before anyone did.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Rejected => Some("policy"),
            other => Some(other.name()),
        }
    }
}

/// A request's place in a split between a policy's live version and its candidate.
pub struct ArmTicket {
    pub candidate: Arc<Candidate>,
    /// The policy's slot, which applies what the candidate's figures judge.
    pub slot: Arc<PolicySlot>,
    pub arm: Arm,
    /// The fleet's state, which a fleet candidate's abort or promotion goes to.
    pub fleet: Option<Arc<Fleet>>,
}

impl std::fmt::Debug for ArmTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmTicket")
            .field("candidate", &self.candidate.version.version())
            .field("arm", &self.arm)
            .finish()
    }
}

/// What happened to one request, as the phases learn it.
#[derive(Debug)]
pub struct Exchange {
    pub id: Arc<str>,
    /// The client API it speaks, which shapes its errors.
    pub wire: Wire,
    /// What it asks for.
    pub operation: Operation,
    pub started: Instant,
    /// The caller's team, once authenticated.
    pub team: Option<Label>,
    /// The policy version in charge of the team, once known.
    pub policy: Option<Label>,
    pub requested_model: Option<String>,
    pub route_by: RouteBy,
    /// Why the route was chosen, or why the request was refused.
    pub reason: String,
    /// The kind of policy failure, when there was one.
    pub policy_failure: Option<&'static str>,
    pub decision_time: Duration,
    /// The decision's record and the log it goes to, written with the request's outcome.
    pub decision_record: Option<(Box<DecisionRecord>, Arc<DecisionLog>)>,
    pub attempts: Vec<Attempt>,
    /// The catalog model and provider that answered.
    pub served_model: Option<Label>,
    pub provider: Option<Label>,
    /// Tokens the answer reported, once known.
    pub usage: Option<Usage>,
    /// What the answer cost, in US dollars, once known.
    pub cost_usd: Option<f64>,
    /// For a stream: time from its head to its first event.
    pub first_byte: Option<Duration>,
    /// For a stream: time from the request's arrival to the first event with content.
    pub time_to_first_token: Option<Duration>,
    /// For a stream: how it ended.
    pub stream_end: Option<&'static str>,
    /// The arm of a split this request is in, whose figures its `log` phase adds to.
    pub arm: Option<ArmTicket>,
    /// The policy's candidate's decision on this request, to run once the request is forwarded.
    pub shadow: Option<Job>,
    /// Where the answer's usage goes for the shadow decision's pair, once it runs.
    pub shadow_usage: Option<UsageSender>,
    /// The status the client got.
    pub status: u16,
    /// What went wrong, for a request that ended in an error.
    pub error: Option<String>,
}

impl Exchange {
    /// A request of `wire` for `operation` arriving now, with the id from its `x-request-id` or
    /// a new one.
    pub fn new(wire: Wire, operation: Operation, headers: &HeaderMap) -> Self {
        Self {
            id: request_id(headers),
            wire,
            operation,
            started: Instant::now(),
            team: None,
            policy: None,
            requested_model: None,
            route_by: RouteBy::None,
            reason: String::new(),
            policy_failure: None,
            decision_time: Duration::ZERO,
            decision_record: None,
            attempts: Vec::new(),
            served_model: None,
            provider: None,
            usage: None,
            cost_usd: None,
            first_byte: None,
            time_to_first_token: None,
            stream_end: None,
            arm: None,
            shadow: None,
            shadow_usage: None,
            status: 0,
            error: None,
        }
    }
}

/// Header carrying the request id, taken from the client or made.
pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// The client's `x-request-id` if it is short and printable, else a new UUID.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| {
            let mut id = uuid::Uuid::encode_buffer();
            Arc::from(&*uuid::Uuid::new_v4().simple().encode_lower(&mut id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn request_ids_are_taken_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(&*request_id(&h), "abc-123");
        h.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h).len(), 32);
    }

    #[test]
    fn a_policy_refusal_is_named_policy_in_the_header_and_rejected_in_the_log() {
        assert_eq!(RouteBy::Rejected.header(), Some("policy"));
        assert_eq!(RouteBy::Rejected.name(), "rejected");
        assert_eq!(RouteBy::None.header(), None);
        assert_eq!(RouteBy::RateLimit.header(), Some("rate-limit"));
    }
}
