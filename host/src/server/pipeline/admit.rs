//! The `admit` phase: who is asking, what they ask, and whether their team may ask it now.
//!
//! The key names the team; the body (within the body limit) is parsed once into the compact
//! [`ClientRequest`]; a team whose budget is spent is refused (unless it downgrades); a team over a
//! rate limit is refused with when to retry. An admitted request holds its rate-limit charge
//! ([`Admission`]), given back if it is not served. This phase reads the snapshot and the
//! request; it charges only the team's rate-limit buckets.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};

use super::context::{Exchange, RouteBy};
use super::error::RequestError;
use crate::api::{ApiError, ClientRequest, Operation, Wire};
use crate::config::OverBudget;
use crate::control::{Admission, BudgetStatus, Snapshot, Team};
use crate::policy::Policy;

/// A request its team may send now.
pub struct Admitted<'s> {
    pub team: &'s Team,
    /// The team's live policy version when the request arrived: the one that decides it.
    pub policy: Arc<Policy>,
    pub request: Arc<ClientRequest>,
    /// Where the team stands against its budget, when it has one.
    pub budget: Option<BudgetStatus>,
    /// The rate-limit charge it holds, when the team has limits.
    pub admission: Option<Admission>,
}

/// Admit the request with `headers` and `body` for the snapshot's teams.
pub fn admit<'s>(
    snapshot: &'s Snapshot,
    exchange: &mut Exchange,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Admitted<'s>, RequestError> {
    let team = snapshot.team(headers)?;
    let policy = team.policy.live();
    exchange.team = Some(team.name.clone());
    exchange.policy = Some(policy.version().clone());
    let body = body.map_err(|rejection| body_error(rejection, snapshot.config.max_body_bytes))?;
    let request = match (exchange.operation, exchange.wire) {
        (Operation::Embeddings, _) => ClientRequest::parse_embeddings(body),
        (Operation::Chat, Wire::Responses) => ClientRequest::parse_responses(body),
        (Operation::Chat, wire) => ClientRequest::parse(wire, body),
    };
    let request = Arc::new(request.map_err(RequestError::Invalid)?);
    exchange.requested_model = request.model.clone();

    let budget = team.budget.as_ref().map(|b| b.status(SystemTime::now()));
    if let (Some(status), Some(b)) = (budget, &team.budget)
        && status.exhausted()
        && b.over == OverBudget::Refuse
    {
        exchange.route_by = RouteBy::Budget;
        exchange.reason = format!("team budget of ${:.2} spent", status.limit_usd);
        return Err(RequestError::OverBudget {
            team: team.name.to_string(),
            limit_usd: status.limit_usd,
            resets_in: status.resets_in,
        });
    }
    let admission = match &team.rate {
        Some(rate) => match rate.admit(Instant::now(), request.estimated_input_tokens()) {
            Ok(admission) => Some(admission),
            Err(limited) => {
                exchange.route_by = RouteBy::RateLimit;
                exchange.reason = format!("over its {}", limited.limit);
                return Err(RequestError::RateLimited {
                    team: team.name.to_string(),
                    limit: limited.limit,
                    retry_after: limited.retry_after,
                });
            }
        },
        None => None,
    };
    Ok(Admitted {
        team,
        policy,
        request,
        budget,
        admission,
    })
}

/// The client's error for a body that could not be read.
pub fn body_error(rejection: BytesRejection, max_body_bytes: usize) -> RequestError {
    RequestError::Invalid(match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than {max_body_bytes} bytes"),
        ),
        _ => ApiError::invalid(None, format!("cannot read the request body: {rejection}")),
    })
}
