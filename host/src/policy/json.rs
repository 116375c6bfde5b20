//! JSON forms of what a policy sees and decides, shared by cases files, catalog files and decision
//! records.
//!
//! The generated WIT types are the contract with guests; these mirror them as a stable, documented
//! file format (lower-case enum names, optional fields defaulted) and convert both ways. Nothing
//! here touches a file: callers read and write the text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wit::{Budget, ClientApi, MessageSummary, ModelHealth, Operation, Pair, Request, Role};
use super::{DecisionFailure, Model, Verdict, input};
use crate::api::{ClientRequest, Wire};
use crate::config::ModelKind;

/// A catalog model, as catalog files (`--catalog`) and decision records hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelJson {
    pub id: String,
    #[serde(default)]
    pub provider: String,
    pub input_cost_per_mtok: f64,
    pub output_cost_per_mtok: f64,
    pub context_window: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    /// What it serves (a catalog file's models); `chat` when absent.
    #[serde(default, skip_serializing_if = "is_chat")]
    pub kind: ModelKind,
    /// Live state; healthy and unmeasured when absent.
    #[serde(default)]
    pub health: HealthJson,
}

fn is_chat(kind: &ModelKind) -> bool {
    *kind == ModelKind::Chat
}

/// A model's live state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthJson {
    pub healthy: bool,
    pub latency_ms: f32,
    pub error_rate: f32,
    pub in_flight: u32,
}

impl Default for HealthJson {
    fn default() -> Self {
        Self::from(&input::unmeasured())
    }
}

impl From<&ModelHealth> for HealthJson {
    fn from(h: &ModelHealth) -> Self {
        Self {
            healthy: h.healthy,
            latency_ms: h.latency_ms,
            error_rate: h.error_rate,
            in_flight: h.in_flight,
        }
    }
}

impl From<HealthJson> for ModelHealth {
    fn from(h: HealthJson) -> Self {
        Self {
            healthy: h.healthy,
            latency_ms: h.latency_ms,
            error_rate: h.error_rate,
            in_flight: h.in_flight,
        }
    }
}

/// Changes to a model's live state; fields left out keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPatch {
    pub healthy: Option<bool>,
    pub latency_ms: Option<f32>,
    pub error_rate: Option<f32>,
    pub in_flight: Option<u32>,
}

impl HealthPatch {
    pub fn apply(&self, health: &mut ModelHealth) {
        if let Some(healthy) = self.healthy {
            health.healthy = healthy;
        }
        if let Some(latency) = self.latency_ms {
            health.latency_ms = latency;
        }
        if let Some(rate) = self.error_rate {
            health.error_rate = rate;
        }
        if let Some(n) = self.in_flight {
            health.in_flight = n;
        }
    }
}

/// Apply `patches` (by model id) to `catalog`; the error names a model it does not hold.
pub fn patch_catalog(
    catalog: &[Model],
    patches: &BTreeMap<String, HealthPatch>,
) -> Result<Vec<Model>, String> {
    let mut catalog = catalog.to_vec();
    for (id, patch) in patches {
        let model = catalog
            .iter_mut()
            .find(|m| &m.id == id)
            .ok_or_else(|| format!("`health` names `{id}`, which is not in the catalog"))?;
        patch.apply(&mut model.health);
    }
    Ok(catalog)
}

impl From<&Model> for ModelJson {
    fn from(m: &Model) -> Self {
        Self {
            id: m.id.clone(),
            provider: m.provider.clone(),
            input_cost_per_mtok: m.input_cost_per_mtok,
            output_cost_per_mtok: m.output_cost_per_mtok,
            context_window: m.context_window,
            tags: m.tags.clone(),
            kind: ModelKind::default(),
            health: HealthJson::from(&m.health),
        }
    }
}

impl From<ModelJson> for Model {
    fn from(m: ModelJson) -> Self {
        Self {
            id: m.id,
            provider: m.provider,
            input_cost_per_mtok: m.input_cost_per_mtok,
            output_cost_per_mtok: m.output_cost_per_mtok,
            context_window: m.context_window,
            tags: m.tags,
            health: m.health.into(),
        }
    }
}

