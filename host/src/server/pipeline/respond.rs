//! The `respond` phase: the answer's head, and the routing headers every answer carries.
//!
//! A served answer gets its status, content type and body from the upstream, `cache-control:
//! no-cache` when it streams, its cost when it was read whole, and the routing headers; a refusal
//! or failure gets the same routing headers from [`super::error::RequestError::into_response`].
//! Every answer carries `x-request-id`. This module reads the [`Exchange`] and writes headers.
//! The names (team, policy version, model, provider) are the exchange's [`Label`]s, whose header
//! values were made once; other texts go through [`header_value`]. Either way a header value is
//! printable ASCII only, so nothing a policy said can break a header.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;

use super::context::{Exchange, REQUEST_ID};
use crate::label::{Label, header_value};
use crate::upstream::Served;

/// Header naming the catalog model that answered.
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-switchyard-model");
/// Header naming the provider that answered.
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-switchyard-provider");
/// Header with the policy name and short version.
pub const POLICY_HEADER: HeaderName = HeaderName::from_static("x-switchyard-policy");
/// Header with the policy's reason (or why the route was chosen, or the request refused).
pub const REASON_HEADER: HeaderName = HeaderName::from_static("x-switchyard-reason");
/// Header saying who chose the route, or refused the request.
pub const ROUTE_HEADER: HeaderName = HeaderName::from_static("x-switchyard-route");
/// Header with what a non-streamed answer cost at the catalog's prices, in US dollars.
pub const COST_HEADER: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");
/// Header naming the caller's team.
pub const TEAM_HEADER: HeaderName = HeaderName::from_static("x-switchyard-team");

/// How many headers [`Routing::write`] may set.
const ROUTING_HEADERS: usize = 6;

/// The routing header values of one answer: what is known of the team, the policy version, who
/// chose the route (or refused) and why, and who answered.
#[derive(Debug, Default)]
pub struct Routing {
    pub team: Option<HeaderValue>,
    pub policy: Option<HeaderValue>,
    pub route: Option<&'static str>,
    pub reason: Option<HeaderValue>,
    pub model: Option<HeaderValue>,
    pub provider: Option<HeaderValue>,
}

impl Routing {
    /// What `exchange` knows so far. The names are the exchange's labels, shared, not copied.
    pub fn of(exchange: &Exchange) -> Self {
        Self {
            team: exchange.team.as_ref().map(Label::header),
            policy: exchange.policy.as_ref().map(Label::header),
            route: exchange.route_by.header(),
            reason: Some(exchange.reason.as_str())
                .filter(|r| !r.is_empty())
                .map(header_value),
            model: exchange.served_model.as_ref().map(Label::header),
            provider: exchange.provider.as_ref().map(Label::header),
        }
    }

    /// Set the headers this holds.
    pub fn write(self, headers: &mut HeaderMap) {
        headers.reserve(ROUTING_HEADERS);
        let fields = [
            (TEAM_HEADER, self.team),
            (POLICY_HEADER, self.policy),
            (ROUTE_HEADER, self.route.map(HeaderValue::from_static)),
            (MODEL_HEADER, self.model),
            (PROVIDER_HEADER, self.provider),
            (REASON_HEADER, self.reason),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
    }
}

/// The response to a served request: the upstream's status, content type and body, with the
/// cost of an answer read whole and the routing headers.
pub fn answer(exchange: &Exchange, served: Served, stream: bool) -> Response {
    let mut response = Response::new(served.body);
    *response.status_mut() = served.status;
    let headers = response.headers_mut();
    // Content type, cache control, cost, request id and the routing headers, in one allocation.
    headers.reserve(4 + ROUTING_HEADERS);
    headers.insert(header::CONTENT_TYPE, served.content_type);
    if stream {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if let Some(cost) = exchange.cost_usd {
        headers.insert(COST_HEADER, header_value(&format!("{cost:.8}")));
    }
    Routing::of(exchange).write(headers);
    response
}

/// Tag `response` with the request's id.
pub fn with_request_id(mut response: Response, exchange: &Exchange) -> Response {
    if let Ok(value) = HeaderValue::from_str(&exchange.id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_known_is_written() {
        let mut headers = HeaderMap::new();
        Routing {
            team: Some(HeaderValue::from_static("t")),
            route: Some("rate-limit"),
            reason: Some(HeaderValue::from_static("over requests_per_minute")),
            ..Routing::default()
        }
        .write(&mut headers);
        assert_eq!(headers[TEAM_HEADER], "t");
        assert_eq!(headers[ROUTE_HEADER], "rate-limit");
        assert_eq!(headers[REASON_HEADER], "over requests_per_minute");
        assert!(!headers.contains_key(MODEL_HEADER));
    }
}
