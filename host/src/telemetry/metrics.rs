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
//! (`policy`, `control`, `upstream::health`, `fleet`, the `limits` phase) and described here. Labels hold names the operator
//! configured, status codes and fixed words, never request content.

/// Histogram buckets, in seconds: from half a millisecond (a policy decision) to two minutes (a
/// long stream).
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// Register every series' help text.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "switchyard_requests_total",
        "Requests answered, by team, policy version, served model and provider, status and who chose the route"
    );
    describe_counter!(
        "switchyard_decision_log_dropped_total",
        "Decision records dropped because the decision log's queue was full (the disk too slow)"
    );
    describe_histogram!(
        "switchyard_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from a request's arrival to its answer's end (a stream's last event)"
    );
    describe_histogram!(
        "switchyard_time_to_first_token_seconds",
        metrics::Unit::Seconds,
        "Time from a streamed request's arrival to the upstream's first event with content (text or a tool call)"
    );
    describe_histogram!(
        "switchyard_policy_decision_seconds",
        metrics::Unit::Seconds,
        "Time one policy decision took, sandbox set-up included"
    );
    describe_counter!(
        "switchyard_upstream_attempts_total",
        "Upstream attempts, by model and result (a status code, or why it failed or was skipped)"
    );
    describe_counter!(
        "switchyard_tokens_total",
        "Tokens answers reported, by team, model and kind (input or output)"
    );
    describe_counter!(
        "switchyard_cost_nanodollars_total",
        "What answers cost at the catalog's prices, in billionths of a US dollar (counters are integers), by team and model"
    );
    describe_counter!(
        "switchyard_policy_decisions_total",
        "Policy decisions, by policy, version and outcome (ok or the failure kind)"
    );
    describe_counter!(
        "switchyard_policy_reloads_total",
        "New policy versions, by policy, trigger (file, upload, reload) and result (live or refused)"
    );
    describe_counter!(
        "switchyard_policy_rollbacks_total",
        "Policy rollbacks, by policy and trigger (automatic or admin)"
    );
    describe_counter!(
        "switchyard_config_reloads_total",
        "Config reloads, by trigger and result"
    );
    describe_counter!(
        "switchyard_fleet_calls_total",
        "Calls to the fleet's Redis, by result (ok, timeout, error, breaker-open)"
    );
    describe_gauge!(
        "switchyard_fleet_pending_settlements",
        "Settlements of served requests waiting for the fleet's Redis to answer again"
    );
    describe_gauge!(
        "switchyard_fleet_live_replicas",
        "Replicas with a recent heartbeat in the fleet's Redis, as this one last counted"
    );
    describe_counter!(
        "switchyard_fleet_state_errors_total",
        "Requests admitted without the fleet's limits (Redis out of reach), by team and on_state_error mode"
    );
    describe_counter!(
        "switchyard_shadow_decisions_total",
        "A candidate's shadow decisions compared with the live version's, by policy, candidate version and agreement (same, different, failed)"
    );
    describe_counter!(
        "switchyard_shadow_dropped_total",
        "Shadow decisions not made because as many as allowed were running, by policy"
    );
    describe_counter!(
        "switchyard_rollout_transitions_total",
        "Automatic transitions of a split candidate, by policy and transition (step, promote, abort)"
    );
    describe_gauge!(
        "switchyard_breaker_open",
        "1 from when a model's circuit breaker opens until an attempt succeeds again (open or half-open), else 0"
    );
}
