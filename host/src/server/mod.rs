//! The client-facing HTTP server: the listener, routes, limits, readiness, and the handlers of
//! the request path.
//!
//! The listener is bound and served before the policies load, so an orchestrator can tell a
//! live process from a ready one: a [`Gate`] holds the app once it has started. Until then, and
//! again once the process drains, `GET /readyz` answers 503 and the API answers 503 `not_ready`;
//! `GET /healthz` answers 200 whenever the process serves at all. [`serve`] runs the routes over
//! plain HTTP or TLS (HTTP/1.1 and HTTP/2, by ALPN with TLS), caps request heads, and on a
//! graceful shutdown stops accepting at once (new connections are refused) and lets in-flight
//! requests and streams finish within the drain time. Handlers live in `chat` (the request path)
//! and here (catalog, health, metrics); each loads the live snapshot once.

mod chat;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::task::TaskTracker;

use crate::api::{ApiError, Wire};
use crate::control::App;

/// What the client-facing routes serve from.
pub struct Gate {
    app: OnceLock<Arc<App>>,
    draining: AtomicBool,
    /// Set when `GET /metrics` is served on this listener too.
    metrics: Option<PrometheusHandle>,
    /// Work a request leaves behind when it is answered: a stream's log line and accounting,
    /// written when the stream ends.
    tasks: TaskTracker,
}

impl Gate {
    /// A closed gate; `metrics` also serves `GET /metrics` on the client-facing listener.
    pub fn new(metrics: Option<PrometheusHandle>) -> Arc<Self> {
        Arc::new(Self {
            app: OnceLock::new(),
            draining: AtomicBool::new(false),
            metrics,
            tasks: TaskTracker::new(),
        })
    }

    /// The app has started: serve it.
    pub fn open(&self, app: Arc<App>) {
        let _ = self.app.set(app);
    }

    /// The process is shutting down: report not ready, while in-flight requests finish.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Wait up to `limit` for the work requests left behind (see `tasks`); after a drain.
    pub async fn settle(&self, limit: Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} stream log lines were not written before exit",
                self.tasks.len()
            );
        }
    }

    fn app(&self) -> Option<&Arc<App>> {
        self.app.get()
    }

    fn readiness(&self) -> Result<(), &'static str> {
        if self.app.get().is_none() {
            Err("starting: policies are loading")
        } else if self.draining.load(Ordering::SeqCst) {
            Err("draining: shutting down")
        } else {
            Ok(())
        }
    }
}

/// The HTTP routes; `max_body_bytes` is fixed for the life of the listener.
pub fn router(gate: Arc<Gate>, max_body_bytes: usize) -> Router {
    let mut router = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(chat::messages))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if gate.metrics.is_some() {
        router = router.route("/metrics", get(metrics));
    }
    router
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(gate)
}

/// How the listener serves.
pub struct Listening {
    /// TLS, when on; reload it with [`RustlsConfig::reload_from_pem_file`].
    pub tls: Option<RustlsConfig>,
    /// Largest request head, in bytes (at least 8192).
    pub max_header_bytes: usize,
    /// Stops the server: `graceful_shutdown(Some(drain))` refuses new connections and waits
    /// for in-flight ones up to the drain time.
    pub handle: Handle<SocketAddr>,
}

/// Serve `router` on `listener` until `listening.handle` shuts it down.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    listening: Listening,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let app = router.into_make_service();
    // hyper answers 431 to a request head past these; its buffer cannot be under 8 KiB.
    let head = listening.max_header_bytes.max(8192);
    let head_list = u32::try_from(listening.max_header_bytes).unwrap_or(u32::MAX);
    match listening.tls {
        Some(tls) => {
            let mut server = axum_server::from_tcp_rustls(listener, tls)?.handle(listening.handle);
            server.http_builder().http1().max_buf_size(head);
            server
                .http_builder()
                .http2()
                .max_header_list_size(head_list);
            server.serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.handle(listening.handle);
            server.http_builder().http1().max_buf_size(head);
            server
                .http_builder()
                .http2()
                .max_header_list_size(head_list);
            server.serve(app).await
        }
    }
}

/// The answer to an API call before the app has started.
fn not_ready(wire: Wire) -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "not_ready",
        "the proxy is starting and its policies are still loading; retry shortly",
    )
    .response_for(wire);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `GET /v1/models`: the models the caller's team may use, in OpenAI's list format, or in
/// Anthropic's for a client that sends `anthropic-version` (as Anthropic's SDKs do).
async fn models(State(gate): State<Arc<Gate>>, headers: HeaderMap) -> Response {
    let wire = if headers.contains_key("anthropic-version") {
        Wire::Anthropic
    } else {
        Wire::Openai
    };
    let Some(app) = gate.app() else {
        return not_ready(wire);
    };
    let snapshot = app.snapshot();
    let team = match snapshot.team(&headers) {
        Ok(team) => team,
        Err(e) => return ApiError::from(e).response_for(wire),
    };
    if wire == Wire::Anthropic {
        let data: Vec<serde_json::Value> = team
            .catalog
            .iter()
            .map(|m| {
                serde_json::json!({
                    "type": "model",
                    "id": m.id,
                    "display_name": m.id,
                    "created_at": "1970-01-01T00:00:00Z",
                })
            })
            .collect();
        return Json(serde_json::json!({
            "data": data,
            "has_more": false,
            "first_id": team.catalog.first().map(|m| &m.id),
            "last_id": team.catalog.last().map(|m| &m.id),
        }))
        .into_response();
    }
    let data: Vec<serde_json::Value> = team
        .catalog
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id,
                "object": "model",
                "created": 0,
                "owned_by": m.provider,
                "context_window": m.context_window,
                "tags": m.tags,
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 once the config and every bound policy are loaded, 503 before that and
/// while draining.
async fn readyz(State(gate): State<Arc<Gate>>) -> Response {
    match gate.readiness() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// `GET /metrics`: Prometheus text (routed only when the gate has the handle).
async fn metrics(State(gate): State<Arc<Gate>>) -> Response {
    let text = gate.metrics.as_ref().map(PrometheusHandle::render);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text.unwrap_or_default(),
    )
        .into_response()
}
