//! Logs, metrics and traces: the subscriber set-up, the one line and the metrics written per
//! request (`metrics`), and the optional trace export (`otel`).
//!
//! [`init`] installs a `tracing` subscriber on stderr, human-readable (colour only on a
//! terminal) or JSON. The proxy's lines are written in batches ([`lines`]), which
//! [`Telemetry`] flushes at exit. [`RequestLog`] gathers what the request path learnt (route, attempts,
//! timings) and [`RequestLog::emit`] writes it as one structured event at the end of the request.
//! The proxy writes no prompt text and no key into a log line; a policy's own log lines and
//! reasons are its author's words, escaped and capped.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub mod decisions;
pub mod lines;
pub mod metrics;
pub mod otel;

use crate::policy::json::{DecisionRecord, OutcomeJson};
use crate::upstream::{Attempt, Usage};
use decisions::DecisionLog;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How log lines reach stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogWriter {
    /// A `write` per line: for short commands, whose lines must be out before they exit.
    Inline,
    /// In batches ([`lines::BatchedStderr`]): for the proxy, where a `write` per request would
    /// cost each request a syscall.
    Batched,
}

/// What [`init`] set up that must be shut down at exit: the trace export and the batched log
/// writer.
pub struct Telemetry {
    export: Option<otel::Export>,
    lines: Option<lines::BatchedStderr>,
}

impl Telemetry {
    /// Flush and stop the trace export, then write out the log lines still waiting.
    pub fn shutdown(self) {
        if let Some(export) = self.export {
            export.shutdown();
        }
        if let Some(lines) = self.lines {
            lines.flush();
        }
    }
}

/// Install the global subscriber: log lines on stderr at `default_level` (which `RUST_LOG`
/// overrides), written as `writer` says, and, with an `otlp_endpoint`, trace export ([`otel`]).
pub fn init(
    format: LogFormat,
    default_level: &str,
    writer: LogWriter,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_level))
        .add_directive(
            format!("{}=off", otel::TARGET)
                .parse()
                .expect("a valid directive"),
        );
    let (writer, batched) = match writer {
        LogWriter::Inline => (BoxMakeWriter::new(std::io::stderr), None),
        LogWriter::Batched => {
            let batched = lines::BatchedStderr::start(std::io::stderr)
                .map_err(|e| format!("cannot start the log writer: {e}"))?;
            (BoxMakeWriter::new(batched.clone()), Some(batched))
        }
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    let export = match otlp_endpoint {
        None => {
            registry.init();
            None
        }
        Some(endpoint) => {
            let (export, layer) = otel::Export::start(endpoint)?;
            let spans = Targets::new().with_target(otel::TARGET, tracing::Level::INFO);
            registry.with(layer.with_filter(spans)).init();
            Some(export)
        }
    };
    Ok(Telemetry {
        export,
        lines: batched,
    })
}

/// What happened to one request, written once when it ends (for a stream, when the stream
/// ends).
#[derive(Debug)]
pub struct RequestLog {
    pub request_id: Arc<str>,
    /// The caller's team, once authenticated.
    pub team: Option<Arc<str>>,
    /// The policy version that decided, once known.
    pub policy: Option<Arc<str>>,
    pub requested_model: Option<String>,
    pub served_model: Option<String>,
    /// The provider that served it.
    pub provider: Option<String>,
    /// Who chose the route: `policy`, `fallback`, `requested` or `budget`; or why there was
    /// none: `rejected` (by the policy), `budget`, `rate-limit`, or `none` (refused before).
    pub route_by: &'static str,
    pub reason: String,
    /// The kind of policy failure, when there was one.
    pub policy_failure: Option<&'static str>,
    pub attempts: Vec<Attempt>,
    /// Tokens the answer reported, when known at the end of the request.
    pub usage: Option<Usage>,
    /// What the answer cost, in US dollars.
    pub cost_usd: Option<f64>,
    /// For a stream: time from its head to its first event, and how it ended.
    pub first_byte: Option<Duration>,
    /// For a stream: time from the request's arrival to the first event with content (text
    /// or a tool call).
    pub time_to_first_token: Option<Duration>,
    pub stream_end: Option<&'static str>,
    pub status: u16,
    pub error: Option<String>,
    pub decision_time: Duration,
    pub latency: Duration,
    /// The decision's record, written to the decision log with the request's outcome.
    pub decision_record: Option<(Box<DecisionRecord>, Arc<DecisionLog>)>,
}

impl Drop for RequestLog {
    /// A request cut short before its line was written (the client went away, the drain
    /// deadline passed) still has its decision recorded, with the status 499.
    fn drop(&mut self) {
        self.write_decision(499);
    }
}

impl RequestLog {
    /// Write the decision record, if there is one still to write, with the request's outcome.
    fn write_decision(&mut self, status: u16) {
        if let Some((mut record, log)) = self.decision_record.take() {
            record.outcome = Some(OutcomeJson {
                status,
                model: self.served_model.clone(),
                input_tokens: self.usage.map(|u| u.input_tokens),
                output_tokens: self.usage.map(|u| u.output_tokens),
                cost_usd: self.cost_usd,
            });
            log.write(*record);
        }
    }

    pub fn new(request_id: Arc<str>) -> Self {
        Self {
            request_id,
            team: None,
            policy: None,
            requested_model: None,
            served_model: None,
            provider: None,
            route_by: "none",
            reason: String::new(),
            policy_failure: None,
            attempts: Vec::new(),
            usage: None,
            cost_usd: None,
            first_byte: None,
            time_to_first_token: None,
            stream_end: None,
            status: 0,
            error: None,
            decision_time: Duration::ZERO,
            latency: Duration::ZERO,
            decision_record: None,
        }
    }

    /// Write the request's log line, record its metrics, and write its decision record with the
    /// outcome, when there is one.
    pub fn emit(&mut self) {
        self::metrics::record(self);
        self.write_decision(self.status);
        let attempts: Vec<String> = self
            .attempts
            .iter()
            .map(|a| match &a.result {
                Ok(status) => format!(
                    "{}={} in {}ms",
                    a.model,
                    status.as_u16(),
                    a.elapsed.as_millis()
                ),
                Err(e) => format!("{}: {e}", a.model),
            })
            .collect();
        tracing::info!(
            target: "switchyard::request",
            request_id = %self.request_id,
            status = self.status,
            team = self.team.as_deref().unwrap_or("-"),
            policy = self.policy.as_deref().unwrap_or("-"),
            route_by = self.route_by,
            requested = self.requested_model.as_deref().unwrap_or("-"),
            model = self.served_model.as_deref().unwrap_or("-"),
            reason = self.reason.as_str(),
            policy_failure = self.policy_failure.unwrap_or("-"),
            attempts = %attempts.join(", "),
            input_tokens = self.usage.map(|u| u.input_tokens),
            output_tokens = self.usage.map(|u| u.output_tokens),
            cost_usd = self.cost_usd,
            first_byte_ms = self.first_byte.map(|d| d.as_secs_f64() * 1000.0),
            stream_end = self.stream_end,
            decision_us = self.decision_time.as_micros() as u64,
            latency_ms = self.latency.as_secs_f64() * 1000.0,
            error = self.error.as_deref().unwrap_or("-"),
            "request"
        );
    }
}
