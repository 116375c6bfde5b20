//! # cost-router: Switchyard's bundled routing policy
//!
//! Sends short, simple prompts to the cheapest healthy model tagged `cheap`, and long, multi-step
//! or tool-using requests to the cheapest healthy model tagged `reasoning`; an explicitly requested
//! catalog model is honoured. Every route carries fallbacks of the same tier, cheapest first. An
//! embeddings request (whose catalog holds only embedding models) goes to the requested model, or
//! to the cheapest healthy one whose context window fits its inputs.
//!
//! It reads at most [`CUE_SCAN_CHARS`] characters of the last user message through the host to
//! look for multi-step cues; all other signals come from the request view.

use switchyard_sdk::{
    Catalog, Decision, ModelExt, Operation, Policy, Request, RequestExt, find_cue_ignoring_case,
    route,
};

/// How much of the last user message is scanned for cues.
pub const CUE_SCAN_CHARS: u32 = 4096;
/// Prompts above this many estimated tokens count as long.
pub const LONG_PROMPT_TOKENS: u32 = 1500;
/// Conversations with more messages than this count as long.
pub const LONG_CONVERSATION_MESSAGES: usize = 12;
/// Longest chain of targets a route carries.
pub const MAX_CHAIN: usize = 3;

const CUES: &[&str] = &[
    "step by step",
    "step-by-step",
    "think through",
    "reason about",
    "prove",
    "derive",
    "multi-step",
    "trade-off",
    "tradeoff",
    "plan",
];

/// Why a request needs a reasoning model, or `None` when a cheap one will do.
pub fn complexity(req: &Request, last_user_text: Option<&str>) -> Option<String> {
    if req.has_tools || req.messages.iter().any(|m| m.has_tool_call) {
        return Some("tool use".into());
    }
    if req.estimated_input_tokens > LONG_PROMPT_TOKENS {
        return Some(format!(
            "long prompt (~{} tokens)",
            req.estimated_input_tokens
        ));
    }
    if req.messages.len() > LONG_CONVERSATION_MESSAGES {
        return Some(format!(
            "long conversation ({} messages)",
            req.messages.len()
        ));
    }
    let text = last_user_text?;
    if let Some(cue) = find_cue_ignoring_case(text, CUES) {
        return Some(format!("multi-step cue '{cue}'"));
    }
    let numbered_steps = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.len() > 2
                && l.as_bytes()[0].is_ascii_digit()
                && matches!(l.as_bytes()[1], b'.' | b')')
        })
        .count();
    (numbered_steps >= 3).then(|| format!("{numbered_steps} numbered steps"))
}

/// The decision for `req`, given what [`complexity`] found.
pub fn plan(req: &Request, catalog: &Catalog, complex: Option<String>) -> Result<Decision, String> {
    if let Some(asked) = req
        .requested_model
        .as_deref()
        .and_then(|id| catalog.get(id))
    {
        let tier = if asked.has_tag("reasoning") {
            "reasoning"
        } else {
            "cheap"
        };
        let mut chain = vec![asked.id.as_str()];
        chain.extend(
            catalog
                .ranked_fitting(req, tier)
                .iter()
                .filter(|m| m.id != asked.id)
                .map(|m| m.id.as_str()),
        );
        chain.truncate(MAX_CHAIN);
        return Ok(route(chain, format!("requested model {}", asked.id)));
    }
    let (tier, why) = match complex {
        Some(why) => ("reasoning", why),
        None => (
            "cheap",
            format!("simple prompt (~{} tokens)", req.estimated_input_tokens),
        ),
    };
    let mut chain = catalog.ranked_fitting(req, tier);
    if chain.is_empty() {
        chain = catalog.ranked_by_cost(|m| m.can_serve(req));
    }
    if chain.is_empty() {
        return Ok(catalog.unservable(req));
    }
    chain.truncate(MAX_CHAIN);
    Ok(route(
        chain.iter().map(|m| m.id.as_str()),
        format!("{tier}: {why}"),
    ))
}

