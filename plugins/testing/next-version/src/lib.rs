//! # next-version-policy: a policy built for a future contract, which the host must refuse
//!
//! `wit/policy.wit` in this crate is the project's contract with only the package version raised
//! to `switchyard:policy@0.2.0`. The bindings are generated from it directly (not through
//! `switchyard-sdk`), and `decide` logs through the host, so the component imports
//! `switchyard:policy/host@0.2.0` and exports `decide` with types from `types@0.2.0`. A host that
//! supports only 0.1 must refuse it with an error naming the version. The end-to-end tests of
//! policy validation use it.
//!
//! Should a host ever run it, it routes to the first catalog model.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "policy",
    });
}

use bindings::switchyard::policy::host::{self, LogLevel};
use bindings::switchyard::policy::types::{Route, Target};
use bindings::{Decision, Model, Request};

struct NextVersion;

impl bindings::Guest for NextVersion {
    fn decide(req: Request, catalog: Vec<Model>) -> Result<Decision, String> {
        host::log(
            LogLevel::Info,
            &format!("policy 0.2.0 deciding request {}", req.id),
        );
        let first = catalog.first().ok_or("empty catalog")?;
        Ok(Decision::Route(Route {
            targets: vec![Target {
                model: first.id.clone(),
                timeout_ms: None,
                max_output_tokens: None,
            }],
            reason: "first model".to_string(),
        }))
    }
}

bindings::export!(NextVersion with_types_in bindings);
