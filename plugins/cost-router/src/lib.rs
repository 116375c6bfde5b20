//! # cost-router: Switchyard's bundled routing policy
//!
//! Sends short, simple prompts to the cheapest healthy model tagged `cheap`, and long, multi-step
//! or tool-using requests to the cheapest healthy model tagged `reasoning`; an explicitly requested
//! catalog model is honoured. Every route carries fallbacks of the same tier, cheapest first.
//!
//! It reads at most [`CUE_SCAN_CHARS`] characters of the last user message through the host to
//! look for multi-step cues; all other signals come from the request view.

use switchyard_sdk::{Catalog, Decision, ModelExt, Policy, Request, RequestExt, reject, route};

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

/// The first cue that stands as whole words in `text` (so `prove` does not match `improve`).
fn find_cue(text: &str) -> Option<&'static str> {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    CUES.iter().copied().find(|cue| {
        text.match_indices(cue).any(|(at, _)| {
            !is_word(text[..at].chars().next_back())
                && !is_word(text[at + cue.len()..].chars().next())
        })
    })
}

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
    let text = last_user_text?.to_lowercase();
    if let Some(cue) = find_cue(&text) {
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
    let fits = |m: &switchyard_sdk::Model| m.fits(req) && (!req.has_images || m.has_tag("vision"));
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
                .ranked_by_cost(|m| m.id != asked.id && m.has_tag(tier) && fits(m))
                .iter()
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
    let mut chain: Vec<&str> = catalog
        .ranked_by_cost(|m| m.has_tag(tier) && fits(m))
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    if chain.is_empty() {
        chain = catalog
            .ranked_by_cost(fits)
            .iter()
            .map(|m| m.id.as_str())
            .collect();
    }
    if chain.is_empty() {
        return Ok(nothing_fits(req, catalog, fits));
    }
    chain.truncate(MAX_CHAIN);
    Ok(route(chain, format!("{tier}: {why}")))
}

/// The rejection when no healthy model can take `req`: 503 when only health stands in the way,
/// else 400 saying what no model offers.
fn nothing_fits(
    req: &Request,
    catalog: &Catalog,
    fits: impl Fn(&switchyard_sdk::Model) -> bool,
) -> Decision {
    if catalog.iter().any(fits) {
        return reject(
            503,
            "every model that could serve this request is unhealthy; try again later",
        );
    }
    if req.has_images && !catalog.iter().any(|m| m.has_tag("vision")) {
        return reject(400, "no model available to you accepts images");
    }
    reject(
        400,
        format!(
            "the prompt (~{} tokens) is larger than every available model's context window",
            req.estimated_input_tokens
        ),
    )
}

struct CostRouter;

impl Policy for CostRouter {
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        let text = req
            .last_user_message()
            .and_then(|i| req.message_text(i, CUE_SCAN_CHARS));
        plan(req, catalog, complexity(req, text.as_deref()))
    }
}