/// The decision for an embeddings request: the requested model when the catalog has it, else
/// the cheapest healthy models that fit, cheapest first.
pub fn plan_embeddings(req: &Request, catalog: &Catalog) -> Decision {
    let mut chain: Vec<&str> = Vec::new();
    let requested = req
        .requested_model
        .as_deref()
        .and_then(|id| catalog.get(id));
    if let Some(asked) = requested {
        chain.push(asked.id.as_str());
    }
    chain.extend(
        catalog
            .ranked_by_cost(|m| m.can_serve(req))
            .iter()
            .map(|m| m.id.as_str())
            .filter(|id| Some(*id) != requested.map(|m| m.id.as_str())),
    );
    if chain.is_empty() {
        return catalog.unservable(req);
    }
    chain.truncate(MAX_CHAIN);
    let why = match requested {
        Some(asked) => format!("requested model {}", asked.id),
        None => format!(
            "embeddings: cheapest (~{} tokens)",
            req.estimated_input_tokens
        ),
    };
    route(chain, why)
}

struct CostRouter;

impl Policy for CostRouter {
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        if switchyard_sdk::operation() == Operation::OpenaiEmbeddings {
            return Ok(plan_embeddings(req, catalog));
        }
        let text = req.last_user_text(CUE_SCAN_CHARS);
        plan(req, catalog, complexity(req, text.as_deref()))
    }
}

