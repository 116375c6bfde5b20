//! The request path of `POST /v1/chat/completions`, `POST /v1/messages`, `POST /v1/responses` and
//! `POST /v1/embeddings`, as named phases.
//!
//! Every request carries one context, its [`Exchange`], through the phases in this order, each
//! a module of its own:
//!
//! | phase | owns |
//! |---|---|
//! | `admit` | key -> team, the body limit, parsing, budget refusal, rate-limit admission (`limits`: in process, or shared by the fleet) |
//! | `conversation` | Responses API: the turns `previous_response_id` continues, or the provider it is pinned to; keeping the response made |
//! | `decide` | the policy's decision (or the budget's downgrade), the failure behaviour, the decision record; a split's arm (`split`); the candidate's shadow decision to make (`shadow`) |
//! | `serve` | the attempts along the route (the upstream layer makes them); then the candidate's shadow decision starts, off the request's path |
//! | `settle` | usage, cost, budget and rate-limit settlement, when the answer or stream ends |
//! | `respond` | the answer's head and the routing headers |
//! | `log` | the log line, metrics and decision record, always last, refusals and errors included; the split arm's figures (`split`) |
//!
//! A phase that cannot go on returns a [`RequestError`] (`error`), which is turned into the
//! client's answer in one place. The client APIs differ only in their [`Wire`] and
//! [`Operation`]: the request is parsed in it, answers are translated into it, and errors are
//! shaped as it shapes them.
//! The whole request runs on the snapshot it started with.

mod admit;
mod context;
mod conversation;
mod decide;
mod error;
mod limits;
mod log;
mod respond;
mod serve;
mod settle;
mod shadow;
mod split;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::api::{Operation, Wire};
use crate::control::{App, Snapshot};
use crate::telemetry::otel;
use crate::upstream::stream::StreamSummary;
pub use admit::body_error;
pub use context::Exchange;
pub use error::RequestError;
pub use respond::Routing;
use settle::Bill;

/// Serve one request of `wire` for `operation` with `app`; work left when the answer is a stream
/// (settling it and writing its line when it ends) goes to `tasks`.
pub async fn handle(
    app: &App,
    tasks: &TaskTracker,
    (wire, operation): (Wire, Operation),
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let snapshot = app.snapshot();
    let mut exchange = Exchange::new(wire, operation, &headers);
    let span = tracing::info_span!(
        target: otel::TARGET,
        "request",
        request_id = %exchange.id,
        api = api_name(wire, operation),
        team = tracing::field::Empty,
        model = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let outcome = proxy(&snapshot, &mut exchange, &headers, body)
        .instrument(span.clone())
        .await;
    // The request is forwarded and its answer's head is in: the candidate may decide now.
    if let Some(job) = exchange.shadow.take() {
        exchange.shadow_usage = shadow::start(job, tasks);
    }
    let (response, stream) = match outcome {
        Ok(Answered { response, stream }) => (response, stream),
        Err(error) => {
            exchange.error = Some(error.to_string());
            (error.into_response(wire, Routing::of(&exchange)), None)
        }
    };
    let response = respond::with_request_id(response, &exchange);
    exchange.status = response.status().as_u16();
    span.record("status", exchange.status);
    if let Some(team) = &exchange.team {
        span.record("team", &**team);
    }
    if let Some(model) = &exchange.served_model {
        span.record("model", model.as_str());
    }
    match stream {
        Some(stream) => {
            tasks.spawn(async move {
                let summary = stream.end.await.ok();
                settle::stream_ended(&mut exchange, stream.bill, summary);
                log::write(exchange);
            });
        }
        None => log::write(exchange),
    }
    response
}

/// The client API and operation as traces and logs name them.
pub fn api_name(wire: Wire, operation: Operation) -> &'static str {
    match (wire, operation) {
        (_, Operation::Embeddings) => "openai-embeddings",
        (Wire::Openai, Operation::Chat) => "openai-chat",
        (Wire::Anthropic, Operation::Chat) => "anthropic-messages",
        (Wire::Responses, Operation::Chat) => "openai-responses",
    }
}

/// A served request's answer, and its stream still to settle when it is one.
struct Answered {
    response: Response,
    stream: Option<PendingStream>,
}

/// A streamed answer's bill, settled when its summary comes.
struct PendingStream {
    end: oneshot::Receiver<StreamSummary>,
    bill: Bill,
}

/// The phases, from admission to the answer's head.
async fn proxy(
    snapshot: &Arc<Snapshot>,
    exchange: &mut Exchange,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Answered, RequestError> {
    let mut admitted = admit::admit(snapshot, exchange, headers, body).await?;
    let pin = conversation::recall(snapshot, &mut admitted).await?;
    let mut route = decide::decide(snapshot, exchange, headers, &admitted).await?;
    if let Some(pin) = &pin {
        route = conversation::pinned(route, pin, admitted.team, exchange)?;
    }
    let keep = conversation::keeper(snapshot, &admitted);
    let mut served = serve::serve(snapshot, exchange, &route, &admitted.request, keep).await?;
    let bill = Bill::new(
        served.prices,
        admitted.team.budget.clone(),
        (admitted.admission.take(), admitted.fleet.take()),
        admitted.estimated_input_tokens,
    );
    let stream = match served.stream_end.take() {
        Some(end) => Some(PendingStream { end, bill }),
        None => {
            settle::settle(exchange, bill, served.usage);
            None
        }
    };
    let response = respond::answer(exchange, served, admitted.request.stream);
    Ok(Answered { response, stream })
}
