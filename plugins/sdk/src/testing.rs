//! Native unit tests for policies: a mock host and builders for requests and catalogs (not
//! compiled for `wasm32`).
//!
//! Off `wasm32`, the SDK's host calls ([`RequestExt::message_text`](crate::RequestExt),
//! [`team_budget`](crate::team_budget), [`first_token_ms`](crate::first_token_ms),
//! [`random_u64`](crate::random_u64), [`log`](crate::log)) answer from a mock host kept per
//! thread, so every test (its own thread under `cargo test`) has its own. Without setup it knows
//! no message text, no budget and no first-token time, and its randomness is seeded with 0.
//!
//! - [`MockHost`] sets what the host answers; [`MockHost::install`] returns a guard that resets
//!   the mock when dropped. [`logs`] reads what the policy logged.
//! - [`request`] builds a [`Request`] as the host would (message summaries, token estimate) and
//!   gives the mock host its message texts; build it after installing a [`MockHost`].
//! - [`model`] builds a catalog [`Model`]; [`default_catalog`] is `config/switchyard.toml`'s.
//! - [`route_of`] and [`rejection_of`] take a [`Decision`] apart for assertions.
//!
//! ```
//! use switchyard_sdk::testing::{self, MockHost};
//! use switchyard_sdk::{RequestExt, first_token_ms, team_budget};
//!
//! let _host = MockHost::new().budget(10.0, 4.0, 3600).first_token_ms("o3", 420.0).install();
//! let req = testing::request().system("Be brief.").user("Hello there").stream(true).build();
//! assert_eq!(req.estimated_input_tokens, 5 + 8, "20 characters, 2 messages");
//! assert_eq!(req.message_text(1, 5).as_deref(), Some("Hello"));
//! assert_eq!(team_budget().unwrap().remaining_share(), 0.6);
//! assert_eq!(first_token_ms("o3"), Some(420.0));
//! assert_eq!(first_token_ms("gpt-4o-mini"), None);
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::log::Level;
use crate::{
    Budget, Catalog, ClientApi, Decision, MessageSummary, Model, ModelHealth, Operation, Pair,
    Request, Role,
};

/// What the mock host of this thread answers, and what it was told.
#[derive(Debug, Default)]
struct State {
    texts: Vec<String>,
    budget: Option<Budget>,
    first_token_ms: BTreeMap<String, f32>,
    operation: Option<Operation>,
    random: u64,
    logs: Vec<(Level, String)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// What the mock host answers, set up with a builder and put in place with [`MockHost::install`].
#[derive(Debug, Clone, Default)]
pub struct MockHost {
    texts: Option<Vec<String>>,
    budget: Option<Budget>,
    first_token_ms: BTreeMap<String, f32>,
    operation: Option<Operation>,
    random_seed: u64,
}

impl MockHost {
    /// A host that knows nothing (no budget, no first-token times, random seed 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The texts of the request's messages, by index. [`request`] sets them too.
    pub fn message_text<S: Into<String>>(mut self, texts: impl IntoIterator<Item = S>) -> Self {
        self.texts = Some(texts.into_iter().map(Into::into).collect());
        self
    }

    /// What `team_budget()` answers.
    pub fn budget(mut self, limit_usd: f64, spent_usd: f64, resets_in_seconds: u64) -> Self {
        self.budget = Some(Budget {
            limit_usd,
            spent_usd,
            resets_in_seconds,
        });
        self
    }

    /// What `first_token_ms(model)` answers.
    pub fn first_token_ms(mut self, model: &str, ms: f32) -> Self {
        self.first_token_ms.insert(model.into(), ms);
        self
    }

    /// What `operation()` answers; `Operation::OpenaiChat` unless set.
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Seed of the numbers `random_u64()` answers (a fixed sequence for each seed).
    pub fn random_seed(mut self, seed: u64) -> Self {
        self.random_seed = seed;
        self
    }

    /// Make this thread's mock host answer so (keeping message texts already given by
    /// [`request`] unless [`MockHost::message_text`] was set, and clearing the logs), until the
    /// guard is dropped.
    #[must_use = "the mock host is reset when the guard is dropped"]
    pub fn install(self) -> MockGuard {
        STATE.with_borrow_mut(|state| {
            let texts = self
                .texts
                .unwrap_or_else(|| std::mem::take(&mut state.texts));
            *state = State {
                texts,
                budget: self.budget,
                first_token_ms: self.first_token_ms,
                operation: self.operation,
                random: self.random_seed,
                logs: Vec::new(),
            };
        });
        MockGuard { _private: () }
    }
}

/// Resets this thread's mock host to one that knows nothing when dropped.
#[derive(Debug)]
pub struct MockGuard {
    _private: (),
}

impl Drop for MockGuard {
    fn drop(&mut self) {
        STATE.with_borrow_mut(|state| *state = State::default());
    }
}

/// Every line the policy logged on this thread since the mock host was installed, in order.
pub fn logs() -> Vec<(Level, String)> {
    STATE.with_borrow(|state| state.logs.clone())
}

/// The mock host's answers to the SDK's host calls.
pub(crate) mod answers {
    use super::{Budget, Level, Operation, STATE};

