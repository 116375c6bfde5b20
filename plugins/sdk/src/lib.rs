//! # switchyard-sdk: write Switchyard routing policies in Rust
//!
//! A policy is a WebAssembly component that the Switchyard proxy runs for every request to pick
//! the model that serves it. This crate wraps the WIT contract in `wit/policy.wit` (generated with
//! `wit-bindgen`) so that a policy is a type implementing [`Policy`] plus one [`export_policy!`]
//! line, built with `cargo build --target wasm32-wasip2`.
//!
//! It may touch only what the contract grants: the request view and catalog handed to
//! [`Policy::decide`], and the host functions wrapped by [`RequestExt::message_text`],
//! [`team_budget`], [`first_token_ms`] and [`log`].
//! Everything else here is plain data helpers, so a policy's own logic unit-tests natively.
//!
//! ```no_run
//! use switchyard_sdk::{Catalog, Decision, ModelExt, Policy, Request, route};
//!
//! struct Cheapest;
//! impl Policy for Cheapest {
//!     fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
//!         let model = catalog.cheapest(|m| m.fits(req)).ok_or("no model fits")?;
//!         Ok(route([model.id.as_str()], "cheapest model that fits"))
//!     }
//! }
//! switchyard_sdk::export_policy!(Cheapest);
//! ```

/// Raw bindings generated from `wit/policy.wit`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "switchyard_sdk::bindings",
    });
}

pub use bindings::switchyard::policy::types::{
    ClientApi, Decision, MessageSummary, Model, ModelHealth, Pair, Rejection, Request, Role, Route,
    Target,
};

/// A routing policy: one decision per request.
pub trait Policy {
    /// Decide how to serve `req` using only models of `catalog`. An `Err` is a policy failure:
    /// the proxy then applies the team's failure behaviour (by default its static fallback route).
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String>;
}

impl<T: Policy> bindings::Guest for T {
    fn decide(req: Request, catalog: Vec<Model>) -> Result<Decision, String> {
        T::decide(&req, &Catalog(catalog))
    }
}

/// Export a [`Policy`] implementation as the component's `decide` function.
#[macro_export]
macro_rules! export_policy {
    ($policy:ident) => {
        $crate::bindings::__export_policy_world!($policy);
    };
}

/// The models a policy may route to, with the live state the host last saw.
#[derive(Debug, Clone)]
pub struct Catalog(pub Vec<Model>);

impl Catalog {
    /// All models, in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = &Model> {
        self.0.iter()
    }

    /// The model with this id.
    pub fn get(&self, id: &str) -> Option<&Model> {
        self.0.iter().find(|m| m.id == id)
    }

    /// Healthy models that satisfy `keep`, cheapest first (by blended price), ties by catalog order.
    pub fn ranked_by_cost(&self, keep: impl Fn(&Model) -> bool) -> Vec<&Model> {
        let mut models: Vec<&Model> = self
            .0
            .iter()
            .filter(|m| m.health.healthy && keep(m))
            .collect();
        models.sort_by(|a, b| a.blended_cost().total_cmp(&b.blended_cost()));
        models
    }

    /// The cheapest healthy model that satisfies `keep`.
    pub fn cheapest(&self, keep: impl Fn(&Model) -> bool) -> Option<&Model> {
        self.ranked_by_cost(keep).into_iter().next()
    }
}

/// Helpers on a catalog [`Model`].
pub trait ModelExt {
    /// The model carries this tag.
    fn has_tag(&self, tag: &str) -> bool;
    /// Price of a typical request, weighting output tokens three times input tokens.
    fn blended_cost(&self) -> f64;
    /// The request's estimated prompt plus its output cap fits in the context window.
    fn fits(&self, req: &Request) -> bool;
}

impl ModelExt for Model {
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    fn blended_cost(&self) -> f64 {
        self.input_cost_per_mtok + 3.0 * self.output_cost_per_mtok
    }

    fn fits(&self, req: &Request) -> bool {
        let needed =
            u64::from(req.estimated_input_tokens) + u64::from(req.max_output_tokens.unwrap_or(0));
        needed <= u64::from(self.context_window)
    }
}

/// Helpers on the [`Request`] view.
pub trait RequestExt {
    /// Up to `max_chars` characters of message `index`, read from the host on demand.
    fn message_text(&self, index: usize, max_chars: u32) -> Option<String>;
    /// Index of the last message written by the user.
    fn last_user_message(&self) -> Option<usize>;
    /// Value of an allow-listed header (names are lower case).
    fn header(&self, name: &str) -> Option<&str>;
    /// Value of a `metadata` entry.
    fn metadata(&self, name: &str) -> Option<&str>;
}

impl RequestExt for Request {
    fn message_text(&self, index: usize, max_chars: u32) -> Option<String> {
        let index = u32::try_from(index).ok()?;
        bindings::switchyard::policy::host::message_text(index, max_chars)
    }

    fn last_user_message(&self) -> Option<usize> {
        self.messages.iter().rposition(|m| m.role == Role::User)
    }

    fn header(&self, name: &str) -> Option<&str> {
        find_pair(&self.headers, name)
    }

