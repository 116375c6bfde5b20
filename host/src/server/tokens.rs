//! `POST /v1/messages/count_tokens`: Anthropic's token counting, for the caller's team.
//!
//! The request names the model it is for. When that is one of the team's chat models and its
//! provider is Anthropic's, the count is forwarded there (the model name rewritten to the
//! provider's) and its answer passed back; otherwise (another provider, `auto`, a model the team
//! may not use, or a count that failed) the host answers with its own estimate, about four
//! characters a token. `x-switchyard-token-count` says which: `upstream` or `estimate`. No policy
//! runs and nothing is charged: a count is advice.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::gate::Gate;
use super::pipeline::{RequestError, Routing, body_error};
use crate::api::{ClientRequest, Operation, Wire};
use crate::control::Snapshot;
use crate::label::header_value;

/// Says where a count came from: `upstream` or `estimate`.
pub const TOKEN_COUNT_HEADER: HeaderName = HeaderName::from_static("x-switchyard-token-count");

/// Count the tokens of the Anthropic Messages request in `body`.
pub async fn count_tokens(
    gate: &Gate,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(app) = gate.app() else {
        return RequestError::NotReady.into_response(Wire::Anthropic, Routing::default());
    };
    let snapshot = app.snapshot();
    match count(&snapshot, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(Wire::Anthropic, Routing::default()),
    }
}

async fn count(
    snapshot: &Snapshot,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RequestError> {
    let team = snapshot.team(headers)?;
    let body = body.map_err(|rejection| body_error(rejection, snapshot.config.max_body_bytes))?;
    let request = ClientRequest::parse_count_tokens(body).map_err(RequestError::Invalid)?;
    let model = request
        .model
        .as_deref()
        .and_then(|id| team.model(id, Operation::Chat));
    let counted = match model {
        Some(model) => snapshot.upstreams.count_tokens(&model.id, &request).await,
        None => None,
    };
    let mut routing = Routing {
        team: Some(team.name.header()),
        model: model.map(|m| header_value(&m.id)),
        ..Routing::default()
    };
    let mut response = match counted {
        Some(Ok(counted)) => {
            let mut response = (
                counted.status,
                [(header::CONTENT_TYPE, "application/json")],
                counted.body,
            )
                .into_response();
            response
                .headers_mut()
                .insert(TOKEN_COUNT_HEADER, HeaderValue::from_static("upstream"));
            routing.provider = model.map(|m| header_value(&m.provider));
            response
        }
        failed => {
            if let Some(Err(e)) = failed {
                tracing::warn!(team = %team.name, "counting tokens upstream failed, answering the estimate: {e}");
            }
            let estimate = serde_json::json!({"input_tokens": request.estimated_input_tokens()});
            let mut response = axum::Json(estimate).into_response();
            response
                .headers_mut()
                .insert(TOKEN_COUNT_HEADER, HeaderValue::from_static("estimate"));
            response
        }
    };
    routing.write(response.headers_mut());
    Ok(response)
}
