//! # latency-balancer: spread load over equivalent models by live latency
//!
//! An example Switchyard policy. It balances each request across the models of one tier, the
//! healthy models sharing the tag the request needs that can serve it: the tier of a requested
//! catalog model (`reasoning` when it is tagged so, else `cheap`), else the tag named by the
//! `x-switchyard-hint` header, else `cheap`. When no model of the tier can serve the request it
//! balances across every model that can.
//!
//! It uses the power of two choices: it samples two candidates at random (with `wasi:random`,
//! which the host seeds from the request id, so a decision replays) and keeps the one with the
//! lower [`score`]: the host's first-token estimate for a stream once one is measured, else the
//! model's latency, plus [`IN_FLIGHT_PENALTY_MS`] per request in flight and
//! [`ERROR_PENALTY_MS`] times the error rate. Ties go to the cheaper model. The route is the
//! winner and then the other candidates, best score first; the reason names the two candidates
//! and their scores, e.g. `cheap: claude-haiku-4-5 (120 ms) over gpt-4o-mini (900 ms)`.

use switchyard_sdk::{
    Catalog, Decision, Model, ModelExt, Policy, Request, RequestExt, first_token_ms, random_u64,
    route, two_choices,
};

/// The header naming the tag of the tier a request needs, when it names no catalog model.
pub const HINT_HEADER: &str = "x-switchyard-hint";
/// Added to a model's score for each of its requests in flight.
pub const IN_FLIGHT_PENALTY_MS: f64 = 100.0;
/// Added to a model's score for an error rate of 1.0 (in proportion below it).
pub const ERROR_PENALTY_MS: f64 = 1000.0;
/// Longest chain of targets a route carries.
pub const MAX_CHAIN: usize = 3;

/// The tag of the models `req` is balanced across, and why.
pub fn tier(req: &Request, catalog: &Catalog) -> (String, String) {
    if let Some(asked) = req
        .requested_model
        .as_deref()
        .and_then(|id| catalog.get(id))
    {
        let tag = if asked.has_tag("reasoning") {
            "reasoning"
        } else {
            "cheap"
        };
        return (tag.into(), format!(", tier of requested {}", asked.id));
    }
    match req.header(HINT_HEADER) {
        Some(hint) if catalog.iter().any(|m| m.has_tag(hint)) => {
            (hint.into(), format!(", from {HINT_HEADER}"))
        }
        _ => ("cheap".into(), String::new()),
    }
}

/// Expected milliseconds until `model` answers `req`, penalised by its load and errors: lower is
/// better.
pub fn score(model: &Model, req: &Request) -> f64 {
    let measured = req.stream.then(|| first_token_ms(&model.id)).flatten();
    let wait = measured.unwrap_or(model.health.latency_ms);
    f64::from(wait)
        + IN_FLIGHT_PENALTY_MS * f64::from(model.health.in_flight)
        + ERROR_PENALTY_MS * f64::from(model.health.error_rate.clamp(0.0, 1.0))
}

struct LatencyBalancer;

impl Policy for LatencyBalancer {
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        let (tag, why) = tier(req, catalog);
        let (label, candidates) = match catalog.ranked_fitting(req, &tag) {
            tier if !tier.is_empty() => (tag, tier),
            _ => (
                format!("any (no healthy {tag} model fits)"),
                catalog.ranked_by_cost(|m| m.can_serve(req)),
            ),
        };
        let scores: Vec<f64> = candidates.iter().map(|m| score(m, req)).collect();
        // Two candidates are always both compared; only more need the dice.
        let random = if candidates.len() > 2 {
            random_u64()?
        } else {
            0
        };
        let Some(pick) = two_choices(&scores, random, |s| *s) else {
            return Ok(catalog.unservable(req));
        };
        let (winner, winner_score) = pick.winner;
        let duel = match pick.other {
            Some((other, other_score)) => format!(
                "{} ({winner_score:.0} ms) over {} ({other_score:.0} ms)",
                candidates[winner].id, candidates[other].id
            ),
            None => format!(
                "{} ({winner_score:.0} ms), the only candidate",
                candidates[winner].id
            ),
        };
        let mut rest: Vec<usize> = (0..candidates.len()).filter(|&i| i != winner).collect();
        rest.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let chain = std::iter::once(winner)
            .chain(rest)
            .take(MAX_CHAIN)
            .map(|i| candidates[i].id.as_str());
        Ok(route(chain, format!("{label}{why}: {duel}")))
    }
}