    fn metadata(&self, name: &str) -> Option<&str> {
        find_pair(&self.metadata, name)
    }
}

fn find_pair<'a>(pairs: &'a [Pair], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

pub use bindings::switchyard::policy::host::Budget;

impl Budget {
    /// US dollars left in the current window (0 once spent).
    pub fn remaining_usd(&self) -> f64 {
        (self.limit_usd - self.spent_usd).max(0.0)
    }

    /// The share of the window's budget left, from 1.0 (nothing spent) to 0.0.
    pub fn remaining_share(&self) -> f64 {
        if self.limit_usd > 0.0 {
            (self.remaining_usd() / self.limit_usd).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Where the request's team stands against its budget; `None` when the team has no budget.
/// Once the budget is spent the host refuses or downgrades the team's requests itself, so a
/// policy uses this to downgrade earlier, e.g. when [`Budget::remaining_share`] runs low.
pub fn team_budget() -> Option<Budget> {
    bindings::switchyard::policy::host::team_budget()
}

/// The host's estimate of the time to the first event of a stream from catalog model `model`,
/// in milliseconds; `None` until a stream from it has been measured.
pub fn first_token_ms(model: &str) -> Option<f32> {
    bindings::switchyard::policy::host::first_token_ms(model)
}

/// A route over `models`, tried in order, with the host's default timeouts.
pub fn route<S: Into<String>>(
    models: impl IntoIterator<Item = S>,
    reason: impl Into<String>,
) -> Decision {
    Decision::Route(Route {
        targets: models.into_iter().map(target).collect(),
        reason: reason.into(),
    })
}

/// A target with the host's default timeout and the client's output cap.
pub fn target(model: impl Into<String>) -> Target {
    Target {
        model: model.into(),
        timeout_ms: None,
        max_output_tokens: None,
    }
}

/// Refuse the request with an HTTP status (400 to 599) and a message for the client.
pub fn reject(status: u16, message: impl Into<String>) -> Decision {
    Decision::Reject(Rejection {
        status,
        message: message.into(),
    })
}

/// Log lines that the proxy tags with the policy and request id.
pub mod log {
    use crate::bindings::switchyard::policy::host::{self, LogLevel};

    pub fn debug(message: &str) {
        host::log(LogLevel::Debug, message);
    }
    pub fn info(message: &str) {
        host::log(LogLevel::Info, message);
    }
    pub fn warn(message: &str) {
        host::log(LogLevel::Warn, message);
    }
    pub fn error(message: &str) {
        host::log(LogLevel::Error, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(
        id: &str,
        input: f64,
        output: f64,
        window: u32,
        tags: &[&str],
        healthy: bool,
    ) -> Model {
        Model {
            id: id.into(),
            provider: "p".into(),
            input_cost_per_mtok: input,
            output_cost_per_mtok: output,
            context_window: window,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            health: ModelHealth {
                healthy,
                latency_ms: 100.0,
                error_rate: 0.0,
                in_flight: 0,
            },
        }
    }

    fn request(tokens: u32, max_out: Option<u32>) -> Request {
        Request {
            id: "r".into(),
            api: ClientApi::OpenaiChat,
            requested_model: None,
            team: None,
            messages: vec![],
            estimated_input_tokens: tokens,
            max_output_tokens: max_out,
            stream: false,
            has_tools: false,
            has_images: false,
            temperature: None,
            headers: vec![Pair {
                name: "x-hint".into(),
                value: "code".into(),
            }],
            metadata: vec![],
        }
    }

    #[test]
    fn cheapest_skips_unhealthy_and_filtered_models() {
        let catalog = Catalog(vec![
            model("dear", 10.0, 30.0, 1000, &["reasoning"], true),
            model("down", 0.1, 0.1, 1000, &["cheap"], false),
            model("mid", 1.0, 2.0, 1000, &["cheap"], true),
        ]);
        assert_eq!(catalog.cheapest(|_| true).unwrap().id, "mid");
        assert_eq!(
            catalog.cheapest(|m| m.has_tag("reasoning")).unwrap().id,
            "dear"
        );
        assert!(catalog.cheapest(|m| m.has_tag("vision")).is_none());
        let ranked: Vec<&str> = catalog
            .ranked_by_cost(|_| true)
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(ranked, ["mid", "dear"]);
    }

    #[test]
    fn fits_counts_prompt_and_output_cap() {
        let m = model("m", 1.0, 1.0, 1000, &[], true);
        assert!(m.fits(&request(900, Some(100))));
        assert!(!m.fits(&request(900, Some(101))));
    }

    #[test]
    fn route_builds_targets_in_order() {
        let Decision::Route(r) = route(["a", "b"], "why") else {
            panic!("not a route")
        };
        let models: Vec<&str> = r.targets.iter().map(|t| t.model.as_str()).collect();
        assert_eq!(models, ["a", "b"]);
        assert_eq!(r.reason, "why");
        assert_eq!(request(1, None).header("x-hint"), Some("code"));
        assert_eq!(request(1, None).header("x-other"), None);
    }
}
