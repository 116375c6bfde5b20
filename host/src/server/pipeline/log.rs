//! The `log` phase, last for every request: its one log line, its metrics and its decision
//! record.
//!
//! It runs for every request the proxy answered, refusals and errors included, when the answer
//! is complete (for a stream, when the stream ends), and takes the [`Exchange`] by value. The line
//! holds the request id, team, policy version, who chose the route and why, the attempts, usage,
//! cost, timings and outcome; never prompt text or a key. Metric labels hold names the operator
//! configured, status codes and fixed words. A request cut short before its answer (the client
//! went away) writes no line, but its decision record still goes out, with the status 499, and
//! a split's arm counts it (`split::record`, also for every request that ends here).

use std::fmt::Write;
use std::sync::Arc;

use super::context::Exchange;
use super::shadow::Settled;
use super::split;
use crate::policy::json::DecisionRecord;
use crate::policy::json::OutcomeJson;
use crate::telemetry::decisions::DecisionLog;
use crate::telemetry::metrics::{self, AttemptResult, RequestKey, RequestSeries, TokenKind};
use crate::upstream::AttemptError;

/// Write what `exchange` holds: its line, metrics and decision record.
pub fn write(mut exchange: Exchange) {
    let latency = exchange.started.elapsed();
    record_metrics(&exchange, latency);
    let status = exchange.status;
    match exchange.shadow_usage.take() {
        // The shadow decision writes the record, with the candidate's decision beside.
        Some(shadow) => {
            let record = with_outcome(&mut exchange, status);
            let _ = shadow.send(Settled {
                usage: exchange.usage,
                record,
            });
        }
        None => write_decision(&mut exchange, status),
    }
    split::record(&mut exchange, latency);
    let mut attempts = String::new();
    for (i, a) in exchange.attempts.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        let _ = match &a.result {
            Ok(status) => write!(
                attempts,
                "{separator}{}={} in {}ms",
                a.model,
                status.as_u16(),
                a.elapsed.as_millis()
            ),
            Err(e) => write!(attempts, "{separator}{}: {e}", a.model),
        };
    }
    tracing::info!(
        target: "switchyard::request",
        request_id = %exchange.id,
        status = exchange.status,
        team = exchange.team.as_deref().unwrap_or("-"),
        policy = exchange.policy.as_deref().unwrap_or("-"),
        api = super::api_name(exchange.wire, exchange.operation),
        route_by = exchange.route_by.name(),
        requested = exchange.requested_model.as_deref().unwrap_or("-"),
        model = exchange.served_model.as_deref().unwrap_or("-"),
        reason = exchange.reason.as_str(),
        policy_failure = exchange.policy_failure.unwrap_or("-"),
        attempts = %attempts,
        input_tokens = exchange.usage.map(|u| u.input_tokens),
        output_tokens = exchange.usage.map(|u| u.output_tokens),
        cost_usd = exchange.cost_usd,
        first_byte_ms = exchange.first_byte.map(|d| d.as_secs_f64() * 1000.0),
        stream_end = exchange.stream_end,
        decision_us = exchange.decision_time.as_micros() as u64,
        latency_ms = latency.as_secs_f64() * 1000.0,
        error = exchange.error.as_deref().unwrap_or("-"),
        "request"
    );
}

impl Drop for Exchange {
    /// A request cut short before its line was written (the client went away) still has its
    /// decision recorded, with the status 499.
    /// Its split arm counts it too.
    fn drop(&mut self) {
        write_decision(self, 499);
        let latency = self.started.elapsed();
        split::record(self, latency);
    }
}

/// Write the decision record, if there is one still to write, with the request's outcome.
fn write_decision(exchange: &mut Exchange, status: u16) {
    if let Some((record, log)) = with_outcome(exchange, status) {
        log.write(*record);
    }
}

/// The decision record still to write, if any, with the request's outcome.
fn with_outcome(
    exchange: &mut Exchange,
    status: u16,
) -> Option<(Box<DecisionRecord>, Arc<DecisionLog>)> {
    let (mut record, log) = exchange.decision_record.take()?;
    record.outcome = Some(OutcomeJson {
        status,
        model: exchange.served_model.as_deref().map(String::from),
        input_tokens: exchange.usage.map(|u| u.input_tokens),
        output_tokens: exchange.usage.map(|u| u.output_tokens),
        cost_usd: exchange.cost_usd,
    });
    Some((record, log))
}

/// Record the request's metrics (see `telemetry::metrics` for the series).
fn record_metrics(exchange: &Exchange, latency: std::time::Duration) {
    let series = RequestSeries::of(RequestKey {
        team: exchange.team.as_deref().unwrap_or("-"),
        policy: exchange.policy.as_deref().unwrap_or("-"),
        model: exchange.served_model.as_deref().unwrap_or("-"),
        provider: exchange.provider.as_deref().unwrap_or("-"),
        status: exchange.status,
        route: exchange.route_by.name(),
    });
    series.requests().increment(1);
    series.duration().record(latency.as_secs_f64());
    if let Some(ttft) = exchange.time_to_first_token {
        series.first_token().record(ttft.as_secs_f64());
    }
    if let Some(policy) = &exchange.policy
        && !exchange.decision_time.is_zero()
    {
        metrics::decision_time(policy).record(exchange.decision_time.as_secs_f64());
    }
    for attempt in &exchange.attempts {
        let result = match &attempt.result {
            Ok(status) | Err(AttemptError::Status { status, .. }) => {
                AttemptResult::Status(status.as_u16())
            }
            Err(error) => AttemptResult::Failed(error.kind()),
        };
        metrics::attempts(&attempt.model, result).increment(1);
    }
    if let Some(usage) = exchange.usage {
        series
            .tokens(TokenKind::Input)
            .increment(usage.input_tokens);
        series
            .tokens(TokenKind::Output)
            .increment(usage.output_tokens);
    }
    if let Some(cost) = exchange.cost_usd {
        series.cost().increment((cost * 1e9).round() as u64);
    }
}
