//! # ghost-route-policy: a well-formed policy whose every decision is invalid
//!
//! It loads and links like any policy, then routes every request to `ghost-model`, which no
//! catalog holds. The canary must catch it before it goes live; the end-to-end tests of policy
//! validation use it.

use switchyard_sdk::{Catalog, Decision, Policy, Request, route};

/// The model no catalog has.
pub const GHOST: &str = "ghost-model";

struct GhostRoute;

impl Policy for GhostRoute {
    fn decide(_req: &Request, _catalog: &Catalog) -> Result<Decision, String> {
        Ok(route([GHOST], "a model that does not exist"))
    }
}

switchyard_sdk::export_policy!(GhostRoute);