/// What `host.team-budget` answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetJson {
    pub limit_usd: f64,
    pub spent_usd: f64,
    #[serde(default)]
    pub resets_in_seconds: u64,
}

impl From<BudgetJson> for Budget {
    fn from(b: BudgetJson) -> Self {
        Self {
            limit_usd: b.limit_usd,
            spent_usd: b.spent_usd,
            resets_in_seconds: b.resets_in_seconds,
        }
    }
}

impl From<&Budget> for BudgetJson {
    fn from(b: &Budget) -> Self {
        Self {
            limit_usd: b.limit_usd,
            spent_usd: b.spent_usd,
            resets_in_seconds: b.resets_in_seconds,
        }
    }
}

/// The request view a policy was given, as a decision record holds it (no message text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestJson {
    pub id: String,
    pub api: ApiJson,
    /// What `host.request-operation` answered; records made before it existed have none, and
    /// their operation follows from `api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationJson>,
    pub requested_model: Option<String>,
    pub team: Option<String>,
    pub messages: Vec<MessageJson>,
    pub estimated_input_tokens: u32,
    pub max_output_tokens: Option<u32>,
    pub stream: bool,
    pub has_tools: bool,
    pub has_images: bool,
    pub temperature: Option<f32>,
    /// Allow-listed headers only; credentials are never among them.
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
}

/// Which client API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiJson {
    /// OpenAI `POST /v1/chat/completions`.
    #[default]
    #[serde(alias = "openai")]
    OpenaiChat,
    /// Anthropic `POST /v1/messages`.
    #[serde(alias = "anthropic")]
    AnthropicMessages,
}

/// What a request asks for, and in which client API (`host.request-operation`). A case file may
/// also say `openai`, `anthropic`, `responses` and `embeddings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperationJson {
    #[default]
    #[serde(alias = "openai")]
    OpenaiChat,
    #[serde(alias = "anthropic")]
    AnthropicMessages,
    #[serde(alias = "responses")]
    OpenaiResponses,
    #[serde(alias = "embeddings")]
    OpenaiEmbeddings,
}

impl OperationJson {
    /// The kind of model that serves it.
    pub fn model_kind(self) -> ModelKind {
        match self {
            Self::OpenaiEmbeddings => ModelKind::Embeddings,
            _ => ModelKind::Chat,
        }
    }

    /// `body`, as a client of this API and operation sends it, parsed as the proxy parses it.
    pub fn parse(self, body: &serde_json::Value) -> Result<ClientRequest, String> {
        let body = bytes::Bytes::from(body.to_string());
        let parsed = match self {
            Self::OpenaiChat => ClientRequest::parse(Wire::Openai, body),
            Self::AnthropicMessages => ClientRequest::parse(Wire::Anthropic, body),
            Self::OpenaiEmbeddings => ClientRequest::parse_embeddings(body),
            Self::OpenaiResponses => ClientRequest::parse_responses(body),
        };
        parsed.map_err(|e| e.message)
    }
}

impl RequestJson {
    /// The operation the policy was told, or the one `api` implies for older records.
    pub fn operation(&self) -> Operation {
        match (self.operation, self.api) {
            (Some(operation), _) => operation.into(),
            (None, ApiJson::OpenaiChat) => Operation::OpenaiChat,
            (None, ApiJson::AnthropicMessages) => Operation::AnthropicMessages,
        }
    }
}

