//! `GET /v1/responses/{id}`: a Responses API response the caller's team made through the proxy.
//!
//! A response made by translation is answered from the conversation store as its client first
//! got it; one a provider made itself is read back from that provider (its answer passed on, an
//! error in OpenAI's shape). An id the store does not hold for the team (never made here, made
//! with `store: false`, expired, or another team's) is a 404 in OpenAI's shape. No policy runs
//! and nothing is charged.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::gate::Gate;
use super::pipeline::{RequestError, Routing};
use crate::api::{ApiError, Wire, translate};
use crate::control::Snapshot;
use crate::control::conversations::Stored;

/// Answer the stored response `id`.
pub async fn retrieve(
    State(gate): State<Arc<Gate>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(app) = gate.app() else {
        return RequestError::NotReady.into_response(Wire::Responses, Routing::default());
    };
    let snapshot = app.snapshot();
    match stored(&snapshot, &headers, &id).await {
        Ok(response) => response,
        Err(error) => error.into_response(Wire::Responses, Routing::default()),
    }
}

async fn stored(
    snapshot: &Snapshot,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, RequestError> {
    let team = snapshot.team(headers)?;
    let entry = snapshot
        .conversations()
        .get(id)
        .await
        .map_err(RequestError::StateUnavailable)?
        .filter(|e| *e.team == *team.name);
    let json = |status, body| (status, [(header::CONTENT_TYPE, "application/json")], body);
    let mut response = match entry.map(|e| e.stored) {
        Some(Stored::Translated { response, .. }) => json(StatusCode::OK, response).into_response(),
        Some(Stored::Native { model, .. }) => {
            match snapshot.upstreams.retrieve_response(&model, id).await {
                Some(Ok(retrieved)) if retrieved.status.is_success() => {
                    json(retrieved.status, retrieved.body).into_response()
                }
                Some(Ok(retrieved)) => {
                    let body =
                        translate::error_body(Wire::Responses, retrieved.status, &retrieved.body);
                    json(retrieved.status, body.into()).into_response()
                }
                Some(Err(fault)) => {
                    tracing::warn!(team = %team.name, model, "reading response {id} back failed: {fault}");
                    let message =
                        format!("the provider holding response `{id}` could not be reached");
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "server_error",
                        "upstream_unreachable",
                        message,
                    )
                    .response_for(Wire::Responses)
                }
                None => not_found(id),
            }
        }
        None => not_found(id),
    };
    let routing = Routing {
        team: Some(team.name.header()),
        ..Routing::default()
    };
    routing.write(response.headers_mut());
    Ok(response)
}

fn not_found(id: &str) -> Response {
    let message = format!("no response `{id}` is kept for your team");
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "response_not_found",
        message,
    )
    .response_for(Wire::Responses)
}
