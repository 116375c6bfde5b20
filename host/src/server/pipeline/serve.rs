//! The `serve` phase: the route's targets tried in order until one answers.
//!
//! The attempts themselves (breakers, retries, failover, stream watching) are the upstream
//! layer's ([`crate::upstream::Upstreams::serve`]); this phase hands it the route and keeps what
//! the attempts met, and who answered, in the [`Exchange`]. A route on which every target failed
//! before anything reached the client ends the request with the upstreams' error.

use super::context::Exchange;
use super::decide::Route;
use super::error::RequestError;
use crate::api::ClientRequest;
use crate::control::Snapshot;
use crate::upstream::{Keep, Served};

/// Serve `request` along `route`; `keep` keeps the Responses API response its answer makes.
pub async fn serve(
    snapshot: &Snapshot,
    exchange: &mut Exchange,
    route: &Route,
    request: &ClientRequest,
    keep: Option<Keep>,
) -> Result<Served, RequestError> {
    match snapshot
        .upstreams
        .serve(&route.targets, request, &exchange.id, keep)
        .await
    {
        Ok(mut served) => {
            exchange.attempts = std::mem::take(&mut served.attempts);
            exchange.served_model = Some(served.model.clone());
            exchange.provider = Some(served.provider.clone());
            Ok(served)
        }
        Err(failed) => {
            exchange.attempts = failed.attempts.clone();
            Err(RequestError::UpstreamFailed(failed))
        }
    }
}
