//! The `decide` phase: the route a request is served on, and who chose it.
//!
//! A team whose budget is spent and that downgrades gets its downgrade route. Otherwise the
//! team's policy version (the one live when the request arrived) decides in a fresh sandbox, on
//! the request view and the team's catalog with its live health. Its decision counts towards
//! the version's automatic rollback; a rejection refuses the request; a failure gets the team's
//! failure behaviour (its fallback route, the requested model, or a refusal). When the decision
//! log samples the request, the decision's inputs and outcome are kept in the [`Exchange`] for
//! the `log` phase. This phase reads the snapshot; it changes nothing but the policy's counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderMap;
use tracing::Instrument;

use super::admit::Admitted;
use super::context::{Exchange, RouteBy};
use super::error::RequestError;
use super::{shadow, split};
use crate::api::Operation;
use crate::config::FailureMode;
use crate::control::{Snapshot, Team};
use crate::policy::candidate::Candidate;
use crate::policy::json::{BudgetJson, DecisionJson, DecisionRecord, ModelJson, RequestJson};
use crate::policy::{
    DecisionFailure, DecisionInput, LiveView, Model, PlannedTarget, Policy, Request, Verdict,
    input, wit,
};
use crate::telemetry::decisions::DecisionLog;
use crate::telemetry::otel;

/// The route a request is served on.
#[derive(Debug)]
pub struct Route {
    /// Tried in order.
    pub targets: Vec<PlannedTarget>,
}

/// Decide the route of `admitted`, setting who chose it and why in `exchange`.
pub async fn decide(
    snapshot: &Arc<Snapshot>,
    exchange: &mut Exchange,
    headers: &HeaderMap,
    admitted: &Admitted<'_>,
) -> Result<Route, RequestError> {
    let team = admitted.team;
    let operation = admitted.request.operation;
    if let (Some(status), Some(budget)) = (admitted.budget, &team.budget)
        && status.exhausted()
    {
        exchange.route_by = RouteBy::Budget;
        let targets = serving(&budget.downgrade, team, operation);
        if targets.is_empty() {
            exchange.reason = format!("team budget of ${:.2} spent", status.limit_usd);
            return Err(RequestError::OverBudget {
                team: team.name.to_string(),
                limit_usd: status.limit_usd,
                resets_in: status.resets_in,
            });
        }
        exchange.reason = format!("team budget of ${:.2} spent; downgraded", status.limit_usd);
        return Ok(Route { targets });
    }
    // The policy's candidate, taken once, as its live version was at admission.
    let candidate = admitted.team.policy.candidate();
    let version = split::choose(snapshot, exchange, headers, admitted, candidate.as_ref());
    let started = Instant::now();
    let verdict = run_policy(snapshot, exchange, headers, admitted, &version, candidate).await;
    exchange.decision_time = started.elapsed();
    match verdict {
        Ok(Verdict::Route { targets, reason }) => {
            exchange.route_by = RouteBy::Policy;
            exchange.reason = reason;
            Ok(Route { targets })
        }
        Ok(Verdict::Reject { status, message }) => {
            exchange.route_by = RouteBy::Rejected;
            exchange.reason = format!("the policy refused it ({})", status.as_u16());
            Err(RequestError::PolicyRejected { status, message })
        }
        Err(failure) => {
            tracing::warn!(
                request_id = %exchange.id,
                team = %team.name,
                policy = exchange.policy.as_deref().unwrap_or("-"),
                kind = failure.kind(),
                "policy failed: {failure}"
            );
            exchange.policy_failure = Some(failure.kind());
            let requested = admitted.request.model.as_deref();
            match on_failure(team, requested, operation) {
                Some((targets, by, what)) => {
                    exchange.route_by = by;
                    exchange.reason = format!("policy failed ({}); {what}", failure.kind());
                    Ok(Route { targets })
                }
                None => {
                    exchange.route_by = RouteBy::Rejected;
                    exchange.reason = format!("policy failed ({})", failure.kind());
                    Err(RequestError::PolicyFailed(failure))
                }
            }
        }
    }
}

/// Run `policy` on the request, count its outcome, keep the decision's record when the decision
/// log samples this request, and prepare the shadow `candidate`'s decision when it samples it.
async fn run_policy(
    snapshot: &Arc<Snapshot>,
    exchange: &mut Exchange,
    headers: &HeaderMap,
    admitted: &Admitted<'_>,
    policy: &Arc<Policy>,
    candidate: Option<Arc<Candidate>>,
) -> Result<Verdict, DecisionFailure> {
    let (team, request) = (admitted.team, &admitted.request);
    let now = Instant::now();
    let health = &snapshot.upstreams.health;
    let catalog = team
        .catalog_for(request.operation)
        .live(|id| health.model(id).map(|model| model.view(now)));
    let view = input::request_view(
        request,
        &exchange.id,
        headers,
        &policy.settings().headers,
        Some(&team.name),
    );
    let span = tracing::info_span!(
        target: otel::TARGET,
        "policy.decide",
        policy = %policy.version(),
        outcome = tracing::field::Empty,
    );
    let recording = Recording::start(snapshot, &exchange.id);
    let live = Recording::live(recording.as_ref(), snapshot);
    let budget = admitted.budget.map(|status| status.view());
    let verdict = policy
        .decide(DecisionInput {
            request: request.clone(),
            request_id: exchange.id.clone(),
            view: &view,
            catalog: &catalog,
            team: Some(team.name.text().clone()),
            budget,
            live: Some(live),
            operation: input::operation(request),
        })
        .instrument(span.clone())
        .await;
    span.record("outcome", outcome(&verdict));
    // A split's candidate is judged by its arm's figures, not by the live version's rollback
    // rule.
    if Arc::ptr_eq(policy, &admitted.policy) {
        team.policy.record(policy, &verdict, &exchange.id);
    }
    let shown = shadow::Shown {
        request,
        request_id: exchange.id.clone(),
        view: &view,
        catalog: &catalog,
        team: team.name.text().clone(),
        budget,
        snapshot,
    };
    exchange.shadow = shadow::job(candidate, shown, &verdict);
    if let Some(recording) = recording {
        let shown = Shown {
            view: &view,
            catalog: &catalog,
            budget,
        };
        exchange.decision_record = Some(recording.keep(admitted, policy, shown, &verdict));
    }
    verdict
}

