//! # switchyard-sdk: write Switchyard routing policies in Rust
//!
//! A policy is a WebAssembly component that the Switchyard proxy runs for every request to pick
//! the model that serves it. This crate wraps the WIT contract in `wit/policy.wit` (generated with
//! `wit-bindgen`) so that a policy is a type implementing [`Policy`] plus one [`export_policy!`]
//! line, built with `cargo build --target wasm32-wasip2` (`cargo xtask plugins` in this
//! repository).
//!
//! A policy may touch only what the contract grants: the request view and catalog handed to
//! [`Policy::decide`], and the host functions wrapped by [`RequestExt::message_text`],
//! [`team_budget`], [`first_token_ms`], [`random_u64`] and [`log`]. The rest is plain data
//! helpers: [`Catalog`] queries such as [`Catalog::cheapest_fitting`], [`ModelExt`],
//! [`estimate_tokens`], [`find_cue`], [`find_cue_ignoring_case`] and [`two_choices`].
//!
//! On `wasm32` the host functions call the proxy, and the policy's allocations come from a bump
//! arena that starts again after each decision (the default `arena` feature; see
//! `docs/writing-policies.md`). On any other target the host functions answer from a
//! thread-local mock host set up with [`testing`], so a policy's own unit tests run with plain
//! `cargo test`. A policy crate is a `cdylib` (the component) and an `rlib` (for its tests):
//!
//! ```no_run
//! // plugins/cheapest/src/lib.rs
//! use switchyard_sdk::{Catalog, Decision, Policy, Request, route};
//!
//! pub struct Cheapest;
//!
//! impl Policy for Cheapest {
//!     fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
//!         if let Some(budget) = switchyard_sdk::team_budget()
//!             && budget.remaining_share() < 0.1
//!         {
//!             switchyard_sdk::log::warn("budget nearly spent");
//!         }
//!         Ok(match catalog.cheapest_fitting(req, "cheap") {
//!             Some(model) => route([model.id.as_str()], "cheapest cheap model that fits"),
//!             None => catalog.unservable(req),
//!         })
//!     }
//! }
//!
//! switchyard_sdk::export_policy!(Cheapest);
//! ```
//!
//! and its unit test, natively, against the default config's catalog:
//!
//! ```
//! # use switchyard_sdk::{Catalog, Decision, Policy, Request, route};
//! # pub struct Cheapest;
//! # impl Policy for Cheapest {
//! #     fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
//! #         if let Some(budget) = switchyard_sdk::team_budget()
//! #             && budget.remaining_share() < 0.1
//! #         {
//! #             switchyard_sdk::log::warn("budget nearly spent");
//! #         }
//! #         Ok(match catalog.cheapest_fitting(req, "cheap") {
//! #             Some(model) => route([model.id.as_str()], "cheapest cheap model that fits"),
//! #             None => catalog.unservable(req),
//! #         })
//! #     }
//! # }
//! use switchyard_sdk::log::Level;
//! use switchyard_sdk::testing::{self, MockHost};
//!
//! let _host = MockHost::new().budget(10.0, 9.5, 3600).install();
//! let req = testing::request().user("What is the capital of France?").build();
//! let mut catalog = testing::default_catalog();
//! let decision = Cheapest::decide(&req, &catalog).unwrap();
//! assert_eq!(testing::route_of(&decision).0, ["gpt-4o-mini"]);
//! assert_eq!(testing::logs(), [(Level::Warn, "budget nearly spent".to_string())]);
//!
//! catalog.0[0].health.healthy = false;
//! let decision = Cheapest::decide(&req, &catalog).unwrap();
//! assert_eq!(testing::route_of(&decision).0, ["claude-haiku-4-5"]);
//! ```

#[cfg(any(all(target_arch = "wasm32", feature = "arena"), test))]
mod arena;
mod catalog;
mod cues;
mod host;
mod request;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// Every allocation of a policy built with the SDK's default `arena` feature, including the
/// strings the host lowers into it, is served by the decision arena, or by the system allocator
/// when it does not fit (see `arena.rs`).
#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

/// Raw bindings generated from `wit/policy.wit`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "switchyard_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::switchyard::policy::host::{Budget, Operation};
pub use bindings::switchyard::policy::types::{
    ClientApi, Decision, MessageSummary, Model, ModelHealth, Pair, Rejection, Request, Role, Route,
    Target,
};
pub use catalog::{Catalog, ModelExt, TwoChoices, two_choices};
pub use cues::{find_cue, find_cue_ignoring_case};
pub use host::{first_token_ms, log, operation, random_u64, team_budget};
pub use request::{RequestExt, estimate_tokens};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_builds_targets_in_order() {
        let Decision::Route(r) = route(["a", "b"], "why") else {
            panic!("not a route")
        };
        let models: Vec<&str> = r.targets.iter().map(|t| t.model.as_str()).collect();
        assert_eq!(models, ["a", "b"]);
        assert_eq!(r.reason, "why");
        assert!(r.targets.iter().all(|t| t.timeout_ms.is_none()));
    }

    #[test]
    fn budget_shares_stay_between_zero_and_one() {
        let budget = |limit_usd, spent_usd| Budget {
            limit_usd,
            spent_usd,
            resets_in_seconds: 60,
        };
        assert_eq!(budget(10.0, 2.5).remaining_share(), 0.75);
        assert_eq!(budget(10.0, 2.5).remaining_usd(), 7.5);
        assert_eq!(budget(10.0, 12.0).remaining_share(), 0.0);
        assert_eq!(budget(10.0, 12.0).remaining_usd(), 0.0);
        assert_eq!(budget(0.0, 0.0).remaining_share(), 0.0);
    }
}