    pub fn message_text(index: u32, max_chars: u32) -> Option<String> {
        STATE.with_borrow(|state| {
            let text = state.texts.get(usize::try_from(index).ok()?)?;
            Some(text.chars().take(max_chars as usize).collect())
        })
    }

    pub fn team_budget() -> Option<Budget> {
        STATE.with_borrow(|state| state.budget)
    }

    pub fn first_token_ms(model: &str) -> Option<f32> {
        STATE.with_borrow(|state| state.first_token_ms.get(model).copied())
    }

    pub fn operation() -> Operation {
        STATE.with_borrow(|state| state.operation.unwrap_or(Operation::OpenaiChat))
    }

    /// SplitMix64 over the seed: a fixed sequence per seed.
    pub fn random_u64() -> Result<u64, String> {
        STATE.with_borrow_mut(|state| {
            state.random = state.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state.random;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Ok(z ^ (z >> 31))
        })
    }

    pub fn log(level: Level, message: &str) {
        STATE.with_borrow_mut(|state| state.logs.push((level, message.into())));
    }
}

/// A request builder, starting from an OpenAI-format request for model `auto` with no messages.
pub fn request() -> RequestBuilder {
    RequestBuilder {
        request: Request {
            id: "test-request".into(),
            api: ClientApi::OpenaiChat,
            requested_model: Some("auto".into()),
            team: None,
            messages: Vec::new(),
            estimated_input_tokens: 0,
            max_output_tokens: None,
            stream: false,
            has_tools: false,
            has_images: false,
            temperature: None,
            headers: Vec::new(),
            metadata: Vec::new(),
        },
        texts: Vec::new(),
    }
}

/// Builds a [`Request`] message by message; see [`request`].
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    request: Request,
    texts: Vec<String>,
}

impl RequestBuilder {
    /// Append a message.
    pub fn message(mut self, role: Role, text: &str) -> Self {
        self.request.messages.push(MessageSummary {
            role,
            chars: u32::try_from(text.chars().count()).unwrap_or(u32::MAX),
            has_image: false,
            has_tool_call: role == Role::Tool,
        });
        self.texts.push(text.into());
        self
    }

    /// Append a system message.
    pub fn system(self, text: &str) -> Self {
        self.message(Role::System, text)
    }

    /// Append a user message.
    pub fn user(self, text: &str) -> Self {
        self.message(Role::User, text)
    }

    /// Append an assistant message.
    pub fn assistant(self, text: &str) -> Self {
        self.message(Role::Assistant, text)
    }

    /// Append a tool result.
    pub fn tool_result(self, text: &str) -> Self {
        self.message(Role::Tool, text)
    }

    /// The last message carries an image too.
    pub fn image(mut self) -> Self {
        let last = self
            .request
            .messages
            .last_mut()
            .expect("add a message before its image");
        last.has_image = true;
        self.request.has_images = true;
        self
    }

    /// The `model` the client asked for (`auto` by default).
    pub fn model(mut self, id: &str) -> Self {
        self.request.requested_model = Some(id.into());
        self
    }

    /// The client API the request came in on (OpenAI chat by default).
    pub fn api(mut self, api: ClientApi) -> Self {
        self.request.api = api;
        self
    }

    /// The team the request belongs to.
    pub fn team(mut self, team: &str) -> Self {
        self.request.team = Some(team.into());
        self
    }

    /// The request id (`test-request` by default).
    pub fn id(mut self, id: &str) -> Self {
        self.request.id = id.into();
        self
    }

    pub fn stream(mut self, stream: bool) -> Self {
        self.request.stream = stream;
        self
    }

    /// The request declares tools.
    pub fn tools(mut self, tools: bool) -> Self {
        self.request.has_tools = tools;
        self
    }

    pub fn max_output_tokens(mut self, tokens: u32) -> Self {
        self.request.max_output_tokens = Some(tokens);
        self
    }

