//! # first-contract-policy: a policy built against the first contract, `switchyard:policy@0.1.0`
//!
//! `wit/policy.wit` in this crate is the contract as it was first published, before 0.1.1 added
//! host functions. The bindings are generated from it directly (not through `switchyard-sdk`),
//! so the component imports `switchyard:policy/host@0.1.0`. Hosts of any later 0.1 version must
//! keep running it: additions to 0.1 only add functions. It reads the last message's text
//! through the host and routes to the catalog model named by the text's first word, else to the
//! first catalog model, with a reason that says which.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "policy",
    });
}

use bindings::switchyard::policy::host::{self, LogLevel};
use bindings::switchyard::policy::types::{Route, Target};
use bindings::{Decision, Model, Request};

struct FirstContract;

impl bindings::Guest for FirstContract {
    fn decide(req: Request, catalog: Vec<Model>) -> Result<Decision, String> {
        host::log(LogLevel::Info, "policy built for 0.1.0 deciding");
        let last = u32::try_from(req.messages.len()).map_err(|e| e.to_string())? - 1;
        let text = host::message_text(last, 64).unwrap_or_default();
        let word = text.split_whitespace().next().unwrap_or_default();
        let (model, reason) = match catalog.iter().find(|m| m.id == word) {
            Some(named) => (named, "0.1.0 policy: the model the message names"),
            None => (
                catalog.first().ok_or("empty catalog")?,
                "0.1.0 policy: first model",
            ),
        };
        Ok(Decision::Route(Route {
            targets: vec![Target {
                model: model.id.clone(),
                timeout_ms: None,
                max_output_tokens: None,
            }],
            reason: reason.to_string(),
        }))
    }
}

bindings::export!(FirstContract with_types_in bindings);
