//! Logs, metrics and traces, as a leaf the rest of the proxy calls: the subscriber set-up, the
//! metrics' descriptions (`metrics`) and their handles resolved once per label set (`series`), the
//! decision log's writer (`decisions`) and the optional trace export (`otel`).
//!
//! [`init`] installs a `tracing` subscriber on stderr, human-readable (colour only on a
//! terminal; fields written by `fields`) or JSON. The proxy's lines are written in batches
//! ([`lines`]), which [`Telemetry`] flushes at exit. What a request's line and metrics hold is
//! the request path's (`server::pipeline`, its `log` phase). The proxy writes no prompt text and
//! no key into a log line; a policy's own log lines and reasons are its author's words, escaped
//! and capped.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub mod decisions;
mod fields;
pub mod lines;
pub mod metrics;
pub mod otel;
pub mod series;

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
        LogFormat::Text => fmt.fmt_fields(fields::LineFields).boxed(),
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