/// One message's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageJson {
    pub role: RoleJson,
    pub chars: u32,
    #[serde(default)]
    pub has_image: bool,
    #[serde(default)]
    pub has_tool_call: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleJson {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// Each enum of the contract and its JSON form, converted both ways from one list of pairs.
macro_rules! both_ways {
    ($wit:ident <-> $json:ident: $($variant:ident),+) => {
        impl From<$wit> for $json {
            fn from(v: $wit) -> Self {
                match v {
                    $($wit::$variant => Self::$variant),+
                }
            }
        }
        impl From<$json> for $wit {
            fn from(v: $json) -> Self {
                match v {
                    $($json::$variant => Self::$variant),+
                }
            }
        }
    };
}

both_ways!(ClientApi <-> ApiJson: OpenaiChat, AnthropicMessages);
both_ways!(Operation <-> OperationJson: OpenaiChat, AnthropicMessages, OpenaiResponses, OpenaiEmbeddings);
both_ways!(Role <-> RoleJson: System, Developer, User, Assistant, Tool);

impl From<&Request> for RequestJson {
    fn from(r: &Request) -> Self {
        let pairs = |pairs: &[Pair]| {
            pairs
                .iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect()
        };
        Self {
            id: r.id.clone(),
            api: r.api.into(),
            operation: None,
            requested_model: r.requested_model.clone(),
            team: r.team.clone(),
            messages: r
                .messages
                .iter()
                .map(|m| MessageJson {
                    role: m.role.into(),
                    chars: m.chars,
                    has_image: m.has_image,
                    has_tool_call: m.has_tool_call,
                })
                .collect(),
            estimated_input_tokens: r.estimated_input_tokens,
            max_output_tokens: r.max_output_tokens,
            stream: r.stream,
            has_tools: r.has_tools,
            has_images: r.has_images,
            temperature: r.temperature,
            headers: pairs(&r.headers),
            metadata: pairs(&r.metadata),
        }
    }
}

impl From<&RequestJson> for Request {
    fn from(r: &RequestJson) -> Self {
        let pairs = |map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(name, value)| Pair {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect()
        };
        Self {
            id: r.id.clone(),
            api: r.api.into(),
            requested_model: r.requested_model.clone(),
            team: r.team.clone(),
            messages: r
                .messages
                .iter()
                .map(|m| MessageSummary {
                    role: m.role.into(),
                    chars: m.chars,
                    has_image: m.has_image,
                    has_tool_call: m.has_tool_call,
                })
                .collect(),
            estimated_input_tokens: r.estimated_input_tokens,
            max_output_tokens: r.max_output_tokens,
            stream: r.stream,
            has_tools: r.has_tools,
            has_images: r.has_images,
            temperature: r.temperature,
            headers: pairs(&r.headers),
            metadata: pairs(&r.metadata),
        }
    }
}

/// What a decision came to: a route, a rejection or a policy failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionJson {
    Route {
        targets: Vec<TargetJson>,
        reason: String,
    },
    Reject {
        status: u16,
        message: String,
    },
    Failure {
        /// `timeout`, `memory`, `trap`, `error`, `invalid-decision` or `busy`.
        kind: String,
        message: String,
    },
}

/// One target of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetJson {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

impl DecisionJson {
    pub fn of(outcome: &Result<Verdict, DecisionFailure>) -> Self {
        match outcome {
            Ok(Verdict::Route { targets, reason }) => Self::Route {
                targets: targets
                    .iter()
                    .map(|t| TargetJson {
                        model: t.model.clone(),
                        timeout_ms: t.timeout.map(|d| d.as_millis() as u64),
                        max_output_tokens: t.max_output_tokens,
                    })
                    .collect(),
                reason: reason.clone(),
            },
            Ok(Verdict::Reject { status, message }) => Self::Reject {
                status: status.as_u16(),
                message: message.clone(),
            },
            Err(failure) => Self::Failure {
                kind: failure.kind().into(),
                message: failure.to_string(),
            },
        }
    }

    /// The first target's model, when it is a route.
    pub fn model(&self) -> Option<&str> {
        match self {
            Self::Route { targets, .. } => targets.first().map(|t| t.model.as_str()),
            _ => None,
        }
    }

    /// A one-line account: `route a, b ("reason")`, `reject 400 ("message")` or `failure …`.
    pub fn summary(&self) -> String {
        match self {
            Self::Route { targets, reason } => {
                let models: Vec<&str> = targets.iter().map(|t| t.model.as_str()).collect();
                format!("route {} ({reason:?})", models.join(", "))
            }
            Self::Reject { status, message } => format!("reject {status} ({message:?})"),
            Self::Failure { kind, message } => format!("failure {kind} ({message})"),
        }
    }
}

