//! # task-classifier: route by what the prompt asks for
//!
//! An example Switchyard policy that reads the start of the last user message through the host
//! (`host.message-text`, at most [`SCAN_CHARS`] characters) and classifies the request by cues in
//! it, matched as whole words: summarisation ("summarize", "tl;dr", …), then code (a fence
//! "```", language keywords such as `def` or `#include`), then reasoning ("step by step",
//! "prove", …), else chat. It routes
//!
//! - code to the cheapest `tools` model that can fit it;
//! - reasoning to the cheapest `reasoning` model;
//! - summarisation to the cheapest `cheap` model, or, for a prompt over
//!   [`LONG_SUMMARY_TOKENS`], to the `cheap` model with the largest context window;
//! - chat to the cheapest `cheap` model;
//!
//! with fallbacks in the same order, and when no such model can serve the request, to the
//! cheapest model that can. The reason names the class and its cue (`code: cue '```'`), and one
//! log line per request records the class.

use switchyard_sdk::{
    Catalog, Decision, Model, ModelExt, Policy, Request, RequestExt, find_cue_ignoring_case, log,
    route,
};

/// How much of the last user message is scanned for cues.
pub const SCAN_CHARS: u32 = 4096;
/// Summarisation prompts above this many estimated tokens go to the largest context window.
pub const LONG_SUMMARY_TOKENS: u32 = 2000;
/// Longest chain of targets a route carries.
pub const MAX_CHAIN: usize = 3;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Summarisation,
    Code,
    Reasoning,
    Chat,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Summarisation => "summarisation",
            Task::Code => "code",
            Task::Reasoning => "reasoning",
            Task::Chat => "chat",
        }
    }
}

/// Cues of each class, in the order the classes are tried.
const CUES: &[(Task, &[&str])] = &[
    (
        Task::Summarisation,
        &[
            "summarize",
            "summarise",
            "summary",
            "tl;dr",
            "tldr",
            "key points",
            "condense",
        ],
    ),
    (
        Task::Code,
        &[
            "```",
            "#include",
            "println!",
            "console.log",
            "def",
            "fn",
            "impl",
            "function",
            "traceback",
            "stack trace",
            "segfault",
            "compiler",
            "regex",
            "python",
            "javascript",
            "typescript",
            "sql",
        ],
    ),
    (
        Task::Reasoning,
        &[
            "step by step",
            "step-by-step",
            "prove",
            "proof",
            "derive",
            "think through",
            "trade-off",
            "why does",
        ],
    ),
];

/// The class of `text` and the cue that decided it (`None` for chat).
pub fn classify(text: &str) -> (Task, Option<&'static str>) {
    CUES.iter()
        .find_map(|(task, cues)| find_cue_ignoring_case(text, cues).map(|cue| (*task, Some(cue))))
        .unwrap_or((Task::Chat, None))
}

/// The decision for `req`, of class `task` found by `cue`.
pub fn plan(req: &Request, catalog: &Catalog, task: Task, cue: Option<&str>) -> Decision {
    let mut reason = match cue {
        Some(cue) => format!("{}: cue '{cue}'", task.name()),
        None => format!("{}: no cue", task.name()),
    };
    let mut chain: Vec<&Model> = match task {
        Task::Code => catalog.ranked_fitting(req, "tools"),
        Task::Reasoning => catalog.ranked_fitting(req, "reasoning"),
        Task::Summarisation if req.estimated_input_tokens > LONG_SUMMARY_TOKENS => {
            reason.push_str(&format!(
                ", long (~{} tokens): largest context first",
                req.estimated_input_tokens
            ));
            let mut roomy = catalog.ranked_fitting(req, "cheap");
            roomy.sort_by_key(|m| std::cmp::Reverse(m.context_window));
            roomy
        }
        Task::Summarisation | Task::Chat => catalog.ranked_fitting(req, "cheap"),
    };
    if chain.is_empty() {
        chain = catalog.ranked_by_cost(|m| m.can_serve(req));
        reason.push_str(", no model of its kind can serve it");
    }
    if chain.is_empty() {
        return catalog.unservable(req);
    }
    chain.truncate(MAX_CHAIN);
    route(chain.iter().map(|m| m.id.as_str()), reason)
}

struct TaskClassifier;

