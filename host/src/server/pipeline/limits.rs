//! The team's limits at admission (part of `admit`): its budget and its rate limits, kept in this
//! process, or shared by the fleet through Redis when `[state]` is set.
//!
//! In process, a spent budget refuses (unless the team downgrades) and a rate limit refuses with
//! when to retry; an admitted request holds its rate-limit charge ([`Admission`]). Across the
//! fleet, one script call does both and reserves the request's largest possible cost (its
//! estimated prompt and output cap at the team's dearest prices), which settlement replaces by
//! the real cost; the request holds a [`FleetCharge`]. A budget whose rest is held by requests
//! in flight refuses with a short `Retry-After`, not until the window ends. When Redis cannot be reached in time, the
//! team's `on_state_error` decides: `closed` refuses with a 503, `open` serves without limits,
//! `local` enforces this replica's share (each limit divided by the live replicas); the usage of
//! what is served is settled in Redis once it is back.

use std::time::{Duration, Instant, SystemTime};

use super::context::{Exchange, RouteBy};
use super::error::RequestError;
use crate::api::ClientRequest;
use crate::api::translate::DEFAULT_MAX_TOKENS;
use crate::config::{OnStateError, OverBudget};
use crate::control::{Admission, BudgetStatus, Snapshot, Team};
use crate::fleet::{Ask, BudgetAsk, Fleet, FleetCharge, FleetError, Verdict, micros};

/// A budget's window now: its number and length, and the time left in it ([`Budget::window`]).
///
/// [`Budget::window`]: crate::control::Budget::window
type Window = ((u64, Duration), Duration);

/// What an admitted request holds against its team's limits.
#[derive(Default)]
pub struct Held {
    /// Where the team stands against its budget, when it has one.
    pub budget: Option<BudgetStatus>,
    /// Its charge on in-process rate limits.
    pub admission: Option<Admission>,
    /// Its charge on the fleet's shared limits.
    pub fleet: Option<FleetCharge>,
}

/// Check `request` against its team's limits.
pub async fn check(
    snapshot: &Snapshot,
    team: &Team,
    exchange: &mut Exchange,
    request: &ClientRequest,
) -> Result<Held, RequestError> {
    match &snapshot.fleet {
        Some(fleet) if team.budget.is_some() || team.rate.is_some() => {
            shared(fleet, team, exchange, request).await
        }
        _ => local(team, exchange, request, None),
    }
}

/// The limits kept in this process; with `replicas`, this replica's share of them.
fn local(
    team: &Team,
    exchange: &mut Exchange,
    request: &ClientRequest,
    replicas: Option<u32>,
) -> Result<Held, RequestError> {
    let now = SystemTime::now();
    let budget = team.budget.as_ref().map(|b| match replicas {
        Some(replicas) => b.share(now, replicas),
        None => b.status(now),
    });
    if let (Some(status), Some(b)) = (budget, &team.budget)
        && status.exhausted()
        && b.over == OverBudget::Refuse
    {
        return Err(over_budget(team, exchange, status));
    }
    let rate = match replicas {
        Some(replicas) => team.rate_share(replicas),
        None => team.rate.clone(),
    };
    let admission = match rate {
        Some(rate) => match rate.admit(Instant::now(), request.estimated_input_tokens()) {
            Ok(admission) => Some(admission),
            Err(limited) => {
                return Err(rate_limited(
                    team,
                    exchange,
                    limited.limit,
                    limited.retry_after,
                ));
            }
        },
        None => None,
    };
    Ok(Held {
        budget,
        admission,
        fleet: None,
    })
}

fn over_budget(team: &Team, exchange: &mut Exchange, status: BudgetStatus) -> RequestError {
    exchange.route_by = RouteBy::Budget;
    exchange.reason = format!("team budget of ${:.2} spent", status.limit_usd);
    RequestError::OverBudget {
        team: team.name.to_string(),
        limit_usd: status.limit_usd,
        resets_in: status.resets_in,
    }
}

fn rate_limited(
    team: &Team,
    exchange: &mut Exchange,
    limit: &'static str,
    retry_after: std::time::Duration,
) -> RequestError {
    exchange.route_by = RouteBy::RateLimit;
    exchange.reason = format!("over its {limit}");
    RequestError::RateLimited {
        team: team.name.to_string(),
        limit,
        retry_after,
    }
}