switchyard_sdk::export_policy!(LatencyBalancer);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{self, MockHost, default_catalog, model, rejection_of, route_of};

    /// The route and reason for `req` over `catalog`.
    fn decide(req: &Request, catalog: &Catalog) -> (Vec<String>, String) {
        let decision = LatencyBalancer::decide(req, catalog).unwrap();
        let (models, reason) = route_of(&decision);
        (
            models.into_iter().map(String::from).collect(),
            reason.into(),
        )
    }

    fn hello() -> Request {
        testing::request().user("Hello").build()
    }

    fn with_health(edit: impl Fn(&mut Model)) -> Catalog {
        let mut catalog = default_catalog();
        catalog.0.iter_mut().for_each(edit);
        catalog
    }

    #[test]
    fn equal_models_tie_to_the_cheaper() {
        let (models, reason) = decide(&hello(), &default_catalog());
        assert_eq!(models, ["gpt-4o-mini", "claude-haiku-4-5"]);
        assert_eq!(
            reason,
            "cheap: gpt-4o-mini (0 ms) over claude-haiku-4-5 (0 ms)"
        );
    }

    #[test]
    fn latency_in_flight_and_errors_all_count() {
        let slow = with_health(|m| {
            if m.id == "gpt-4o-mini" {
                m.health.latency_ms = 900.0;
            }
        });
        let (models, reason) = decide(&hello(), &slow);
        assert_eq!(models, ["claude-haiku-4-5", "gpt-4o-mini"]);
        assert_eq!(
            reason,
            "cheap: claude-haiku-4-5 (0 ms) over gpt-4o-mini (900 ms)"
        );

        let busy = with_health(|m| {
            m.health.latency_ms = 200.0;
            m.health.in_flight = if m.id == "gpt-4o-mini" { 3 } else { 1 };
        });
        let (_, reason) = decide(&hello(), &busy);
        assert_eq!(
            reason,
            "cheap: claude-haiku-4-5 (300 ms) over gpt-4o-mini (500 ms)"
        );

        let failing = with_health(|m| {
            m.health.latency_ms = if m.id == "gpt-4o-mini" { 50.0 } else { 100.0 };
            m.health.error_rate = if m.id == "gpt-4o-mini" { 0.5 } else { 0.0 };
        });
        assert_eq!(decide(&hello(), &failing).0[0], "claude-haiku-4-5");
    }

    #[test]
    fn unhealthy_models_are_not_candidates() {
        let down = with_health(|m| m.health.healthy = m.id != "gpt-4o-mini");
        let (models, reason) = decide(&hello(), &down);
        assert_eq!(models, ["claude-haiku-4-5"]);
        assert_eq!(reason, "cheap: claude-haiku-4-5 (0 ms), the only candidate");

        let cheap_down = with_health(|m| m.health.healthy = !m.has_tag("cheap"));
        let (models, reason) = decide(&hello(), &cheap_down);
        assert_eq!(models, ["o3", "claude-sonnet-4-5"]);
        assert!(
            reason.starts_with("any (no healthy cheap model fits): o3"),
            "{reason}"
        );

        let all_down = with_health(|m| m.health.healthy = false);
        let decision = LatencyBalancer::decide(&hello(), &all_down).unwrap();
        assert_eq!(rejection_of(&decision).0, 503);
    }

    #[test]
    fn streams_use_measured_first_token_times() {
        let catalog = with_health(|m| {
            m.health.latency_ms = if m.id == "gpt-4o-mini" { 100.0 } else { 200.0 };
        });
        let _host = MockHost::new()
            .first_token_ms("gpt-4o-mini", 800.0)
            .first_token_ms("claude-haiku-4-5", 300.0)
            .install();
        let stream = testing::request().user("Hello").stream(true).build();
        let (_, reason) = decide(&stream, &catalog);
        assert_eq!(
            reason,
            "cheap: claude-haiku-4-5 (300 ms) over gpt-4o-mini (800 ms)"
        );
        assert_eq!(
            decide(&hello(), &catalog).0[0],
            "gpt-4o-mini",
            "not a stream"
        );
    }

    #[test]
    fn a_requested_model_or_a_hint_picks_the_tier() {
        let catalog = with_health(|m| {
            m.health.latency_ms = if m.id == "o3" { 700.0 } else { 300.0 };
        });
        let asked = testing::request().user("Hi").model("o3").build();
        let (models, reason) = decide(&asked, &catalog);
        assert_eq!(models, ["claude-sonnet-4-5", "o3"]);
        assert_eq!(
            reason,
            "reasoning, tier of requested o3: claude-sonnet-4-5 (300 ms) over o3 (700 ms)"
        );
        let cheap = testing::request()
            .user("Hi")
            .model("claude-haiku-4-5")
            .build();
        assert!(decide(&cheap, &catalog).1.starts_with("cheap, tier of"));

        let hinted = testing::request()
            .user("Hi")
            .header(HINT_HEADER, "reasoning")
            .build();
        let (_, reason) = decide(&hinted, &catalog);
        assert!(
            reason.starts_with("reasoning, from x-switchyard-hint: "),
            "{reason}"
        );
        let unknown = testing::request()
            .user("Hi")
            .header(HINT_HEADER, "telepathy")
            .build();
        assert!(decide(&unknown, &catalog).1.starts_with("cheap: "));
    }

    #[test]
    fn with_more_candidates_two_are_sampled_and_the_slowest_never_wins() {
        let catalog = Catalog(
            [("a", 100.0), ("b", 200.0), ("c", 300.0), ("d", 900.0)]
                .into_iter()
                .map(|(id, ms)| model(id).tags(["cheap"]).latency_ms(ms).build())
                .collect(),
        );
        let mut winners = std::collections::BTreeSet::new();
        for seed in 0..32 {
            let _host = MockHost::new().random_seed(seed).install();
            let (models, reason) = decide(&hello(), &catalog);
            assert_eq!(models.len(), MAX_CHAIN);
            assert_ne!(models[0], "d", "the slowest loses every duel");
            let rest = &models[1..];
            assert!(
                rest.windows(2).all(|w| w[0] < w[1]),
                "fallbacks by score: {models:?}"
            );
            assert!(
                reason.starts_with(&format!("cheap: {} (", models[0])),
                "{reason}"
            );
            winners.insert(models[0].clone());
        }
        assert_eq!(winners.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
