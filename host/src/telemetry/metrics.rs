//! The proxy's metrics: their names and help texts, and the histograms' buckets. They are
//! recorded through the `metrics` facade where they happen (a request's series in the request
//! path's `log` phase, once per request); the Prometheus exporter renders them (with [`BUCKETS`]
//! for the histograms) on `GET /metrics`.
//!
//! Series: `switchyard_requests_total` (team, policy version, model, provider, status, route),
//! `switchyard_request_duration_seconds` and `switchyard_time_to_first_token_seconds` (streams)
//! by team and model, `switchyard_policy_decision_seconds` by policy version,
//! `switchyard_upstream_attempts_total` by model and result, and
//! `switchyard_tokens_total` and `switchyard_cost_nanodollars_total` by team and model. Policy
//! decisions by outcome, reloads, rollbacks and breaker states are recorded where they happen
//! (`policy`, `control`, `upstream::health`, `fleet`, the `limits` phase), the policy pool's
//! gauges when the metrics are scraped, and all are described here. Labels hold names the operator
//! configured, status codes and fixed words, never request content. The request path records
//! its series through handles resolved once per label set ([`RequestSeries`], [`decision_time`],
//! [`attempts`]; see `series`).

use std::sync::{Arc, LazyLock};

use metrics::{Counter, Histogram};

use super::series::{Handles, Series};

/// Histogram buckets, in seconds: from half a millisecond (a policy decision) to two minutes (a
/// long stream).
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// The counters and their help texts.
const COUNTERS: &[(&str, &str)] = &[
    (
        "switchyard_requests_total",
        "Requests answered, by team, policy version, served model and provider, status and who chose the route",
    ),
    (
        "switchyard_decision_log_dropped_total",
        "Decision records dropped because the decision log's queue was full (the disk too slow)",
    ),
    (
        "switchyard_upstream_attempts_total",
        "Upstream attempts, by model and result (a status code, or why it failed or was skipped)",
    ),
    (
        "switchyard_tokens_total",
        "Tokens answers reported, by team, model and kind (input or output)",
    ),
    (
        "switchyard_cost_nanodollars_total",
        "What answers cost at the catalog's prices, in billionths of a US dollar (counters are integers), by team and model",
    ),
    (
        "switchyard_policy_decisions_total",
        "Policy decisions, by policy, version and outcome (ok or the failure kind)",
    ),
    (
        "switchyard_policy_instances_total",
        "Instances policy decisions ran on (canary decisions included), by policy, version and kind: fresh (instantiated for the decision), spare (instantiated ahead of it, for it alone) or reused (reuse_instances)",
    ),
    (
        "switchyard_policy_reloads_total",
        "New policy versions, by policy, trigger (file, upload, reload) and result (live or refused)",
    ),
    (
        "switchyard_policy_rollbacks_total",
        "Policy rollbacks, by policy and trigger (automatic or admin)",
    ),
    (
        "switchyard_config_reloads_total",
        "Config reloads, by trigger and result",
    ),
    (
        "switchyard_fleet_calls_total",
        "Calls to the fleet's Redis, by result (ok, timeout, error, breaker-open)",
    ),
    (
        "switchyard_fleet_state_errors_total",
        "Requests admitted without the fleet's limits (Redis out of reach), by team and on_state_error mode",
    ),
    (
        "switchyard_shadow_decisions_total",
        "A candidate's shadow decisions compared with the live version's, by policy, candidate version and agreement (same, different, failed)",
    ),
    (
        "switchyard_shadow_dropped_total",
        "Shadow decisions not made because as many as allowed were running, by policy",
    ),
    (
        "switchyard_rollout_transitions_total",
        "Automatic transitions of a split candidate, by policy and transition (step, promote, abort)",
    ),
];

/// The histograms (all in seconds) and their help texts.
const HISTOGRAMS: &[(&str, &str)] = &[
    (
        "switchyard_request_duration_seconds",
        "Time from a request's arrival to its answer's end (a stream's last event)",
    ),
    (
        "switchyard_time_to_first_token_seconds",
        "Time from a streamed request's arrival to the upstream's first event with content (text or a tool call)",
    ),
    (
        "switchyard_policy_decision_seconds",
        "Time one policy decision took, sandbox set-up included",
    ),
];

/// The gauges and their help texts.
const GAUGES: &[(&str, &str)] = &[
    (
        "switchyard_fleet_pending_settlements",
        "Settlements of served requests waiting for the fleet's Redis to answer again",
    ),
    (
        "switchyard_fleet_live_replicas",
        "Replicas with a recent heartbeat in the fleet's Redis, as this one last counted",
    ),
    (
        "switchyard_policy_pool_slots",
        "Instance slots in the policy engine's pool ([engine] instances), shared by every policy",
    ),
    (
        "switchyard_policy_pool_slots_in_use",
        "Pool slots held when metrics were scraped: running decisions, spares, kept reused instances and spent instances not yet given back; at the pool's size, decisions wait for a slot",
    ),
    (
        "switchyard_policy_pool_resident_bytes",
        "Bytes unused pool slots keep resident (linear memories and tables) for the next instance",
    ),
    (
        "switchyard_breaker_open",
        "1 from when a model's circuit breaker opens until an attempt succeeds again (open or half-open), else 0",
    ),
];

