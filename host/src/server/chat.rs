//! `POST /v1/chat/completions` and `POST /v1/messages`: the request path, in order.
//!
//! The two routes differ only in the client API they speak ([`Wire`]): the request is parsed in
//! it, the answer is translated into it when the upstream speaks the other, and every error the
//! client sees is shaped as that API shapes errors. Then, for both:
//! body limit -> authenticate (key -> team) -> parse ([`ChatRequest`]) -> the team's live policy
//! version decides in a fresh sandbox -> on a policy failure, the team's failure behaviour ->
//! upstream attempts -> response with the routing headers -> one log line. Each step only reads
//! what the steps before it produced, and the whole request runs on the snapshot it started with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{Gate, not_ready};
use crate::api::{ApiError, ChatRequest, Wire};
use crate::config::{FailureMode, OverBudget};
use crate::control::{self, Admission, App, Snapshot, Team};
use crate::policy::json::{BudgetJson, DecisionJson, DecisionRecord, ModelJson, RequestJson};
use crate::policy::wit::Budget;
use crate::policy::{
    DecisionFailure, DecisionInput, LiveView, PlannedTarget, Policy, Verdict, input,
};
use crate::telemetry::{RequestLog, otel};
use crate::upstream::stream::StreamSummary;
use crate::upstream::{Prices, Usage};

/// Header naming the catalog model that answered.
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-switchyard-model");
/// Header naming the provider that answered.
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-switchyard-provider");
/// Header with the policy name and short version.
pub const POLICY_HEADER: HeaderName = HeaderName::from_static("x-switchyard-policy");
/// Header with the policy's reason (or why the failure behaviour chose the route).
pub const REASON_HEADER: HeaderName = HeaderName::from_static("x-switchyard-reason");
/// Header saying who chose the route: `policy`, `fallback` or `requested`.
pub const ROUTE_HEADER: HeaderName = HeaderName::from_static("x-switchyard-route");
/// Header with what a non-streamed answer cost at the catalog's prices, in US dollars.
pub const COST_HEADER: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");
/// Header naming the caller's team.
pub const TEAM_HEADER: HeaderName = HeaderName::from_static("x-switchyard-team");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `POST /v1/chat/completions`, OpenAI's API.
pub async fn chat_completions(
    State(gate): State<Arc<Gate>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match gate.app() {
        Some(app) => serve_chat(app, &gate.tasks, Wire::Openai, headers, body).await,
        None => not_ready(Wire::Openai),
    }
}

/// `POST /v1/messages`, Anthropic's API.
pub async fn messages(
    State(gate): State<Arc<Gate>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match gate.app() {
        Some(app) => serve_chat(app, &gate.tasks, Wire::Anthropic, headers, body).await,
        None => not_ready(Wire::Anthropic),
    }
}

