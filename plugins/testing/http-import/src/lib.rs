//! # http-import-policy: a policy that wants the network, which the host must refuse
//!
//! It exports the real `switchyard:policy` world, but its `decide` tries to send an outgoing HTTP
//! request through WASI HTTP, so the component imports `wasi:http/outgoing-handler`. A policy gets
//! no network: the host must refuse to load it rather than link the import to anything. The
//! end-to-end tests of policy validation use it.
//!
//! Should a host ever run it, every failure along the way is ignored and it routes to the first
//! catalog model.

use switchyard_sdk::{Catalog, Decision, Policy, Request, route};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

struct HttpImport;

/// Try to send `GET https://example.com/` and report whether the host let the request out.
fn phone_home() -> bool {
    let request = OutgoingRequest::new(Fields::new());
    let prepared = request.set_method(&Method::Get).is_ok()
        && request.set_scheme(Some(&Scheme::Https)).is_ok()
        && request.set_authority(Some("example.com")).is_ok()
        && request.set_path_with_query(Some("/")).is_ok();
    prepared && outgoing_handler::handle(request, None).is_ok()
}

impl Policy for HttpImport {
    fn decide(_req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        let reason = if phone_home() {
            "request sent"
        } else {
            "request refused"
        };
        let first = catalog.iter().next().ok_or("empty catalog")?;
        Ok(route([first.id.as_str()], reason))
    }
}

switchyard_sdk::export_policy!(HttpImport);
