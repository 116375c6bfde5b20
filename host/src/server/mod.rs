//! The client-facing HTTP server: the routes, the listener, readiness, and the request path.
//!
//! - `gate`: the [`Gate`] the routes serve from (the app once started, draining, the work
//!   requests leave behind);
//! - `routes`: the handlers: the chat APIs, the Responses API, embeddings, models, health,
//!   readiness, metrics, and the error of any other path or method;
//! - `pipeline`: the request path of those APIs, as named phases (admit, conversation, decide,
//!   serve, settle, respond, log) over one per-request context;
//! - `responses`: reading back a Responses API response the team made;
//! - `tokens`: Anthropic's token counting, forwarded or estimated;
//! - `listener`: plain HTTP or TLS, capped heads, graceful shutdown.

mod gate;
mod listener;
mod pipeline;
mod responses;
mod routes;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use gate::Gate;
pub use listener::{Listening, serve};
use routes::proxied_post;

use crate::api::{Operation, Wire};

/// The HTTP routes; `max_body_bytes` is fixed for the life of the listener.
pub fn router(gate: Arc<Gate>, max_body_bytes: usize) -> Router {
    let mut router = Router::new()
        .route(
            "/v1/chat/completions",
            proxied_post((Wire::Openai, Operation::Chat)),
        )
        .route(
            "/v1/messages",
            proxied_post((Wire::Anthropic, Operation::Chat)),
        )
        .route(
            "/v1/responses",
            proxied_post((Wire::Responses, Operation::Chat)),
        )
        .route(
            "/v1/embeddings",
            proxied_post((Wire::Openai, Operation::Embeddings)),
        )
        .route("/v1/responses/{id}", get(responses::retrieve))
        .route("/v1/messages/count_tokens", post(routes::count_tokens))
        .route("/v1/models/{id}", get(routes::model))
        .route("/v1/models", get(routes::models))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz));
    if gate.metrics.is_some() {
        router = router.route("/metrics", get(routes::metrics));
    }
    router
        .fallback(routes::unknown_path)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(gate)
}
