//! The `admit` phase: who is asking, what they ask, and whether their team may ask it now.
//!
//! The key names the team; the body (within the body limit) is parsed once into the compact
//! [`ClientRequest`]; the team's limits (`limits`: in process, or the fleet's) refuse a team
//! whose budget is spent (unless it downgrades) or that is over a rate limit, with when to retry.
//! An admitted request holds its charge on them ([`Admission`], [`FleetCharge`]), given back if
//! it is not served. This phase reads the snapshot and the request; it charges only the team's
//! limits.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};

use super::context::Exchange;
use super::error::RequestError;
use super::limits;
use crate::api::{ApiError, ClientRequest, Operation, Wire};
use crate::control::{Admission, BudgetStatus, Snapshot, Team};
use crate::fleet::FleetCharge;
use crate::policy::Policy;

/// A request its team may send now.
pub struct Admitted<'s> {
    pub team: &'s Team,
    /// The team's live policy version when the request arrived: the one that decides it.
    pub policy: Arc<Policy>,
    pub request: Arc<ClientRequest>,
    /// Where the team stands against its budget, when it has one.
    pub budget: Option<BudgetStatus>,
    /// The rate-limit charge it holds, when the team has limits kept in this process.
    pub admission: Option<Admission>,
    /// Its charge on the limits the fleet shares, with `[state]`.
    pub fleet: Option<FleetCharge>,
    /// The prompt's size as estimated when its limits were charged; settlement charges the
    /// rest against this.
    pub estimated_input_tokens: u32,
}

/// Admit the request with `headers` and `body` for the snapshot's teams.
pub async fn admit<'s>(
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
    let held = limits::check(snapshot, team, exchange, &request).await?;
    let estimated_input_tokens = request.estimated_input_tokens();
    Ok(Admitted {
        team,
        policy,
        request,
        budget: held.budget,
        admission: held.admission,
        fleet: held.fleet,
        estimated_input_tokens,
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
