//! Optional trace export with OpenTelemetry (OTLP over HTTP, JSON encoding), off unless an
//! endpoint is given.
//!
//! When on, the spans the request path opens under the target [`TARGET`] (one per request, with
//! a child for the policy decision and one per upstream attempt) are batched by a background
//! thread and posted to `ENDPOINT/v1/traces`. With no endpoint, no layer listens to that
//! target and opening those spans costs a disabled-callsite check. The exporter speaks plain
//! HTTP: point it at a local collector or agent, which forwards with TLS. This module only sets
//! up the exporter; what the spans carry is decided where they are opened.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The `tracing` target of the spans that are exported.
pub const TARGET: &str = "switchyard::trace";

/// The export pipeline; [`Export::shutdown`] sends what is still batched.
pub struct Export {
    provider: SdkTracerProvider,
}

impl Export {
    /// A pipeline posting to `endpoint` (such as `http://127.0.0.1:4318`) and the layer that
    /// feeds it.
    pub fn start<S>(
        endpoint: &str,
    ) -> Result<
        (
            Self,
            tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        ),
        String,
    >
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        if !endpoint.starts_with("http://") {
            return Err(format!(
                "the OTLP endpoint {endpoint} must be an http:// URL (OTLP/HTTP to a local \
                 collector or agent; this exporter speaks neither TLS nor gRPC)"
            ));
        }
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(url)
            .build()
            .map_err(|e| format!("cannot set up OTLP export to {endpoint}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("switchyard").build())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("switchyard"));
        Ok((Self { provider }, layer))
    }

    /// Export what is batched and stop; call it outside the async runtime.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("switchyard: OTLP export did not finish: {e}");
        }
    }
}
