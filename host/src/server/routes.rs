//! The client-facing routes and their handlers: the chat APIs, the Responses API and embeddings
//! (whose request path is [`super::pipeline`]), the team's model list, health, readiness and metrics, and the error
//! every other path or method gets. Each handler loads the live snapshot at most once.

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Json, body::Bytes};
use metrics_exporter_prometheus::PrometheusHandle;

use super::gate::Gate;
use super::pipeline::{self, RequestError, Routing};
use super::tokens;
use crate::api::{ApiError, Operation, Wire};
use crate::auth::AuthError;
use crate::control::Team;
use crate::policy::Model;

/// `POST` to a route whose requests the policy routes to a model, through the request path,
/// in client API `wire` for `operation`: chat completions, Messages, responses, embeddings.
pub fn proxied_post(api: (Wire, Operation)) -> MethodRouter<Arc<Gate>> {
    post(
        move |State(gate): State<Arc<Gate>>, request: Request| async move {
            let (headers, body) = headers_and_body(request).await;
            proxied(&gate, api, headers, body).await
        },
    )
}

/// `POST /v1/messages/count_tokens`, Anthropic's API (see `tokens`).
pub async fn count_tokens(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (headers, body) = headers_and_body(request).await;
    tokens::count_tokens(&gate, headers, body).await
}

/// A request's headers, taken out of it rather than copied (axum's `HeaderMap` extractor clones
/// them), and its body read within the router's body limit, as the `Bytes` extractor reads it.
async fn headers_and_body(mut request: Request) -> (HeaderMap, Result<Bytes, BytesRejection>) {
    let headers = std::mem::take(request.headers_mut());
    (headers, Bytes::from_request(request, &()).await)
}

/// A request the policy routes to a model, through the request path.
async fn proxied(
    gate: &Gate,
    api: (Wire, Operation),
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match gate.app() {
        Some(app) => pipeline::handle(app, &gate.tasks, api, headers, body).await,
        None => RequestError::NotReady.into_response(api.0, Routing::default()),
    }
}

/// The client API a request to `path` speaks, as far as its path tells: Anthropic's under
/// `/v1/messages`, else OpenAI's.
fn wire_of(path: &str) -> Wire {
    if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        Wire::Anthropic
    } else {
        Wire::Openai
    }
}

/// Any path the proxy does not serve: 404 in the client API's error shape.
pub async fn unknown_path(method: Method, uri: Uri) -> Response {
    let message = format!("the proxy does not serve {method} {}", uri.path());
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        message,
    )
    .response_for(wire_of(uri.path()))
}

/// A served path asked with a method it does not take: 405 in the client API's error shape.
pub async fn wrong_method(method: Method, uri: Uri) -> Response {
    let message = format!("{} does not take {method}", uri.path());
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        message,
    );
    error.response_for(wire_of(uri.path()))
}

/// The client API a models call answers in: Anthropic's for a client that sends
/// `anthropic-version` (as Anthropic's SDKs do), else OpenAI's.
fn models_wire(headers: &HeaderMap) -> Wire {
    if headers.contains_key("anthropic-version") {
        Wire::Anthropic
    } else {
        Wire::Openai
    }
}

/// One model as a models call shows it in `wire`'s format.
fn model_json(m: &Model, wire: Wire) -> serde_json::Value {
    match wire {
        Wire::Anthropic => serde_json::json!({
            "type": "model",
            "id": m.id,
            "display_name": m.id,
            "created_at": "1970-01-01T00:00:00Z",
        }),
        Wire::Openai | Wire::Responses => serde_json::json!({
            "id": m.id,
            "object": "model",
            "created": 0,
            "owned_by": m.provider,
            "context_window": m.context_window,
            "tags": m.tags,
        }),
    }
}

/// `GET /v1/models/{id}`: one of the models the caller's team may use, or 404.
pub async fn model(
    State(gate): State<Arc<Gate>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    for_team(&gate, &headers, |team, wire| {
        match team.models().find(|m| m.id == id) {
            Some(m) => Json(model_json(m, wire)).into_response(),
            None => ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("the model `{id}` does not exist or your team may not use it"),
            )
            .response_for(wire),
        }
    })
}

/// A models call's answer for the caller's team, in the API the call speaks; a proxy still
/// loading or a caller without a valid key gets its error in that API's shape.
fn for_team(
    gate: &Gate,
    headers: &HeaderMap,
    answer: impl FnOnce(&Team, Wire) -> Response,
) -> Response {
    let wire = models_wire(headers);
    let Some(app) = gate.app() else {
        return RequestError::NotReady.into_response(wire, Routing::default());
    };
    let snapshot = app.snapshot();
    match snapshot.team(headers) {
        Ok(team) => answer(team, wire),
        Err(e) => unauthenticated(e, wire),
    }
}

/// `GET /v1/models`: the models the caller's team may use, in OpenAI's list format, or in
/// Anthropic's for a client that sends `anthropic-version` (as Anthropic's SDKs do).
pub async fn models(State(gate): State<Arc<Gate>>, headers: HeaderMap) -> Response {
    for_team(&gate, &headers, |team, wire| {
        let data: Vec<serde_json::Value> = team.models().map(|m| model_json(m, wire)).collect();
        let list = match wire {
            Wire::Anthropic => serde_json::json!({
                "data": data,
                "has_more": false,
                "first_id": team.models().next().map(|m| &m.id),
                "last_id": team.models().last().map(|m| &m.id),
            }),
            Wire::Openai | Wire::Responses => serde_json::json!({"object": "list", "data": data}),
        };
        Json(list).into_response()
    })
}

fn unauthenticated(error: AuthError, wire: Wire) -> Response {
    RequestError::Unauthenticated(error).into_response(wire, Routing::default())
}

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 once the config and every bound policy are loaded, 503 before that and
/// while draining.
pub async fn readyz(State(gate): State<Arc<Gate>>) -> Response {
    match gate.readiness() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// `GET /metrics`: Prometheus text (routed only when the gate has the handle).
pub async fn metrics(State(gate): State<Arc<Gate>>) -> Response {
    if let Some(app) = gate.app() {
        app.record_gauges();
    }
    let text = gate.metrics.as_ref().map(PrometheusHandle::render);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text.unwrap_or_default(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_messages_speak_anthropic() {
        assert_eq!(wire_of("/v1/messages"), Wire::Anthropic);
        assert_eq!(wire_of("/v1/messages/batches"), Wire::Anthropic);
        assert_eq!(wire_of("/v1/responses"), Wire::Openai);
        assert_eq!(wire_of("/v1/messagesx"), Wire::Openai);
    }
}