async fn serve_chat(
    app: &App,
    tasks: &TaskTracker,
    wire: Wire,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let request_id = request_id(&headers);
    let mut log = RequestLog::new(request_id.clone());
    let mut stream = None;
    let span = tracing::info_span!(
        target: otel::TARGET,
        "request",
        request_id = %request_id,
        api = match wire {
            Wire::Openai => "openai-chat",
            Wire::Anthropic => "anthropic-messages",
        },
        team = tracing::field::Empty,
        model = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let handled = handle(
        app,
        wire,
        &headers,
        body,
        &request_id,
        &mut log,
        &mut stream,
    )
    .instrument(span.clone())
    .await;
    let mut response = match handled {
        Ok(response) => response,
        Err(error) => {
            log.error = Some(error.message.clone());
            error.response_for(wire)
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    log.status = response.status().as_u16();
    span.record("status", log.status);
    if let Some(team) = &log.team {
        span.record("team", &**team);
    }
    if let Some(model) = &log.served_model {
        span.record("model", model.as_str());
    }
    match stream {
        // A stream's line is written when it ends, with its usage and how it ended.
        Some(pending) => {
            tasks.spawn(async move {
                if let Ok(summary) = pending.end.await {
                    log.stream_end = Some(summary.end.name());
                    log.first_byte = summary.first_byte;
                    log.time_to_first_token = summary
                        .first_token_at
                        .map(|at| at.saturating_duration_since(started));
                    log.usage = summary.usage;
                    log.cost_usd = summary.usage.map(|u| u.cost(pending.prices));
                    if let (Some(rate), Some(usage)) = (&pending.rate, summary.usage) {
                        rate.settle(
                            Instant::now(),
                            usage.input_tokens + usage.output_tokens,
                            pending.estimated_input_tokens,
                        );
                    }
                    if let Some(budget) = pending.budget {
                        // A stream that ended before its usage came (the client went away, the
                        // upstream broke off) is charged at least for the prompt, as estimated.
                        let cost = log.cost_usd.unwrap_or_else(|| {
                            let prompt = Usage {
                                input_tokens: pending.estimated_input_tokens.into(),
                                output_tokens: 0,
                            };
                            prompt.cost(pending.prices)
                        });
                        budget.record(SystemTime::now(), cost);
                    }
                }
                log.latency = started.elapsed();
                log.emit();
            });
        }
        None => {
            log.latency = started.elapsed();
            log.emit();
        }
    }
    response
}

/// What is needed to account for a streamed answer when it ends.
struct PendingStream {
    /// Its summary, sent when it ends.
    end: oneshot::Receiver<StreamSummary>,
    /// The prices to cost it at.
    prices: Prices,
    /// The team budget to charge.
    budget: Option<Arc<control::Budget>>,
    /// The team's rate limits, to settle the tokens with.
    rate: Option<Arc<control::RateLimit>>,
    /// What to charge for when no usage came.
    estimated_input_tokens: u32,
}

async fn handle(
    app: &App,
    wire: Wire,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    request_id: &Arc<str>,
    log: &mut RequestLog,
    stream: &mut Option<PendingStream>,
) -> Result<Response, ApiError> {
    let snapshot = app.snapshot();
    let team = snapshot.team(headers)?;
    log.team = Some(team.name.clone());
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!(
                "the request body is larger than {} bytes",
                snapshot.config.max_body_bytes
            ),
        ),
        _ => ApiError::invalid(None, format!("cannot read the request body: {rejection}")),
    })?;
    let request = Arc::new(ChatRequest::parse(wire, body)?);
    log.requested_model = request.model.clone();

    let policy = team.policy.live();
    log.policy = Some(policy.version().clone());
    let version = policy.version().clone();
    let budget = team
        .budget
        .as_ref()
        .map(|b| (b, b.status(SystemTime::now())));
    if let Some((b, status)) = budget
        && status.exhausted()
        && b.over == OverBudget::Refuse
    {
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "budget_exceeded",
            format!(
                "team `{}` has spent its budget of ${:.2} for this window; it resets in {} s",
                team.name,
                status.limit_usd,
                status.resets_in.as_secs_f64().ceil()
            ),
        );
        let mut response = refused(error, wire, team, &version, "budget", log);
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header_value(&status.resets_in.as_secs_f64().ceil().to_string()),
        );
        return Ok(response);
    }
    // Taken back when the request is not served (dropped before `served`).
    let estimated_input_tokens = request.estimated_input_tokens();
    let admission = match &team.rate {
        Some(rate) => match rate.admit(Instant::now(), estimated_input_tokens) {
            Ok(admission) => Some(admission),
            Err(limited) => {
                let wait = limited.retry_after.as_secs_f64().ceil().max(1.0);
                let error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    if limited.limit == "tokens_per_minute" {
                        "tokens"
                    } else {
                        "requests"
                    },
                    "rate_limit_exceeded",
                    format!(
                        "team `{}` is over its {}; retry in {wait} s",
                        team.name, limited.limit
                    ),
                );
                let mut response = refused(error, wire, team, &version, "rate-limit", log);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header_value(&wait.to_string()));
                return Ok(response);
            }
        },
        None => None,
    };
    let (targets, reason, route_by) = match budget {
        Some((b, status)) if status.exhausted() => (
            b.downgrade.clone(),
            format!("team budget of ${:.2} spent; downgraded", status.limit_usd),
            "budget",
        ),
        budget => {
            let budget = budget.map(|(_, status)| input::budget_view(&status));
            let decided = Instant::now();
            let call = Call {
                snapshot: &snapshot,
                wire,
                team,
                headers,
                request_id,
            };
            let routed = route_by_policy(&call, &policy, &request, budget, log).await;
            log.decision_time = decided.elapsed();
            match routed {
                Ok(route) => route,
                Err(response) => return Ok(response),
            }
        }
    };
    log.route_by = route_by;
    log.reason = reason;

    let served = match snapshot
        .upstreams
        .serve(&targets, &request, request_id)
        .await
    {
        Ok(mut served) => {
            log.attempts = std::mem::take(&mut served.attempts);
            served
        }
        Err(failed) => {
            let error = match failed.untranslatable() {
                Some(error) => error.clone(),
                None => ApiError::new(
                    failed.status(),
                    "upstream_error",
                    "upstream_unavailable",
                    failed.to_string(),
                ),
            };
            // Every target skipped (breakers open, providers full): worth a retry soon.
            let skipped = error.status == StatusCode::SERVICE_UNAVAILABLE;
            log.error = Some(error.message.clone());
            log.attempts = failed.attempts;
            let mut response = error.response_for(wire);
            if skipped {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            return Ok(response);
        }
    };
    log.served_model = Some(served.model.clone());
    log.provider = Some(served.provider.clone());
    log.usage = served.usage;
    log.cost_usd = served.usage.map(|u| u.cost(served.prices));
    if let (Some(budget), Some(cost)) = (&team.budget, log.cost_usd) {
        budget.record(SystemTime::now(), cost);
    }
    let rate = admission.map(Admission::served);
    if let (Some(rate), Some(usage)) = (&rate, served.usage) {
        rate.settle(
            Instant::now(),
            usage.input_tokens + usage.output_tokens,
            estimated_input_tokens,
        );
    }
    *stream = served.stream_end.map(|end| PendingStream {
        end,
        prices: served.prices,
        budget: team.budget.clone(),
        rate,
        estimated_input_tokens,
    });

    let mut response = Response::new(served.body);
    *response.status_mut() = served.status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, served.content_type);
    if request.stream {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if let Some(cost) = log.cost_usd {
        h.insert(COST_HEADER, header_value(&format!("{cost:.8}")));
    }
    routing_headers(
        h,
        team,
        &version,
        Some(&served.model),
        Some(&served.provider),
        route_by,
        Some(&log.reason),
    );
    Ok(response)
}