    /// An allow-listed request header (the name is lower-cased, as the host does).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers.push(Pair {
            name: name.to_ascii_lowercase(),
            value: value.into(),
        });
        self
    }

    /// A `metadata` entry.
    pub fn metadata(mut self, name: &str, value: &str) -> Self {
        self.request.metadata.push(Pair {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// The request, with the host's token estimate (a token per four characters, plus four per
    /// message); its message texts become what this thread's mock host answers.
    pub fn build(mut self) -> Request {
        let chars: u64 = self
            .request
            .messages
            .iter()
            .map(|m| u64::from(m.chars))
            .sum();
        let tokens = chars.div_ceil(4) + 4 * self.request.messages.len() as u64;
        self.request.estimated_input_tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
        STATE.with_borrow_mut(|state| state.texts = self.texts);
        self.request
    }
}

/// A catalog model builder: provider `echo`, free, 128k-token window, no tags, healthy and idle.
pub fn model(id: &str) -> ModelBuilder {
    ModelBuilder(Model {
        id: id.into(),
        provider: "echo".into(),
        input_cost_per_mtok: 0.0,
        output_cost_per_mtok: 0.0,
        context_window: 128_000,
        tags: Vec::new(),
        health: ModelHealth {
            healthy: true,
            latency_ms: 0.0,
            error_rate: 0.0,
            in_flight: 0,
        },
    })
}

/// Builds a catalog [`Model`]; see [`model`].
#[derive(Debug, Clone)]
pub struct ModelBuilder(Model);

impl ModelBuilder {
    pub fn provider(mut self, provider: &str) -> Self {
        self.0.provider = provider.into();
        self
    }

    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.0.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// US dollars per million input and output tokens.
    pub fn prices(mut self, input_per_mtok: f64, output_per_mtok: f64) -> Self {
        self.0.input_cost_per_mtok = input_per_mtok;
        self.0.output_cost_per_mtok = output_per_mtok;
        self
    }

    /// Context window in tokens.
    pub fn window(mut self, tokens: u32) -> Self {
        self.0.context_window = tokens;
        self
    }

    pub fn healthy(mut self, healthy: bool) -> Self {
        self.0.health.healthy = healthy;
        self
    }

    pub fn latency_ms(mut self, ms: f32) -> Self {
        self.0.health.latency_ms = ms;
        self
    }

    pub fn error_rate(mut self, rate: f32) -> Self {
        self.0.health.error_rate = rate;
        self
    }

    pub fn in_flight(mut self, requests: u32) -> Self {
        self.0.health.in_flight = requests;
        self
    }

    pub fn build(self) -> Model {
        self.0
    }
}

/// The catalog of `config/switchyard.toml`: four echo-served models, healthy and idle.
pub fn default_catalog() -> Catalog {
    let tagged = |id, input, output, window, tags: &[&str]| {
        model(id)
            .prices(input, output)
            .window(window)
            .tags(tags.iter().copied())
            .build()
    };
    Catalog(vec![
        tagged(
            "gpt-4o-mini",
            0.15,
            0.60,
            128_000,
            &["cheap", "fast", "tools", "vision"],
        ),
        tagged(
            "claude-haiku-4-5",
            1.00,
            5.00,
            200_000,
            &["cheap", "fast", "tools", "vision"],
        ),
        tagged("o3", 2.00, 8.00, 200_000, &["reasoning", "tools"]),
        tagged(
            "claude-sonnet-4-5",
            3.00,
            15.00,
            200_000,
            &["reasoning", "tools", "vision"],
        ),
    ])
}

/// The embedding models of the proxy's default config (`config/switchyard.toml`), as a policy
/// deciding an embeddings request sees them.
pub fn default_embedding_catalog() -> Catalog {
    Catalog(vec![
        model("text-embedding-3-small")
            .prices(0.02, 0.0)
            .window(8191)
            .build(),
    ])
}

/// The models and reason of a route; panics on a rejection.
pub fn route_of(decision: &Decision) -> (Vec<&str>, &str) {
    match decision {
        Decision::Route(r) => (
            r.targets.iter().map(|t| t.model.as_str()).collect(),
            r.reason.as_str(),
        ),
        Decision::Reject(r) => panic!("expected a route, got a rejection: {r:?}"),
    }
}

/// The status and message of a rejection; panics on a route.
pub fn rejection_of(decision: &Decision) -> (u16, &str) {
    match decision {
        Decision::Reject(r) => (r.status, r.message.as_str()),
        Decision::Route(r) => panic!("expected a rejection, got a route: {r:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestExt, first_token_ms, log, random_u64, team_budget};

    #[test]
    fn the_default_catalogs_are_the_default_configs() {
        let config = include_str!("../../../config/switchyard.toml");
        let chat = default_catalog();
        let embeddings = default_embedding_catalog();
        assert_eq!(
            chat.0.len() + embeddings.0.len(),
            config.matches("[[models]]").count()
        );
        for (m, embedder) in chat
            .iter()
            .map(|m| (m, false))
            .chain(embeddings.iter().map(|m| (m, true)))
        {
            let at = config
                .find(&format!("id = {:?}", m.id))
                .unwrap_or_else(|| panic!("{} is not in the config", m.id));
            let entry = &config[at..];
            let entry = &entry[..entry.find("[[models]]").unwrap_or(entry.len())];
            let mut lines = vec![
                format!("input_cost_per_mtok = {:.2}", m.input_cost_per_mtok),
                format!("context_window = {}", m.context_window),
            ];
            if embedder {
                lines.push("kind = \"embeddings\"".into());
            } else {
                lines.push(format!(
                    "output_cost_per_mtok = {:.2}",
                    m.output_cost_per_mtok
                ));
                lines.push(format!("tags = {:?}", m.tags));
            }
            for line in lines {
                assert!(entry.contains(&line), "{}: no `{line}` in\n{entry}", m.id);
            }
        }
    }

    #[test]
    fn the_mock_host_answers_until_its_guard_drops() {
        assert_eq!(team_budget(), None);
        {
            let _host = MockHost::new()
                .budget(10.0, 9.0, 60)
                .first_token_ms("o3", 420.0)
                .install();
            assert_eq!(team_budget().unwrap().spent_usd, 9.0);
            assert_eq!(first_token_ms("o3"), Some(420.0));
            log::info("one");
            log::error("two");
            assert_eq!(
                logs(),
                [(Level::Info, "one".into()), (Level::Error, "two".into())]
            );
        }
        assert_eq!(team_budget(), None);
        assert_eq!(first_token_ms("o3"), None);
        assert!(logs().is_empty());
    }

    #[test]
    fn randomness_is_a_fixed_sequence_per_seed() {
        let draw = |seed| {
            let _host = MockHost::new().random_seed(seed).install();
            [random_u64().unwrap(), random_u64().unwrap()]
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert_ne!(draw(7)[0], draw(7)[1]);
    }

    #[test]
    fn requests_are_summarised_as_the_host_does() {
        let req = request()
            .system("Be brief.")
            .user("héllo")
            .image()
            .assistant("")
            .tool_result("42")
            .model("o3")
            .stream(true)
            .tools(true)
            .max_output_tokens(50)
            .build();
        let chars: Vec<u32> = req.messages.iter().map(|m| m.chars).collect();
        assert_eq!(chars, [9, 5, 0, 2]);
        assert_eq!(req.estimated_input_tokens, 4 + 16, "16 chars, 4 messages");
        assert!(req.has_images && req.messages[1].has_image && !req.messages[0].has_image);
        assert!(req.messages[3].has_tool_call && !req.messages[1].has_tool_call);
        assert_eq!(req.requested_model.as_deref(), Some("o3"));
        assert!(req.stream && req.has_tools);
        assert_eq!(req.max_output_tokens, Some(50));
        assert_eq!(req.message_text(0, 100).as_deref(), Some("Be brief."));
        assert_eq!(req.message_text(3, 100).as_deref(), Some("42"));
    }

    #[test]
    fn installing_a_host_keeps_the_request_texts_unless_given() {
        let req = request().user("kept").build();
        let guard = MockHost::new().budget(1.0, 0.0, 1).install();
        assert_eq!(req.message_text(0, 10).as_deref(), Some("kept"));
        drop(guard);
        assert_eq!(req.message_text(0, 10), None, "the guard reset the texts");
    }

    #[test]
    fn models_are_built_with_their_health() {
        let m = model("m")
            .provider("p")
            .tags(["cheap"])
            .prices(0.15, 0.6)
            .window(1000)
            .healthy(false)
            .latency_ms(900.0)
            .error_rate(0.5)
            .in_flight(3)
            .build();
        assert_eq!((m.id.as_str(), m.provider.as_str()), ("m", "p"));
        assert_eq!(m.tags, ["cheap"]);
        assert_eq!((m.input_cost_per_mtok, m.output_cost_per_mtok), (0.15, 0.6));
        assert_eq!(m.context_window, 1000);
        assert!(!m.health.healthy);
        assert_eq!(
            (m.health.latency_ms, m.health.error_rate, m.health.in_flight),
            (900.0, 0.5, 3)
        );
    }
}
