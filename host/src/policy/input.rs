//! Building what a policy sees: the request view and the catalog.
//!
//! The request view is assembled from the parsed request's summaries (no message text), the
//! operator's header allow-list, the team and the request's metadata. A team's catalog is built
//! once per config from the models it may use; its live fields are [`unmeasured`] until the
//! upstream layer reports health.

use axum::http::HeaderMap;

use super::wit::{self, ClientApi, MessageSummary, Model, ModelHealth, Pair, Request, Role};
use crate::api::{self, ClientRequest, Operation, Wire};
use crate::config::{Config, ModelKind};

/// The request view handed to `decide`.
pub fn request_view(
    req: &ClientRequest,
    id: &str,
    headers: &HeaderMap,
    allowed: &[String],
    team: Option<&str>,
) -> Request {
    Request {
        id: id.to_string(),
        // Policies of contracts before 0.1.2 see a Responses request as a chat request.
        api: match req.api {
            Wire::Openai | Wire::Responses => ClientApi::OpenaiChat,
            Wire::Anthropic => ClientApi::AnthropicMessages,
        },
        requested_model: req.model.clone(),
        team: team.map(str::to_string),
        messages: req
            .messages
            .iter()
            .map(|m| MessageSummary {
                role: match m.role {
                    api::Role::System => Role::System,
                    api::Role::Developer => Role::Developer,
                    api::Role::User => Role::User,
                    api::Role::Assistant => Role::Assistant,
                    api::Role::Tool | api::Role::Function => Role::Tool,
                },
                chars: m.chars,
                has_image: m.has_image,
                has_tool_call: m.has_tool_call,
            })
            .collect(),
        estimated_input_tokens: req.estimated_input_tokens(),
        max_output_tokens: req.max_tokens,
        stream: req.stream,
        has_tools: req.has_tools,
        has_images: req.has_images(),
        temperature: req.temperature,
        headers: allowed
            .iter()
            .filter_map(|name| {
                let value = headers.get(name.as_str())?.to_str().ok()?;
                Some(Pair {
                    name: name.clone(),
                    value: value.to_string(),
                })
            })
            .collect(),
        metadata: req
            .metadata
            .iter()
            .map(|(name, value)| Pair {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// What `req` asks for, as `host.request-operation` tells a policy.
pub fn operation(req: &ClientRequest) -> wit::Operation {
    match (req.api, req.operation) {
        (_, Operation::Embeddings) => wit::Operation::OpenaiEmbeddings,
        (Wire::Openai, Operation::Chat) => wit::Operation::OpenaiChat,
        (Wire::Anthropic, Operation::Chat) => wit::Operation::AnthropicMessages,
        (Wire::Responses, Operation::Chat) => wit::Operation::OpenaiResponses,
    }
}

/// The catalog as a policy sees it: the models of `kind` among those `allowed` (every model when
/// `None`), in config order.
pub fn catalog(config: &Config, allowed: Option<&[String]>, kind: ModelKind) -> Vec<Model> {
    config
        .models
        .iter()
        .filter(|m| m.kind == kind && allowed.is_none_or(|ids| ids.contains(&m.id)))
        .map(|m| Model {
            id: m.id.clone(),
            provider: m.provider.clone(),
            input_cost_per_mtok: m.input_cost_per_mtok,
            output_cost_per_mtok: m.output_cost_per_mtok,
            context_window: m.context_window,
            tags: m.tags.clone(),
            health: unmeasured(),
        })
        .collect()
}

/// The live state of a model nothing has been measured for: healthy, no latency or errors.
pub fn unmeasured() -> ModelHealth {
    ModelHealth {
        healthy: true,
        latency_ms: 0.0,
        error_rate: 0.0,
        in_flight: 0,
    }
}