/// A decision's outcome in one word, for its span.
fn outcome(verdict: &Result<Verdict, DecisionFailure>) -> &'static str {
    match verdict {
        Ok(Verdict::Route { .. }) => "route",
        Ok(Verdict::Reject { .. }) => "reject",
        Err(failure) => failure.kind(),
    }
}

/// What the policy was shown, for its decision's record.
struct Shown<'a> {
    view: &'a Request,
    catalog: &'a [Model],
    budget: Option<wit::Budget>,
}

/// A decision the decision log samples: its log, and the live view the policy reads through,
/// which notes the time-to-first-token figures the policy was given.
struct Recording {
    log: Arc<DecisionLog>,
    noted: Arc<Noted>,
}

impl Recording {
    /// The recording of request `id`'s decision, if the decision log samples it.
    fn start(snapshot: &Arc<Snapshot>, id: &str) -> Option<Self> {
        let log = snapshot.decision_log.as_ref()?;
        log.sampled(id).then(|| Recording {
            log: log.clone(),
            noted: Arc::new(Noted {
                live: snapshot.clone(),
                seen: Mutex::default(),
            }),
        })
    }

    /// The live view the policy reads: the snapshot's, noted when the decision is recorded.
    fn live(recording: Option<&Self>, snapshot: &Arc<Snapshot>) -> Arc<dyn LiveView> {
        match recording {
            Some(recording) => recording.noted.clone(),
            None => snapshot.clone(),
        }
    }

    /// The decision's record, its outcome still to come, with the figures the policy was given
    /// and, when the log keeps message text, the messages: for the `log` phase.
    fn keep(
        self,
        admitted: &Admitted<'_>,
        policy: &Policy,
        shown: Shown<'_>,
        verdict: &Result<Verdict, DecisionFailure>,
    ) -> (Box<DecisionRecord>, Arc<DecisionLog>) {
        let request = &admitted.request;
        let messages = self.log.config().message_text.then(|| {
            let cap = policy.settings().limits.max_message_chars as usize;
            (0..request.messages.len())
                .map(|i| request.message_text(i, cap))
                .collect()
        });
        let record = DecisionRecord {
            v: 1,
            at_ms: crate::clock::unix_millis(),
            team: admitted.team.name.to_string(),
            policy: policy.version().to_string(),
            request: RequestJson {
                operation: Some(input::operation(request).into()),
                ..RequestJson::from(shown.view)
            },
            catalog: shown.catalog.iter().map(ModelJson::from).collect(),
            budget: shown.budget.as_ref().map(BudgetJson::from),
            first_token_ms: std::mem::take(&mut *self.noted.seen.lock().expect("noted lock")),
            messages,
            decision: DecisionJson::of(verdict),
            outcome: None,
            candidate: None,
        };
        (Box::new(record), self.log)
    }
}

/// The live view of a recorded decision: the snapshot's answers, kept for the record.
struct Noted {
    live: Arc<Snapshot>,
    seen: Mutex<BTreeMap<String, f32>>,
}

impl LiveView for Noted {
    fn first_token_ms(&self, team: &str, model: &str) -> Option<f32> {
        let ms = self.live.first_token_ms(team, model)?;
        self.seen
            .lock()
            .expect("noted lock")
            .insert(model.to_string(), ms);
        Some(ms)
    }
}

/// The targets of a configured route (a fallback, a budget's downgrade) that serve `operation`:
/// an embeddings request goes only to embedding models, a chat request only to chat models.
fn serving(route: &[PlannedTarget], team: &Team, operation: Operation) -> Vec<PlannedTarget> {
    route
        .iter()
        .filter(|t| team.model(&t.model, operation).is_some())
        .cloned()
        .collect()
}

/// The route the team's failure behaviour chooses for a request of `operation`, who chose it and
/// in words; `None` refuses.
fn on_failure(
    team: &Team,
    requested: Option<&str>,
    operation: Operation,
) -> Option<(Vec<PlannedTarget>, RouteBy, &'static str)> {
    let fallback = || {
        let targets = serving(&team.fallback, team, operation);
        (!targets.is_empty()).then_some((targets, RouteBy::Fallback, "static fallback route"))
    };
    match team.on_failure {
        FailureMode::Fallback => fallback(),
        FailureMode::Requested => match requested.and_then(|id| team.model(id, operation)) {
            Some(model) => {
                let target = PlannedTarget {
                    model: model.id.clone(),
                    timeout: None,
                    max_output_tokens: None,
                };
                Some((vec![target], RouteBy::Requested, "the requested model"))
            }
            None => fallback(),
        },
        FailureMode::Reject => None,
    }
}
