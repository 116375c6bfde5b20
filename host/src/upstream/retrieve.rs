//! Reading back a response a provider serving the Responses API made:
//! `GET {responses URL}/{id}`. One request, no retries, failover or health: the response lives
//! only there.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;

use super::provider::Endpoint;
use super::{AttemptError, Upstreams};

/// How long reading a response may take.
const RETRIEVE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the provider answered.
#[derive(Debug)]
pub struct Retrieved {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Upstreams {
    /// Ask the provider of catalog model `model` for its response `id`; `None` when that model's
    /// provider does not serve the Responses API.
    pub async fn retrieve_response(
        &self,
        model: &str,
        id: &str,
    ) -> Option<Result<Retrieved, String>> {
        let route = self.routes.get(model)?;
        let (Endpoint::Http(http), Some(base)) = (&route.provider.endpoint, &route.responses_url)
        else {
            return None;
        };
        let mut url = base.clone();
        url.path_segments_mut().ok()?.push(id);
        let retrieved = async {
            let failed = |e: reqwest::Error| AttemptError::from_transport(&e, RETRIEVE_TIMEOUT);
            let response = http
                .client
                .get(url)
                .headers(http.headers.clone())
                .timeout(RETRIEVE_TIMEOUT)
                .send()
                .await
                .map_err(|e| failed(e).to_string())?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| failed(e).to_string())?;
            Ok(Retrieved { status, body })
        };
        Some(retrieved.await)
    }
}
