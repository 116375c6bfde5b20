//! The client-facing HTTP server: routes, body limits, and the handlers of the request path.
//!
//! [`router`] builds the axum routes over a shared [`App`]; [`serve`] runs them on a bound listener
//! until `shutdown` resolves, letting in-flight requests finish. Handlers live in `chat` (the
//! request path) and here (catalog and health); each loads the live snapshot once.

mod chat;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::api::{ApiError, Wire};
use crate::control::App;

/// The HTTP routes. `max_body_bytes` is fixed for the life of the listener.
pub fn router(app: Arc<App>) -> Router {
    let max_body = app.snapshot().config.max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(chat::messages))
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

/// `GET /v1/models`: the models the caller's team may use, in OpenAI's list format, or in
/// Anthropic's for a client that sends `anthropic-version` (as Anthropic's SDKs do).
async fn models(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let wire = if headers.contains_key("anthropic-version") {
        Wire::Anthropic
    } else {
        Wire::Openai
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