/// The route the team's policy decides for `request`, or the team's failure behaviour when the
/// policy fails; `Err` is the answer to a request that is not served.
async fn route_by_policy(
    call: &Call<'_>,
    policy: &Arc<Policy>,
    request: &Arc<ChatRequest>,
    budget: Option<Budget>,
    log: &mut RequestLog,
) -> Result<(Vec<PlannedTarget>, String, &'static str), Response> {
    let Call {
        snapshot,
        wire,
        team,
        headers,
        request_id,
    } = *call;
    let catalog = snapshot.upstreams.health.live_catalog(&team.catalog);
    let view = input::request_view(
        request,
        request_id,
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
    let recording = snapshot
        .decision_log
        .as_ref()
        .filter(|decisions| decisions.sampled(request_id));
    // A recorded decision keeps the time-to-first-token figures the policy was given.
    let noted = recording.map(|_| {
        Arc::new(Noted {
            live: snapshot.clone(),
            seen: Mutex::default(),
        })
    });
    let live: Arc<dyn LiveView> = match &noted {
        Some(noted) => noted.clone(),
        None => snapshot.clone(),
    };
    let verdict = policy
        .decide(DecisionInput {
            request: request.clone(),
            request_id: request_id.clone(),
            view: &view,
            catalog: &catalog,
            team: Some(team.name.clone()),
            budget,
            live: Some(live),
        })
        .instrument(span.clone())
        .await;
    span.record(
        "outcome",
        match &verdict {
            Ok(Verdict::Route { .. }) => "route",
            Ok(Verdict::Reject { .. }) => "reject",
            Err(failure) => failure.kind(),
        },
    );
    team.policy.record(policy, &verdict, request_id);
    if let (Some(decisions), Some(noted)) = (recording, noted) {
        let messages = decisions.config().message_text.then(|| {
            let cap = policy.settings().limits.max_message_chars as usize;
            (0..request.messages.len())
                .map(|i| request.message_text(i, cap))
                .collect()
        });
        let first_token_ms = std::mem::take(&mut *noted.seen.lock().expect("noted lock"));
        let record = DecisionRecord {
            v: 1,
            at_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            team: team.name.to_string(),
            policy: policy.version().to_string(),
            request: RequestJson::from(&view),
            catalog: catalog.iter().map(ModelJson::from).collect(),
            budget: budget.as_ref().map(BudgetJson::from),
            first_token_ms,
            messages,
            decision: DecisionJson::of(&verdict),
            outcome: None,
        };
        log.decision_record = Some((Box::new(record), decisions.clone()));
    }

    let version = policy.version();
    match verdict {
        Ok(Verdict::Route { targets, reason }) => Ok((targets, reason, "policy")),
        Ok(Verdict::Reject { status, message }) => {
            let error = ApiError::new(status, "invalid_request_error", "policy_rejected", message);
            Err(refused(error, wire, team, version, "policy", log))
        }
        Err(failure) => {
            tracing::warn!(
                request_id = %request_id,
                team = %team.name,
                policy = %version,
                kind = failure.kind(),
                "policy failed: {failure}"
            );
            log.policy_failure = Some(failure.kind());
            match on_failure(team, &failure, request.model.as_deref()) {
                Some(route) => Ok(route),
                None => {
                    let error = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "policy_failed",
                        "the routing policy failed, so the request was not served; try again",
                    );
                    Err(refused(error, wire, team, version, "policy", log))
                }
            }
        }
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

/// Who is asking, over which API: what the steps after authentication share.
#[derive(Clone, Copy)]
struct Call<'a> {
    snapshot: &'a Arc<Snapshot>,
    wire: Wire,
    team: &'a Team,
    headers: &'a HeaderMap,
    request_id: &'a Arc<str>,
}

/// The answer to a request that is not served: `error`, with the team and policy headers and
/// who refused it (`policy`, `budget` or `rate-limit`) in `x-switchyard-route`.
fn refused(
    error: ApiError,
    wire: Wire,
    team: &Team,
    policy: &str,
    by: &'static str,
    log: &mut RequestLog,
) -> Response {
    log.route_by = if by == "policy" { "rejected" } else { by };
    let mut response = error.response_for(wire);
    routing_headers(response.headers_mut(), team, policy, None, None, by, None);
    response
}

/// The route the team's failure behaviour chooses, as (targets, reason, who chose it); `None`
/// means the request is refused.
fn on_failure(
    team: &Team,
    failure: &DecisionFailure,
    requested: Option<&str>,
) -> Option<(Vec<PlannedTarget>, String, &'static str)> {
    let kind = failure.kind();
    let fallback = || {
        (!team.fallback.is_empty()).then(|| {
            (
                team.fallback.clone(),
                format!("policy failed ({kind}); static fallback route"),
                "fallback",
            )
        })
    };
    match team.on_failure {
        FailureMode::Fallback => fallback(),
        FailureMode::Requested => match requested.and_then(|id| team.model(id)) {
            Some(model) => Some((
                vec![PlannedTarget {
                    model: model.id.clone(),
                    timeout: None,
                    max_output_tokens: None,
                }],
                format!("policy failed ({kind}); the requested model"),
                "requested",
            )),
            None => fallback(),
        },
        FailureMode::Reject => None,
    }
}

fn routing_headers(
    h: &mut HeaderMap,
    team: &Team,
    policy: &str,
    model: Option<&str>,
    provider: Option<&str>,
    route_by: &'static str,
    reason: Option<&str>,
) {
    let mut set = |name: HeaderName, value: &str| {
        h.insert(name, header_value(value));
    };
    set(TEAM_HEADER, &team.name);
    set(POLICY_HEADER, policy);
    set(ROUTE_HEADER, route_by);
    if let Some(model) = model {
        set(MODEL_HEADER, model);
    }
    if let Some(provider) = provider {
        set(PROVIDER_HEADER, provider);
    }
    if let Some(reason) = reason {
        set(REASON_HEADER, reason);
    }
}

/// A header value from arbitrary text: characters that HTTP headers cannot carry become `?`.
fn header_value(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static("?"))
}

/// The client's `x-request-id` if it is short and printable, else a new UUID.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().simple().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_carry_only_printable_ascii() {
        assert_eq!(header_value("cheap: simple prompt"), "cheap: simple prompt");
        assert_eq!(header_value("naïve\r\nx"), "na?ve??x");
    }

    #[test]
    fn request_ids_are_taken_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(&*request_id(&h), "abc-123");
        h.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h).len(), 32);
    }
}
