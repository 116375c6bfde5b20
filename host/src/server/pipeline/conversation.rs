//! The `conversation` phase of a Responses API request: the conversation it continues, and the
//! response it makes.
//!
//! Before the policy decides, a request naming `previous_response_id` gets what the store kept
//! of that response, if the caller's team made it: the earlier turns (a response made by
//! translation), written into the request for whichever provider serves it and counted in the
//! policy's view (by role and size); or a pin (a response
//! a provider made itself), which after the decision keeps only the route's targets on that
//! provider, or sends the request to the model that made the response when the route has none
//! there. An unknown, expired or other team's id is a 400 naming the field; a store that cannot
//! be reached (the fleet's Redis) a 503 with `Retry-After`. After serving, the
//! response the answer made is kept (unless the client sent `store: false`) before the client
//! hears it is complete. This phase reads the snapshot and writes only the conversation store.

use std::sync::Arc;

use futures_util::FutureExt;

use super::admit::Admitted;
use super::context::{Exchange, RouteBy};
use super::decide::Route;
use super::error::RequestError;
use crate::api::translate::{self, MadeResponse};
use crate::api::{ApiError, ClientRequest, History, Operation, Wire};
use crate::control::conversations::{Entry, Stored};
use crate::control::{Snapshot, Team};
use crate::policy::PlannedTarget;
use crate::upstream::Keep;

/// The provider a follow-up must go to: the one that made the response it continues.
pub struct Pin {
    model: String,
    provider: String,
}

/// Look up the response `admitted` continues, if it names one: its earlier turns go into the
/// request, or the pin comes back.
pub async fn recall(
    snapshot: &Snapshot,
    admitted: &mut Admitted<'_>,
) -> Result<Option<Pin>, RequestError> {
    let Some(id) = admitted.request.responses.previous_response_id.clone() else {
        return Ok(None);
    };
    let entry = snapshot
        .conversations()
        .get(&id)
        .await
        .map_err(RequestError::StateUnavailable)?
        .filter(|e| *e.team == *admitted.team.name);
    match entry.map(|e| e.stored) {
        None => Err(RequestError::Invalid(not_found(&id))),
        Some(Stored::Native { model, provider }) => Ok(Some(Pin { model, provider })),
        Some(Stored::Translated { items, .. }) => {
            let request = Arc::get_mut(&mut admitted.request)
                .expect("the request is not shared before it is decided");
            request.continue_from(History { items });
            Ok(None)
        }
    }
}

fn not_found(id: &str) -> ApiError {
    let mut error = ApiError::invalid(
        Some("previous_response_id"),
        format!(
            "no response `{id}` is kept for your team: it was not made here, was made with \
             `store: false`, or has expired"
        ),
    );
    error.code = Some("previous_response_not_found");
    error
}

/// The route for a request pinned to `pin`'s provider: the targets there, in order, or the
/// model that made the response (with the route's first target's limits) when the team may still
/// use it and the route is not a budget's downgrade; else the conversation cannot go on here.
pub fn pinned(
    route: Route,
    pin: &Pin,
    team: &Team,
    exchange: &mut Exchange,
) -> Result<Route, RequestError> {
    let on_provider = |target: &PlannedTarget| {
        team.catalog
            .iter()
            .any(|m| m.id == target.model && m.provider == pin.provider)
    };
    let first = route.targets.first().cloned();
    let there: Vec<PlannedTarget> = route.targets.into_iter().filter(on_provider).collect();
    if !there.is_empty() {
        return Ok(Route { targets: there });
    }
    let allowed = team.model(&pin.model, Operation::Chat).is_some();
    if !allowed || exchange.route_by == RouteBy::Budget {
        let why = if allowed {
            "the team's budget is spent and its downgrade route has no model there"
        } else {
            "the team may no longer use the model that made it"
        };
        return Err(RequestError::Invalid(ApiError::invalid(
            Some("previous_response_id"),
            format!(
                "the previous response is held by provider `{}`, and {why}; start a new conversation",
                pin.provider
            ),
        )));
    }
    exchange.reason = format!(
        "{}; sent to `{}`, whose provider `{}` holds the previous response",
        exchange.reason, pin.model, pin.provider
    );
    Ok(Route {
        targets: vec![PlannedTarget {
            model: pin.model.clone(),
            timeout: first.as_ref().and_then(|t| t.timeout),
            max_output_tokens: first.and_then(|t| t.max_output_tokens),
        }],
    })
}

/// What keeps the response `admitted`'s answer makes: for a Responses request the client lets
/// the proxy store.
pub fn keeper(snapshot: &Arc<Snapshot>, admitted: &Admitted<'_>) -> Option<Keep> {
    let request = &admitted.request;
    if request.api != Wire::Responses || !request.responses.store {
        return None;
    }
    let (snapshot, request) = (snapshot.clone(), request.clone());
    let team = admitted.team.name.text().clone();
    Some(Box::new(move |made, model| {
        async move {
            let (id, stored) = match made {
                MadeResponse::Translated(response) => translated(&request, response),
                MadeResponse::Native(id) => {
                    let provider = snapshot
                        .config
                        .models
                        .iter()
                        .find(|m| m.id == model)
                        .map(|m| m.provider.clone())
                        .unwrap_or_default();
                    (id, Stored::Native { model, provider })
                }
            };
            let entry = Entry { team, stored };
            snapshot.conversations().put(id, entry).await;
        }
        .boxed()
    }))
}

/// What is kept of a response made by translation: the response, and the conversation's items
/// (the earlier turns, this request's input, the response's output).
fn translated(request: &ClientRequest, response: serde_json::Value) -> (String, Stored) {
    let mut items: Vec<serde_json::Value> = request
        .responses
        .history
        .as_ref()
        .and_then(|h| serde_json::from_slice(&h.items).ok())
        .unwrap_or_default();
    let input = request
        .field("input")
        .and_then(|raw| serde_json::from_slice(raw).ok())
        .unwrap_or_default();
    items.extend(translate::input_items(input));
    if let Some(output) = response["output"].as_array() {
        items.extend(output.iter().cloned());
    }
    let id = response["id"].as_str().unwrap_or_default().to_string();
    let stored = Stored::Translated {
        response: response.to_string().into(),
        items: serde_json::Value::Array(items).to_string().into(),
    };
    (id, stored)
}