/// Register every series' help text.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    for &(name, help) in COUNTERS {
        describe_counter!(name, help);
    }
    for &(name, help) in HISTOGRAMS {
        describe_histogram!(name, Unit::Seconds, help);
    }
    for &(name, help) in GAUGES {
        describe_gauge!(name, help);
    }
}

/// The labels of one request's series.
pub struct RequestLabels {
    team: String,
    policy: String,
    model: String,
    provider: String,
    status: u16,
    route: &'static str,
}

/// The borrowed form of [`RequestLabels`], hashed to find them.
#[derive(Hash, Clone, Copy)]
pub struct RequestKey<'a> {
    pub team: &'a str,
    pub policy: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub status: u16,
    pub route: &'static str,
}

impl RequestKey<'_> {
    fn matches(&self, labels: &RequestLabels) -> bool {
        self.status == labels.status
            && self.route == labels.route
            && self.team == labels.team
            && self.model == labels.model
            && self.policy == labels.policy
            && self.provider == labels.provider
    }

    fn owned(&self) -> RequestLabels {
        RequestLabels {
            team: self.team.to_string(),
            policy: self.policy.to_string(),
            model: self.model.to_string(),
            provider: self.provider.to_string(),
            status: self.status,
            route: self.route,
        }
    }
}

static REQUESTS: LazyLock<Series<RequestLabels>> = LazyLock::new(Series::default);
static DECISIONS: LazyLock<Series<String>> = LazyLock::new(Series::default);
static ATTEMPTS: LazyLock<Series<(String, AttemptResult)>> = LazyLock::new(Series::default);

/// The series of requests of one team, policy version, model, provider, status and route.
pub struct RequestSeries(Arc<Handles<RequestLabels>>);

impl RequestSeries {
    pub fn of(key: RequestKey<'_>) -> Self {
        Self(REQUESTS.get(&key, |l| key.matches(l), || key.owned()))
    }

    /// `switchyard_requests_total`.
    pub fn requests(&self) -> &Counter {
        self.0.counter(0, |l| {
            metrics::counter!(
                "switchyard_requests_total",
                "team" => l.team.clone(),
                "policy" => l.policy.clone(),
                "model" => l.model.clone(),
                "provider" => l.provider.clone(),
                "status" => l.status.to_string(),
                "route" => l.route,
            )
        })
    }

    /// `switchyard_request_duration_seconds`.
    pub fn duration(&self) -> &Histogram {
        self.0.histogram(0, |l| {
            metrics::histogram!(
                "switchyard_request_duration_seconds",
                "team" => l.team.clone(),
                "model" => l.model.clone(),
            )
        })
    }

    /// `switchyard_time_to_first_token_seconds`.
    pub fn first_token(&self) -> &Histogram {
        self.0.histogram(1, |l| {
            metrics::histogram!(
                "switchyard_time_to_first_token_seconds",
                "team" => l.team.clone(),
                "model" => l.model.clone(),
            )
        })
    }

    /// `switchyard_tokens_total` of `kind` (`input` or `output`).
    pub fn tokens(&self, kind: TokenKind) -> &Counter {
        let (slot, word) = match kind {
            TokenKind::Input => (1, "input"),
            TokenKind::Output => (2, "output"),
        };
        self.0.counter(slot, |l| {
            metrics::counter!(
                "switchyard_tokens_total",
                "team" => l.team.clone(),
                "model" => l.model.clone(),
                "kind" => word,
            )
        })
    }

    /// `switchyard_cost_nanodollars_total`.
    pub fn cost(&self) -> &Counter {
        self.0.counter(3, |l| {
            metrics::counter!(
                "switchyard_cost_nanodollars_total",
                "team" => l.team.clone(),
                "model" => l.model.clone(),
            )
        })
    }
}

/// Which tokens a `switchyard_tokens_total` series counts.
#[derive(Debug, Clone, Copy)]
pub enum TokenKind {
    Input,
    Output,
}

/// `switchyard_policy_decision_seconds` of policy version `policy`.
pub fn decision_time(policy: &str) -> Histogram {
    let handles = DECISIONS.get(policy, |l| l == policy, || policy.to_string());
    handles
        .histogram(0, |policy| {
            metrics::histogram!("switchyard_policy_decision_seconds", "policy" => policy.clone())
        })
        .clone()
}

/// What an upstream attempt came to, as `switchyard_upstream_attempts_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    /// The upstream answered with this status.
    Status(u16),
    /// It failed before a status, for this reason (`connect`, `timeout`...).
    Failed(&'static str),
}

/// `switchyard_upstream_attempts_total` of `model` with `result`.
pub fn attempts(model: &str, result: AttemptResult) -> Counter {
    let handles = ATTEMPTS.get(
        &(model, result),
        |(m, r)| m == model && *r == result,
        || (model.to_string(), result),
    );
    handles
        .counter(0, |(model, result)| {
            let result = match result {
                AttemptResult::Status(code) => code.to_string(),
                AttemptResult::Failed(kind) => kind.to_string(),
            };
            metrics::counter!(
                "switchyard_upstream_attempts_total",
                "model" => model.clone(),
                "result" => result,
            )
        })
        .clone()
}