switchyard_sdk::export_policy!(CostRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{self, default_catalog, model, rejection_of, route_of};

    fn catalog() -> Catalog {
        let priced = |id, cost: f64, tags: &[&str]| {
            model(id)
                .prices(cost, cost * 4.0)
                .tags(tags.iter().copied())
                .latency_ms(200.0)
                .build()
        };
        Catalog(vec![
            priced("big-thinker", 10.0, &["reasoning", "tools"]),
            priced("mini", 0.15, &["cheap", "fast"]),
            priced("thinker", 3.0, &["reasoning", "tools", "vision"]),
            priced("lite", 0.3, &["cheap"]),
        ])
    }

    /// A request of `messages` user messages of `text`.
    fn request(messages: usize, text: &str) -> testing::RequestBuilder {
        (0..messages).fold(testing::request(), |req, _| req.user(text))
    }

    /// What the policy decides for `req` over [`catalog`], reading texts from the mock host.
    fn decide(req: &Request) -> (Vec<String>, String) {
        let decision = CostRouter::decide(req, &catalog()).unwrap();
        let (models, reason) = route_of(&decision);
        (
            models.into_iter().map(String::from).collect(),
            reason.into(),
        )
    }

    #[test]
    fn short_question_goes_to_the_cheapest_cheap_model() {
        let (models, reason) = decide(&request(1, "What is the capital of France?").build());
        assert_eq!(models, ["mini", "lite"]);
        assert_eq!(reason, "cheap: simple prompt (~12 tokens)");
    }

    #[test]
    fn long_prompt_goes_to_reasoning_models() {
        let (models, reason) = decide(&request(2, &"Summarise this. ".repeat(200)).build());
        assert_eq!(models, ["thinker", "big-thinker"]);
        assert_eq!(reason, "reasoning: long prompt (~1608 tokens)");
    }

    #[test]
    fn multi_step_cues_and_numbered_steps_need_reasoning() {
        let (models, _) = decide(&request(1, "Explain step by step how TLS works").build());
        assert_eq!(models[0], "thinker");
        let (models, _) = decide(&request(1, "Improve this sentence, then approve it.").build());
        assert_eq!(models[0], "mini", "cues match whole words only");
        let (_, reason) = decide(&request(1, "Plan: a trip.").build());
        assert_eq!(reason, "reasoning: multi-step cue 'plan'");
        let (_, reason) = decide(&request(1, "Do this:\n1. parse\n2. check\n3) emit").build());
        assert_eq!(reason, "reasoning: 3 numbered steps");
        let (models, _) = decide(&request(1, "1. only one").build());
        assert_eq!(models[0], "mini");
    }

    #[test]
    fn only_the_last_user_message_is_scanned() {
        let req = testing::request()
            .user("Think step by step.")
            .assistant("Sure.")
            .user("Thanks!")
            .build();
        assert_eq!(decide(&req).0[0], "mini");
    }

    #[test]
    fn tools_and_long_conversations_need_reasoning() {
        let (_, reason) = decide(&request(2, "hi").tools(true).build());
        assert_eq!(reason, "reasoning: tool use");
        let (_, reason) = decide(&request(1, "hi").tool_result("42").build());
        assert_eq!(reason, "reasoning: tool use");
        let (_, reason) = decide(&request(13, "hi").build());
        assert_eq!(reason, "reasoning: long conversation (13 messages)");
    }

    #[test]
    fn requested_catalog_model_is_honoured_with_same_tier_fallbacks() {
        let (models, reason) = decide(&request(1, "hi").model("big-thinker").build());
        assert_eq!(models, ["big-thinker", "thinker"]);
        assert_eq!(reason, "requested model big-thinker");
        let (models, _) = decide(&request(1, "prove it").model("lite").build());
        assert_eq!(models, ["lite", "mini"]);
    }

    #[test]
    fn images_need_a_vision_model_and_unhealthy_models_are_skipped() {
        let (models, _) = decide(&request(1, "what is in this picture?").image().build());
        assert_eq!(models, ["thinker"], "only vision model, though not cheap");

        let mut cat = catalog();
        cat.0[1].health.healthy = false;
        let decision = CostRouter::decide(&request(1, "hi").build(), &cat).unwrap();
        assert_eq!(route_of(&decision).0, ["lite"]);
    }

    #[test]
    fn the_default_catalog_routes_as_the_cases_say() {
        let decision = CostRouter::decide(&request(1, "Hello!").build(), &default_catalog());
        assert_eq!(
            route_of(&decision.unwrap()).0,
            ["gpt-4o-mini", "claude-haiku-4-5"]
        );
        let req = request(1, "Think step by step about this trade-off.").build();
        let decision = CostRouter::decide(&req, &default_catalog()).unwrap();
        assert_eq!(route_of(&decision).0, ["o3", "claude-sonnet-4-5"]);
    }

    #[test]
    fn nothing_fits_is_a_rejection_that_says_why() {
        let decision = CostRouter::decide(&request(1, &"x".repeat(600_000)).build(), &catalog());
        let decision = decision.unwrap();
        let (status, message) = rejection_of(&decision);
        assert_eq!(status, 400);
        assert!(
            message.contains("larger than every available model's context window"),
            "{message}"
        );

        let no_vision = Catalog(
            catalog()
                .0
                .into_iter()
                .filter(|m| !m.has_tag("vision"))
                .collect(),
        );
        let images = request(1, "look").image().build();
        let decision = CostRouter::decide(&images, &no_vision).unwrap();
        assert_eq!(
            rejection_of(&decision),
            (400, "no model available to you accepts images")
        );

        let mut down = catalog();
        down.0.iter_mut().for_each(|m| m.health.healthy = false);
        let decision = CostRouter::decide(&request(1, "hi").build(), &down).unwrap();
        assert_eq!(
            rejection_of(&decision).0,
            503,
            "only health stands in the way"
        );
    }

    #[test]
    fn embeddings_go_to_the_requested_or_cheapest_embedding_model() {
        let embedders = Catalog(vec![
            model("embed-large").prices(0.13, 0.0).build(),
            model("embed-small").prices(0.02, 0.0).build(),
        ]);
        let _host = testing::MockHost::new()
            .operation(Operation::OpenaiEmbeddings)
            .install();
        let req = request(2, "a sentence to embed").build();
        let decision = CostRouter::decide(&req, &embedders).unwrap();
        let (models, reason) = route_of(&decision);
        assert_eq!(models, ["embed-small", "embed-large"]);
        assert!(reason.starts_with("embeddings: cheapest"), "{reason}");

        let asked = request(1, "x").model("embed-large").build();
        let decision = CostRouter::decide(&asked, &embedders).unwrap();
        assert_eq!(
            route_of(&decision),
            (
                vec!["embed-large", "embed-small"],
                "requested model embed-large"
            )
        );
    }
}
