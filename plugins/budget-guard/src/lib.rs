//! # budget-guard: spend less as the team's budget runs low
//!
//! An example Switchyard policy that reads where the request's team stands against its budget
//! (`host.team-budget`) and routes by the share of the window's budget left:
//!
//! - at least [`DOWNGRADE_BELOW`] left, or no budget at all: normal routing in two tiers, as
//!   cost-router does: a requested catalog model is honoured; tool use, a long prompt or a
//!   multi-step cue ([`needs_reasoning`]) go to the cheapest `reasoning` model, anything else to
//!   the cheapest `cheap` one;
//! - below that: requested models are no longer honoured; the request gets the cheapest model of
//!   its tier (a reasoning request the cheapest `reasoning` model);
//! - below [`CHEAP_ONLY_BELOW`]: everything goes to the cheapest `cheap` model.
//!
//! Every route falls back within its tier, cheapest first; when no model of the tier can serve
//! the request, to the cheapest model that can. The reason starts with the share left, e.g.
//! `budget 15% left: cheapest cheap model`. Once the budget is spent the host applies the team's
//! own setting (refuse or downgrade) before the policy runs.

use switchyard_sdk::{
    Catalog, Decision, ModelExt, Policy, Request, RequestExt, find_cue_ignoring_case, route,
    team_budget,
};

/// Below this share of the budget left, requests get the cheapest model of their tier.
pub const DOWNGRADE_BELOW: f64 = 0.5;
/// Below this share of the budget left, every request gets the cheapest `cheap` model.
pub const CHEAP_ONLY_BELOW: f64 = 0.2;
/// How much of the last user message is scanned for multi-step cues.
pub const CUE_SCAN_CHARS: u32 = 4096;
/// Prompts above this many estimated tokens need a reasoning model.
pub const LONG_PROMPT_TOKENS: u32 = 1500;
/// Longest chain of targets a route carries.
pub const MAX_CHAIN: usize = 3;

const CUES: &[&str] = &[
    "step by step",
    "step-by-step",
    "think through",
    "prove",
    "derive",
    "trade-off",
    "plan",
];

/// Why `req` needs a reasoning model (tool use, a long prompt, a multi-step cue in
/// `last_user_text`), or `None` when a cheap one will do.
pub fn needs_reasoning(req: &Request, last_user_text: Option<&str>) -> Option<String> {
    if req.has_tools || req.messages.iter().any(|m| m.has_tool_call) {
        return Some("tool use".into());
    }
    if req.estimated_input_tokens > LONG_PROMPT_TOKENS {
        return Some(format!(
            "long prompt (~{} tokens)",
            req.estimated_input_tokens
        ));
    }
    find_cue_ignoring_case(last_user_text?, CUES).map(|cue| format!("multi-step cue '{cue}'"))
}

/// The decision for `req` with `share` of the budget left (`None`: no budget), given what
/// [`needs_reasoning`] found.
pub fn plan(
    req: &Request,
    catalog: &Catalog,
    share: Option<f64>,
    reasoning: Option<String>,
) -> Decision {
    let asked = req
        .requested_model
        .as_deref()
        .and_then(|id| catalog.get(id));
    let (tier, why) = match (asked, reasoning) {
        (Some(asked), _) if asked.has_tag("reasoning") => {
            ("reasoning", format!("requested {}", asked.id))
        }
        (Some(asked), _) => ("cheap", format!("requested {}", asked.id)),
        (None, Some(why)) => ("reasoning", why),
        (None, None) => (
            "cheap",
            format!("simple prompt (~{} tokens)", req.estimated_input_tokens),
        ),
    };
    let (first, tier, mut reason) = match share {
        Some(share) if share < CHEAP_ONLY_BELOW => (
            None,
            "cheap",
            format!("{}: cheapest cheap model", left(share)),
        ),
        Some(share) if share < DOWNGRADE_BELOW => (
            None,
            tier,
            format!("{}: cheapest {tier} model ({why})", left(share)),
        ),
        _ => {
            let head = share.map_or("no budget".into(), left);
            match asked {
                Some(asked) => (Some(asked), tier, format!("{head}; {why}")),
                None => (None, tier, format!("{head}; {tier}: {why}")),
            }
        }
    };
    let first = first.map(|m| m.id.as_str());
    let mut chain: Vec<&str> = first.into_iter().collect();
    chain.extend(
        catalog
            .ranked_fitting(req, tier)
            .iter()
            .map(|m| m.id.as_str())
            .filter(|&id| Some(id) != first),
    );
    if chain.is_empty() {
        chain = catalog
            .ranked_by_cost(|m| m.can_serve(req))
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        reason.push_str(&format!(", but no {tier} model can serve it"));
    }
    if chain.is_empty() {
        return catalog.unservable(req);
    }
    chain.truncate(MAX_CHAIN);
    route(chain, reason)
}

/// "budget N% left", rounded down (after rounding off float noise) so that the share shown
/// agrees with the thresholds.
fn left(share: f64) -> String {
    let percent = (share * 10_000.0).round() as u32 / 100;
    format!("budget {percent}% left")
}