/// The most `request` can cost at the team's dearest prices: its estimated prompt, and its
/// output cap (or the default cap).
fn largest_cost(team: &Team, request: &ClientRequest) -> f64 {
    let catalog = team.catalog_for(request.operation);
    let dearest =
        |price: fn(&crate::policy::Model) -> f64| catalog.iter().map(price).fold(0.0, f64::max);
    let input = f64::from(request.estimated_input_tokens());
    let output = f64::from(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
    (input * dearest(|m| m.input_cost_per_mtok) + output * dearest(|m| m.output_cost_per_mtok))
        / 1e6
}

/// The limits shared by the fleet.
async fn shared(
    fleet: &std::sync::Arc<Fleet>,
    team: &Team,
    exchange: &mut Exchange,
    request: &ClientRequest,
) -> Result<Held, RequestError> {
    let window = team.budget.as_ref().map(|b| b.window(SystemTime::now()));
    // The fleet's own id for the request: a client's `x-request-id` may repeat, and the charge
    // is settled once per id.
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let ask = fleet_ask(team, request, request_id.clone(), window);
    let charge = |in_redis| {
        FleetCharge::new(
            fleet.clone(),
            &team.name,
            &request_id,
            window.map(|w| w.0),
            (ask.requests_per_minute, ask.tokens_per_minute),
            ask.estimated_tokens,
            in_redis,
        )
    };
    let status = |spent, exhausted| budget_status(team, window, spent, exhausted);
    match fleet.admit(&ask).await {
        Ok(Verdict::Admitted { spent, .. }) => Ok(Held {
            budget: status(spent, false),
            admission: None,
            fleet: Some(charge(true)),
        }),
        Ok(Verdict::OverBudgetAdmitted { spent, .. }) => Ok(Held {
            budget: status(spent, true),
            admission: None,
            fleet: Some(charge(true)),
        }),
        Ok(Verdict::Limited { limit, retry_after }) => {
            Err(rate_limited(team, exchange, limit, retry_after))
        }
        Ok(Verdict::OverBudget { spent, .. }) => {
            let status = status(spent, true).expect("a budget refused it");
            Err(over_budget(team, exchange, status))
        }
        Ok(Verdict::Reserved { .. }) => {
            exchange.route_by = RouteBy::Budget;
            exchange.reason = "team budget held by requests in flight".into();
            Err(RequestError::BudgetInFlight {
                team: team.name.to_string(),
                retry_after: std::time::Duration::from_secs(1),
            })
        }
        Err(error) => state_unavailable(fleet, team, exchange, request, error, charge),
    }
}

/// What the fleet is asked for `request` (`request_id`) of `team`, in the budget's `window`.
fn fleet_ask(
    team: &Team,
    request: &ClientRequest,
    request_id: String,
    window: Option<Window>,
) -> Ask {
    let limits = team.rate.as_ref().map(|r| r.config());
    Ask {
        team: team.name.to_string(),
        request_id,
        requests_per_minute: limits.and_then(|l| l.requests_per_minute),
        tokens_per_minute: limits.and_then(|l| l.tokens_per_minute),
        estimated_tokens: request.estimated_input_tokens(),
        budget: team
            .budget
            .as_ref()
            .zip(window)
            .map(|(b, (window, _))| BudgetAsk {
                limit_micros: micros(b.limit_usd()),
                window,
                reserve_micros: micros(largest_cost(team, request)),
                downgrades: b.over == OverBudget::Downgrade,
            }),
    }
}

/// Where `team` stands against its budget, if it has one, having `spent` micro-dollars of it in
/// `window` (all of it when `exhausted`).
fn budget_status(
    team: &Team,
    window: Option<Window>,
    spent: u64,
    exhausted: bool,
) -> Option<BudgetStatus> {
    let spent_usd = spent as f64 / 1e6;
    team.budget
        .as_ref()
        .zip(window)
        .map(|(b, (_, resets_in))| BudgetStatus {
            limit_usd: b.limit_usd(),
            spent_usd: if exhausted {
                b.limit_usd().max(spent_usd)
            } else {
                spent_usd
            },
            resets_in,
        })
}

/// The fleet's limits could not be checked (`error`): the team's `on_state_error` decides, and
/// what is served is charged by `charge` once the fleet's state is back.
fn state_unavailable(
    fleet: &Fleet,
    team: &Team,
    exchange: &mut Exchange,
    request: &ClientRequest,
    error: FleetError,
    charge: impl Fn(bool) -> FleetCharge,
) -> Result<Held, RequestError> {
    tracing::warn!(request_id = %exchange.id, team = %team.name, mode = ?team.on_state_error, "the fleet's limits could not be checked: {error}");
    let mode = match team.on_state_error {
        OnStateError::Closed => "closed",
        OnStateError::Open => "open",
        OnStateError::Local => "local",
    };
    metrics::counter!("switchyard_fleet_state_errors_total", "team" => team.name.to_string(), "mode" => mode)
        .increment(1);
    match team.on_state_error {
        OnStateError::Closed => Err(RequestError::StateUnavailable(error)),
        OnStateError::Open => Ok(Held {
            budget: None,
            admission: None,
            fleet: Some(charge(false)),
        }),
        OnStateError::Local => {
            let mut held = local(team, exchange, request, Some(fleet.live_replicas()))?;
            held.fleet = Some(charge(false));
            Ok(held)
        }
    }
}
