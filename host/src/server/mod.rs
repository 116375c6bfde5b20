//! The client-facing HTTP server: routes, body limits, and the [`App`] every handler shares.
//!
//! [`App::new`] does all start-up work that can fail (compiling the policy, reading provider
//! keys) before a socket is bound, so a bad policy or config never serves a single request.
//! [`serve`] then runs the axum router on a bound listener until `shutdown` resolves, letting
//! in-flight requests finish. Handlers live in `chat` (the request path) and here (catalog and
//! health).

mod chat;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::config::{Config, Env};
use crate::policy::{self, Model, Policy, PolicyEngine, PoolSize, SandboxLimits};
use crate::upstream::{SetupError, Upstreams};

/// Start-up failed; the message names the file or provider at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Policy(#[from] policy::LoadError),
    #[error(transparent)]
    Upstream(#[from] SetupError),
}

/// Everything the request path reads; built once, then shared read-only.
pub struct App {
    pub config: Config,
    pub policy: Policy,
    /// The catalog as policies see it.
    pub catalog: Vec<Model>,
    pub upstreams: Upstreams,
}

impl App {
    /// Compile the policy and set up providers; nothing is served if this fails.
    pub fn new(config: Config, env: &dyn Env) -> Result<Self, StartError> {
        let p = &config.policy;
        let memory_bytes = p.memory_mib as usize * 1024 * 1024;
        let engine = PolicyEngine::new(PoolSize {
            instances: p.max_concurrency,
            memory_bytes,
        })?;
        let limits = SandboxLimits {
            memory_bytes,
            deadline: Duration::from_millis(p.deadline_ms),
            max_message_chars: p.max_message_chars,
        };
        let policy = engine.load(&p.name, &p.path, limits)?;
        let upstreams = Upstreams::from_config(&config, env)?;
        Ok(Self {
            catalog: policy::input::catalog(&config),
            config,
            policy,
            upstreams,
        })
    }
}

/// The HTTP routes.
pub fn router(app: Arc<App>) -> Router {
    let max_body = app.config.max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

/// Serve on `listener` until `shutdown` resolves, then let in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `GET /v1/models`: the catalog in OpenAI's list format.
async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let data: Vec<serde_json::Value> = app
        .config
        .models
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
    Json(serde_json::json!({"object": "list", "data": data}))
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}