switchyard_sdk::export_policy!(CostRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::{ClientApi, MessageSummary, Model, ModelHealth, Role};

    fn model(id: &str, cost: f64, tags: &[&str]) -> Model {
        Model {
            id: id.into(),
            provider: "echo".into(),
            input_cost_per_mtok: cost,
            output_cost_per_mtok: cost * 4.0,
            context_window: 128_000,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            health: ModelHealth {
                healthy: true,
                latency_ms: 200.0,
                error_rate: 0.0,
                in_flight: 0,
            },
        }
    }

    fn catalog() -> Catalog {
        Catalog(vec![
            model("big-thinker", 10.0, &["reasoning", "tools"]),
            model("mini", 0.15, &["cheap", "fast"]),
            model("thinker", 3.0, &["reasoning", "tools", "vision"]),
            model("lite", 0.3, &["cheap"]),
        ])
    }

    fn request(messages: usize, tokens: u32) -> Request {
        Request {
            id: "r1".into(),
            api: ClientApi::OpenaiChat,
            requested_model: Some("auto".into()),
            team: None,
            messages: (0..messages)
                .map(|_| MessageSummary {
                    role: Role::User,
                    chars: tokens * 4,
                    has_image: false,
                    has_tool_call: false,
                })
                .collect(),
            estimated_input_tokens: tokens,
            max_output_tokens: None,
            stream: false,
            has_tools: false,
            has_images: false,
            temperature: None,
            headers: vec![],
            metadata: vec![],
        }
    }

    fn chain(d: Decision) -> (Vec<String>, String) {
        match d {
            Decision::Route(r) => (r.targets.into_iter().map(|t| t.model).collect(), r.reason),
            Decision::Reject(r) => panic!("rejected: {}", r.message),
        }
    }

    fn decide(req: &Request, text: &str) -> (Vec<String>, String) {
        chain(plan(req, &catalog(), complexity(req, Some(text))).unwrap())
    }

    #[test]
    fn short_question_goes_to_the_cheapest_cheap_model() {
        let (models, reason) = decide(&request(1, 12), "What is the capital of France?");
        assert_eq!(models, ["mini", "lite"]);
        assert!(reason.starts_with("cheap: simple prompt"), "{reason}");
    }

    #[test]
    fn long_prompt_goes_to_reasoning_models() {
        let (models, reason) = decide(&request(2, 4000), "Summarise this.");
        assert_eq!(models, ["thinker", "big-thinker"]);
        assert!(reason.contains("long prompt"), "{reason}");
    }

    #[test]
    fn multi_step_cues_and_numbered_steps_need_reasoning() {
        let (models, _) = decide(&request(1, 30), "Explain step by step how TLS works");
        assert_eq!(models[0], "thinker");
        let (models, _) = decide(&request(1, 30), "Improve this sentence, then approve it.");
        assert_eq!(models[0], "mini", "cues match whole words only");
        let (_, reason) = decide(&request(1, 30), "Plan: a trip.");
        assert_eq!(reason, "reasoning: multi-step cue 'plan'");
        let steps = "Do this:\n1. parse\n2. check\n3) emit";
        assert_eq!(
            complexity(&request(1, 30), Some(steps)).unwrap(),
            "3 numbered steps"
        );
        assert_eq!(complexity(&request(1, 30), Some("1. only one")), None);
    }

    #[test]
    fn tools_and_long_conversations_need_reasoning() {
        let mut req = request(2, 50);
        req.has_tools = true;
        assert_eq!(complexity(&req, None).unwrap(), "tool use");
        assert!(
            complexity(&request(13, 10), None)
                .unwrap()
                .contains("13 messages")
        );
    }

    #[test]
    fn requested_catalog_model_is_honoured_with_same_tier_fallbacks() {
        let mut req = request(1, 10);
        req.requested_model = Some("big-thinker".into());
        let (models, reason) = decide(&req, "hi");
        assert_eq!(models, ["big-thinker", "thinker"]);
        assert_eq!(reason, "requested model big-thinker");
    }

    #[test]
    fn images_need_a_vision_model_and_unhealthy_models_are_skipped() {
        let mut req = request(1, 10);
        req.has_images = true;
        let (models, _) = decide(&req, "what is in this picture?");
        assert_eq!(models, ["thinker"], "only vision model, though not cheap");

        let mut cat = catalog();
        cat.0[1].health.healthy = false;
        let (models, _) = chain(plan(&request(1, 10), &cat, None).unwrap());
        assert_eq!(models, ["lite"]);
    }

    #[test]
    fn nothing_fits_is_a_rejection_that_says_why() {
        let rejection = |decision| match decision {
            Decision::Reject(r) => (r.status, r.message),
            other => panic!("expected a rejection, got {other:?}"),
        };
        let (status, message) = rejection(plan(&request(1, 2_000_000), &catalog(), None).unwrap());
        assert_eq!(status, 400);
        assert!(
            message.contains("larger than every available model's context window"),
            "{message}"
        );

        let mut images = request(1, 10);
        images.has_images = true;
        let no_vision = Catalog(
            catalog()
                .0
                .into_iter()
                .filter(|m| !m.has_tag("vision"))
                .collect(),
        );
        let (status, message) = rejection(plan(&images, &no_vision, None).unwrap());
        assert_eq!(
            (status, message.as_str()),
            (400, "no model available to you accepts images")
        );

        let mut down = catalog();
        down.0.iter_mut().for_each(|m| m.health.healthy = false);
        let (status, _) = rejection(plan(&request(1, 10), &down, None).unwrap());
        assert_eq!(status, 503, "only health stands in the way");
    }
}