impl Policy for TaskClassifier {
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        let text = req.last_user_text(SCAN_CHARS).unwrap_or_default();
        let (task, cue) = classify(&text);
        log::info(&format!("task class {}", task.name()));
        Ok(plan(req, catalog, task, cue))
    }
}

switchyard_sdk::export_policy!(TaskClassifier);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::log::Level;
    use switchyard_sdk::testing::{self, MockHost, default_catalog, logs, route_of};

    fn decide(req: &Request) -> (Vec<String>, String) {
        let decision = TaskClassifier::decide(req, &default_catalog()).unwrap();
        let (models, reason) = route_of(&decision);
        (
            models.into_iter().map(String::from).collect(),
            reason.into(),
        )
    }

    fn ask(text: &str) -> Request {
        testing::request().user(text).build()
    }

    #[test]
    fn cues_decide_the_class_in_order() {
        assert_eq!(
            classify("Fix this:\n```rust\nlet x = 1;\n```"),
            (Task::Code, Some("```"))
        );
        assert_eq!(
            classify("def parse(s): return s"),
            (Task::Code, Some("def"))
        );
        assert_eq!(classify("Why is my SQL slow?"), (Task::Code, Some("sql")));
        assert_eq!(
            classify("Prove that there are infinitely many primes."),
            (Task::Reasoning, Some("prove"))
        );
        assert_eq!(
            classify("TL;DR of this thread please"),
            (Task::Summarisation, Some("tl;dr"))
        );
        assert_eq!(
            classify("Summarize this function for me"),
            (Task::Summarisation, Some("summarize")),
            "summarisation comes before code"
        );
        assert_eq!(classify("How are you today?"), (Task::Chat, None));
        assert_eq!(
            classify("I want to improve my defence"),
            (Task::Chat, None),
            "cues are whole words"
        );
    }

    #[test]
    fn each_class_goes_to_its_kind_of_model() {
        let (models, reason) = decide(&ask("Why does this panic?\n```\nfn main() {}\n```"));
        assert_eq!(models, ["gpt-4o-mini", "claude-haiku-4-5", "o3"]);
        assert_eq!(reason, "code: cue '```'");
        let (models, reason) = decide(&ask("Prove that sqrt(2) is irrational."));
        assert_eq!(models, ["o3", "claude-sonnet-4-5"]);
        assert_eq!(reason, "reasoning: cue 'prove'");
        let (models, reason) = decide(&ask("Summarise: the meeting went well."));
        assert_eq!(models, ["gpt-4o-mini", "claude-haiku-4-5"]);
        assert_eq!(reason, "summarisation: cue 'summarise'");
        let (models, reason) = decide(&ask("Hello there!"));
        assert_eq!(models, ["gpt-4o-mini", "claude-haiku-4-5"]);
        assert_eq!(reason, "chat: no cue");
    }

    #[test]
    fn a_long_summary_goes_to_the_largest_context_first() {
        let text = format!("tl;dr\n{}", "All work and no play. ".repeat(400));
        let (models, reason) = decide(&ask(&text));
        assert_eq!(models, ["claude-haiku-4-5", "gpt-4o-mini"]);
        assert_eq!(
            reason,
            "summarisation: cue 'tl;dr', long (~2206 tokens): largest context first"
        );
    }

    #[test]
    fn only_the_scanned_start_of_the_last_user_message_counts() {
        let late = format!("{}step by step", "a ".repeat(SCAN_CHARS as usize));
        assert_eq!(decide(&ask(&late)).1, "chat: no cue");
        let earlier = testing::request()
            .user("Prove it")
            .assistant("Done.")
            .user("Thanks")
            .build();
        assert_eq!(decide(&earlier).1, "chat: no cue");
    }

    #[test]
    fn code_that_fits_no_tools_model_falls_back() {
        let mut catalog = default_catalog();
        catalog.0.retain(|m| m.id == "gpt-4o-mini");
        catalog.0[0].tags.retain(|t| t != "tools");
        let decision = TaskClassifier::decide(&ask("def f(): pass"), &catalog).unwrap();
        assert_eq!(
            route_of(&decision),
            (
                vec!["gpt-4o-mini"],
                "code: cue 'def', no model of its kind can serve it"
            )
        );
    }

    #[test]
    fn one_log_line_names_the_class() {
        let _host = MockHost::new().install();
        decide(&ask("Prove it."));
        assert_eq!(logs(), [(Level::Info, "task class reasoning".to_string())]);
    }
}
