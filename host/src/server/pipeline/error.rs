//! Everything a request can end in short of an answer, and the one place it becomes a response.
//!
//! A phase that cannot go on returns a [`RequestError`]: it says where the fault came from (the
//! client, its key, its team's budget or rate limit, the policy, the upstreams, the fleet's
//! shared state, or a proxy that is not ready), which HTTP status tells the client the truth about it, whether a retry can help
//! and after how long. [`RequestError::into_response`] is the only place a request error is
//! turned into a response: the status, the body in the client API's error shape, `Retry-After`
//! and the routing headers. Messages never carry internals (a policy's trap, an upstream URL).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::respond::Routing;
use crate::api::{ApiError, Wire};
use crate::auth::AuthError;
use crate::fleet::FleetError;
use crate::policy::DecisionFailure;
use crate::upstream::UpstreamError;

/// Why a request got no answer from a model.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request itself is wrong: its body is too large, not JSON, or a field is invalid.
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// No valid API key.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// The team has spent its budget for this window.
    #[error(
        "team `{team}` has spent its budget of ${limit_usd:.2} for this window; it resets in {} s",
        whole_seconds(*.resets_in)
    )]
    OverBudget {
        team: String,
        limit_usd: f64,
        resets_in: Duration,
    },
    /// What the team's budget has left is reserved by its requests in flight (a fleet's shared
    /// budget); it frees as they end.
    #[error("team `{team}`'s budget left is held by its requests in flight; retry in {} s", whole_seconds(*.retry_after))]
    BudgetInFlight { team: String, retry_after: Duration },
    /// The team is over one of its rate limits.
    #[error("team `{team}` is over its {limit}; retry in {} s", whole_seconds(*.retry_after))]
    RateLimited {
        team: String,
        /// `requests_per_minute` or `tokens_per_minute`.
        limit: &'static str,
        retry_after: Duration,
    },
    /// The policy refused the request, with its status and message (escaped and capped).
    #[error("{message}")]
    PolicyRejected { status: StatusCode, message: String },
    /// The policy failed and the team's failure behaviour is to refuse.
    #[error("the routing policy failed, so the request was not served; try again")]
    PolicyFailed(DecisionFailure),
    /// Every target of the route failed before anything reached the client.
    #[error(transparent)]
    UpstreamFailed(UpstreamError),
    /// The proxy is still loading its policies.
    #[error("the proxy is starting and its policies are still loading; retry shortly")]
    NotReady,
    /// The team's shared limits could not be checked (Redis is away) and the team refuses
    /// what cannot be checked (`on_state_error = "closed"`).
    #[error("the team's limits cannot be checked right now; retry shortly")]
    StateUnavailable(FleetError),
}

/// `d` in whole seconds, rounded up, at least 1: what `Retry-After` says.
pub fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}

impl RequestError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(e) => e.status,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::OverBudget { .. } | Self::RateLimited { .. } | Self::BudgetInFlight { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::PolicyRejected { status, .. } => *status,
            Self::PolicyFailed(_) | Self::NotReady | Self::StateUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UpstreamFailed(e) => e.status(),
        }
    }

    /// When to retry, if a retry can help after a while.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::OverBudget { resets_in, .. } => Some(*resets_in),
            Self::RateLimited { retry_after, .. } | Self::BudgetInFlight { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::NotReady | Self::StateUnavailable(_) => Some(Duration::from_secs(1)),
            Self::UpstreamFailed(e) => e.retry_after(),
            Self::Invalid(_)
            | Self::Unauthenticated(_)
            | Self::PolicyRejected { .. }
            | Self::PolicyFailed(_) => None,
        }
    }

    /// Whether the same request may succeed if sent again (at once, or after
    /// [`RequestError::retry_after`]).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Invalid(_) | Self::Unauthenticated(_) | Self::PolicyRejected { .. } => false,
            Self::UpstreamFailed(e) => e.untranslatable().is_none(),
            Self::OverBudget { .. }
            | Self::RateLimited { .. }
            | Self::BudgetInFlight { .. }
            | Self::PolicyFailed(_)
            | Self::NotReady
            | Self::StateUnavailable(_) => true,
        }
    }

    /// The error as the client's API shows it.
    fn api_error(&self) -> ApiError {
        let status = self.status();
        let message = self.to_string();
        match self {
            Self::Invalid(e) => e.clone(),
            Self::Unauthenticated(e) => ApiError::from(*e),
            Self::OverBudget { .. } => {
                ApiError::new(status, "insufficient_quota", "budget_exceeded", message)
            }
            Self::BudgetInFlight { .. } => {
                ApiError::new(status, "insufficient_quota", "budget_reserved", message)
            }
            Self::RateLimited { limit, .. } => {
                let kind = if *limit == "tokens_per_minute" {
                    "tokens"
                } else {
                    "requests"
                };
                ApiError::new(status, kind, "rate_limit_exceeded", message)
            }
            Self::PolicyRejected { .. } => {
                ApiError::new(status, "invalid_request_error", "policy_rejected", message)
            }
            Self::PolicyFailed(_) => {
                ApiError::new(status, "server_error", "policy_failed", message)
            }
            Self::UpstreamFailed(e) => match e.untranslatable() {
                Some(error) => error.clone(),
                None if status == StatusCode::TOO_MANY_REQUESTS => {
                    ApiError::new(status, "requests", "upstream_rate_limited", message)
                }
                None => ApiError::new(status, "upstream_error", "upstream_unavailable", message),
            },
            Self::NotReady => ApiError::new(status, "server_error", "not_ready", message),
            Self::StateUnavailable(_) => {
                ApiError::new(status, "server_error", "state_unavailable", message)
            }
        }
    }

    /// The answer to a client of `wire`: the status, the error in that API's shape, `Retry-After`
    /// when a retry can help after a while, and the routing headers `routing` holds.
    pub fn into_response(self, wire: Wire, routing: Routing) -> Response {
        let retry_after = self.retry_after().filter(|_| self.retryable());
        let mut response = self.api_error().response_for(wire);
        let headers = response.headers_mut();
        if let Some(after) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(whole_seconds(after)));
        }
        routing.write(headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn a_rate_limited_request_gets_429_its_limit_and_when_to_retry() {
        let error = RequestError::RateLimited {
            team: "t".into(),
            limit: "tokens_per_minute",
            retry_after: Duration::from_millis(2500),
        };
        let response = error.into_response(Wire::Openai, Routing::default());
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn a_policy_failure_tells_the_client_nothing_of_the_policy() {
        let error = RequestError::PolicyFailed(DecisionFailure::Trap("secret detail".into()));
        assert!(!error.api_error().message.contains("secret"));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
