//! Counting a prompt's tokens where the model's provider can: Anthropic's
//! `POST /v1/messages/count_tokens`. Other providers have no such call; the caller then answers
//! with the host's estimate. One request, no retries, failover or health: counting is advice.

use std::time::Duration;

use axum::http::{StatusCode, header};
use bytes::Bytes;

use super::provider::Endpoint;
use super::{AttemptError, Upstreams};
use crate::api::{ClientRequest, Wire};

/// How long a count may take.
const COUNT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the model's provider said of a count.
#[derive(Debug)]
pub struct Counted {
    pub status: StatusCode,
    /// Its body, in Anthropic's format.
    pub body: Bytes,
}

impl Upstreams {
    /// Ask catalog model `model`'s provider to count the tokens of `req` (an Anthropic Messages
    /// request); `None` when that provider cannot count (it is not Anthropic's).
    pub async fn count_tokens(
        &self,
        model: &str,
        req: &ClientRequest,
    ) -> Option<Result<Counted, String>> {
        let route = self.routes.get(model)?;
        let Endpoint::Http(http) = &route.provider.endpoint else {
            return None;
        };
        // A provider reached by way of Messages (Bedrock, Gemini) has no Anthropic counting.
        if http.wire != Wire::Anthropic || http.dialect.is_some() || req.api != Wire::Anthropic {
            return None;
        }
        let url = route.url.as_ref()?.as_str().to_string() + "/count_tokens";
        let sent = http
            .client
            .post(url)
            .headers(http.headers.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(req.upstream_body(&route.upstream_model, None))
            .timeout(COUNT_TIMEOUT)
            .send()
            .await;
        let counted = async {
            let response =
                sent.map_err(|e| AttemptError::from_transport(&e, COUNT_TIMEOUT).to_string())?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| AttemptError::from_transport(&e, COUNT_TIMEOUT).to_string())?;
            Ok(Counted { status, body })
        };
        Some(counted.await)
    }
}