struct BudgetGuard;

impl Policy for BudgetGuard {
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        let share = team_budget().map(|b| b.remaining_share());
        let text = req.last_user_text(CUE_SCAN_CHARS);
        Ok(plan(
            req,
            catalog,
            share,
            needs_reasoning(req, text.as_deref()),
        ))
    }
}

switchyard_sdk::export_policy!(BudgetGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{self, MockHost, default_catalog, rejection_of, route_of};

    /// The route and reason with `spent` of a $10 budget spent (`None`: no budget).
    fn decide(spent: Option<f64>, req: testing::RequestBuilder) -> (Vec<String>, String) {
        let host = MockHost::new();
        let _host = match spent {
            Some(spent) => host.budget(10.0, spent, 3600),
            None => host,
        }
        .install();
        let decision = BudgetGuard::decide(&req.build(), &default_catalog()).unwrap();
        let (models, reason) = route_of(&decision);
        (
            models.into_iter().map(String::from).collect(),
            reason.into(),
        )
    }

    fn ask(text: &str) -> testing::RequestBuilder {
        testing::request().user(text)
    }

    #[test]
    fn without_a_budget_or_with_half_left_it_routes_by_tier() {
        let (models, reason) = decide(None, ask("Hello"));
        assert_eq!(models, ["gpt-4o-mini", "claude-haiku-4-5"]);
        assert_eq!(reason, "no budget; cheap: simple prompt (~6 tokens)");
        let (models, reason) = decide(Some(5.0), ask("Prove it, step by step."));
        assert_eq!(models, ["o3", "claude-sonnet-4-5"]);
        assert_eq!(
            reason,
            "budget 50% left; reasoning: multi-step cue 'step by step'"
        );
        let (models, _) = decide(Some(2.5), ask("Hi").tools(true));
        assert_eq!(models, ["o3", "claude-sonnet-4-5"]);
        let (models, reason) = decide(Some(1.0), ask("Hi").model("claude-sonnet-4-5"));
        assert_eq!(models, ["claude-sonnet-4-5", "o3"]);
        assert_eq!(reason, "budget 90% left; requested claude-sonnet-4-5");
    }

    #[test]
    fn below_half_each_tier_gets_its_cheapest_model() {
        let (models, reason) = decide(Some(6.0), ask("Hi").model("claude-sonnet-4-5"));
        assert_eq!(models, ["o3", "claude-sonnet-4-5"]);
        assert_eq!(
            reason,
            "budget 40% left: cheapest reasoning model (requested claude-sonnet-4-5)"
        );
        let (models, _) = decide(Some(6.0), ask("Hi").model("claude-haiku-4-5"));
        assert_eq!(models, ["gpt-4o-mini", "claude-haiku-4-5"]);
        let (models, reason) = decide(Some(7.9), ask("Derive the formula."));
        assert_eq!(models[0], "o3");
        assert_eq!(
            reason,
            "budget 21% left: cheapest reasoning model (multi-step cue 'derive')"
        );
        let (_, reason) = decide(Some(5.01), ask("Hi"));
        assert!(reason.starts_with("budget 49% left: "), "{reason}");
    }

    #[test]
    fn below_a_fifth_everything_goes_to_the_cheapest_cheap_model() {
        let (models, reason) = decide(Some(8.5), ask("Prove it.").model("claude-sonnet-4-5"));
        assert_eq!(models, ["gpt-4o-mini", "claude-haiku-4-5"]);
        assert_eq!(reason, "budget 15% left: cheapest cheap model");
        let (models, reason) = decide(Some(12.0), ask("Hi").tools(true));
        assert_eq!(models[0], "gpt-4o-mini");
        assert_eq!(reason, "budget 0% left: cheapest cheap model");
    }

    #[test]
    fn a_tier_that_cannot_serve_falls_back_to_the_cheapest_model_that_can() {
        let _host = MockHost::new().budget(10.0, 9.0, 60).install();
        let mut catalog = default_catalog();
        catalog.0[0].health.healthy = false;
        catalog.0[1].health.healthy = false;
        let req = ask("Hello").build();
        let decision = BudgetGuard::decide(&req, &catalog).unwrap();
        assert_eq!(
            route_of(&decision),
            (
                vec!["o3", "claude-sonnet-4-5"],
                "budget 10% left: cheapest cheap model, but no cheap model can serve it"
            )
        );

        catalog.0.iter_mut().for_each(|m| m.health.healthy = false);
        let decision = BudgetGuard::decide(&req, &catalog).unwrap();
        assert_eq!(rejection_of(&decision).0, 503);
    }

    #[test]
    fn long_prompts_need_reasoning_and_cues_are_whole_words() {
        let req = ask(&"word ".repeat(1400)).build();
        assert_eq!(
            needs_reasoning(&req, None).as_deref(),
            Some("long prompt (~1754 tokens)")
        );
        let req = ask("Improve the planet").build();
        assert_eq!(needs_reasoning(&req, Some("improve the planet")), None);
    }
}