/// One recorded decision: what the policy was given and what came of it. The proxy writes one
/// per decision as a JSON line when `[decision_log]` is set; `switchyard policy replay` reads them.
/// Message text appears only when the operator enabled it; keys and credential headers never do.
///
/// Readers ignore fields they do not know, so logs written by a newer proxy stay readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The record format's version: 1.
    #[serde(default = "first_version")]
    pub v: u32,
    /// When the decision was made, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub team: String,
    /// The policy version that decided (`name@sha256-prefix`).
    pub policy: String,
    pub request: RequestJson,
    pub catalog: Vec<ModelJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetJson>,
    /// What `host.first-token-ms` would have answered, for the models that had a figure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first_token_ms: BTreeMap<String, f32>,
    /// Each message's text (capped at the policy's `max_message_chars`), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Option<String>>>,
    pub decision: DecisionJson,
    /// How the request ended; absent when the record was written before it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeJson>,
    /// What the policy's shadow candidate decided on the same request, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateJson>,
}

/// A shadow candidate's decision beside the recorded one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateJson {
    /// The candidate version (`name@sha256-prefix`).
    pub policy: String,
    pub decision: DecisionJson,
}

fn first_version() -> u32 {
    1
}

/// How a recorded request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeJson {
    pub status: u16,
    /// The model that served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Tokens the answer reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_operation_is_what_it_says_or_what_its_api_implies() {
        let record = |extra: &str| -> RequestJson {
            serde_json::from_str(&format!(
                r#"{{"id": "r", "api": "openai-chat", {extra} "requested_model": null, "team": null,
                    "messages": [], "estimated_input_tokens": 1, "max_output_tokens": null,
                    "stream": false, "has_tools": false, "has_images": false, "temperature": null,
                    "headers": {{}}, "metadata": {{}}}}"#
            ))
            .unwrap()
        };
        assert_eq!(record("").operation(), Operation::OpenaiChat);
        let embeddings = record(r#""operation": "openai-embeddings","#);
        assert_eq!(embeddings.operation(), Operation::OpenaiEmbeddings);
        let json = serde_json::to_value(&embeddings).unwrap();
        assert_eq!(json["operation"], "openai-embeddings");
        assert!(
            serde_json::to_value(record(""))
                .unwrap()
                .get("operation")
                .is_none()
        );
    }

    #[test]
    fn models_and_requests_round_trip_with_defaults() {
        let m: ModelJson = serde_json::from_str(
            r#"{"id": "a", "input_cost_per_mtok": 1, "output_cost_per_mtok": 2, "context_window": 100}"#,
        )
        .unwrap();
        let model = Model::from(m.clone());
        assert!(model.health.healthy);
        assert_eq!(ModelJson::from(&model), m);
        let r: RequestJson = serde_json::from_str(
            r#"{"id": "r", "api": "anthropic-messages", "requested_model": null, "team": "t",
                "messages": [{"role": "user", "chars": 5}], "estimated_input_tokens": 2,
                "max_output_tokens": 10, "stream": true, "has_tools": false, "has_images": false,
                "temperature": null, "headers": {"x-h": "v"}, "metadata": {}}"#,
        )
        .unwrap();
        let request = Request::from(&r);
        assert_eq!(request.api, ClientApi::AnthropicMessages);
        assert_eq!(request.messages[0].role, Role::User);
        assert_eq!(RequestJson::from(&request), r);
    }

    #[test]
    fn health_patches_change_only_what_they_name() {
        let catalog = vec![Model::from(ModelJson {
            id: "a".into(),
            provider: String::new(),
            input_cost_per_mtok: 1.0,
            output_cost_per_mtok: 1.0,
            context_window: 10,
            tags: vec![],
            kind: ModelKind::Chat,
            health: HealthJson::default(),
        })];
        let patches: BTreeMap<String, HealthPatch> =
            serde_json::from_str(r#"{"a": {"healthy": false, "in_flight": 3}}"#).unwrap();
        let patched = patch_catalog(&catalog, &patches).unwrap();
        assert!(!patched[0].health.healthy);
        assert_eq!(patched[0].health.in_flight, 3);
        assert_eq!(patched[0].health.latency_ms, 0.0);
        let unknown: BTreeMap<String, HealthPatch> =
            serde_json::from_str(r#"{"b": {"healthy": false}}"#).unwrap();
        assert_eq!(
            patch_catalog(&catalog, &unknown).unwrap_err(),
            "`health` names `b`, which is not in the catalog"
        );
    }
}
