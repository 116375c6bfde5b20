//! The canary: decisions a new version must get right before it may go live.
//!
//! A candidate runs, under its production limits, a few built-in sample requests (a short
//! question, a long multi-turn conversation, tool use with streaming, an image, a request naming a
//! catalog model, and an Anthropic Messages request with tool blocks from a team whose budget is
//! nearly spent) and then the policy's own cases, for every team the policy serves, each with
//! that team's catalog. Every decision must be valid for that catalog (which is how a decision
//! naming a model outside it is caught) and match the case's expectations. The first failure
//! refuses the version with a message naming the request and the team. Canary decisions are not
//! counted in the version's statistics.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::cases::Case;
use super::json::OperationJson;
use super::wit::Budget;
use super::{DecisionInput, LoadError, Model, Policy, input};
use crate::config::ModelKind;

/// Who a version will serve: one team (or no team, when none is bound yet) and its catalogs.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    pub team: Option<&'a str>,
    /// The chat models a chat request is decided over.
    pub catalog: &'a [Model],
    /// The embedding models an embeddings request is decided over.
    pub embedding_catalog: &'a [Model],
}

impl Audience<'_> {
    /// The catalog a request of `api` is decided over.
    fn catalog_for(&self, api: OperationJson) -> &[Model] {
        match api.model_kind() {
            ModelKind::Chat => self.catalog,
            ModelKind::Embeddings => self.embedding_catalog,
        }
    }
}

/// A built-in sample request.
struct Sample {
    name: &'static str,
    api: OperationJson,
    body: serde_json::Value,
    /// The team budget `host.team-budget` reports.
    budget: Option<Budget>,
}

impl Sample {
    fn openai(name: &'static str, body: serde_json::Value) -> Self {
        Self {
            name,
            api: OperationJson::OpenaiChat,
            body,
            budget: None,
        }
    }
}

/// The built-in sample requests for `audience`: embeddings too when it has embedding models.
fn samples(audience: &Audience<'_>) -> Vec<Sample> {
    let mut samples = chat_samples(audience.catalog);
    if !audience.embedding_catalog.is_empty() {
        samples.push(Sample {
            name: "embeddings",
            api: OperationJson::OpenaiEmbeddings,
            body: serde_json::json!({"model": "auto", "input": ["What is the capital of France?", "Paris"]}),
            budget: None,
        });
    }
    samples
}

/// The built-in chat sample requests.
fn chat_samples(catalog: &[Model]) -> Vec<Sample> {
    let long_text = "Please review the following design notes carefully. ".repeat(80);
    let named = catalog.first().map_or("auto", |m| m.id.as_str());
    vec![
        Sample::openai(
            "short question",
            serde_json::json!({"model": "auto", "messages": [
                {"role": "user", "content": "What is the capital of France?"}]}),
        ),
        Sample::openai(
            "long conversation",
            serde_json::json!({"model": "auto", "max_tokens": 512, "temperature": 0.2, "messages": [
                {"role": "system", "content": "You are a careful reviewer."},
                {"role": "user", "content": long_text},
                {"role": "assistant", "content": "Here are my first thoughts."},
                {"role": "user", "content": "Think step by step: 1. risks 2. costs 3. a plan."}]}),
        ),
        Sample::openai(
            "tool use, streamed",
            serde_json::json!({"model": "auto", "stream": true,
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                "messages": [
                    {"role": "user", "content": "What is the weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]}),
        ),
        Sample::openai(
            "image",
            serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
        ),
        Sample::openai(
            "a catalog model by name",
            serde_json::json!({"model": named, "messages": [{"role": "user", "content": "Hello"}]}),
        ),
        Sample {
            name: "Anthropic messages with tool blocks, budget nearly spent",
            api: OperationJson::AnthropicMessages,
            body: serde_json::json!({"model": "auto", "max_tokens": 1024, "stream": true,
                "system": [{"type": "text", "text": "You are a helpful assistant."}],
                "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
                "messages": [
                    {"role": "user", "content": "What is the weather in Paris?"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]}),
            budget: Some(Budget {
                limit_usd: 10.0,
                spent_usd: 9.5,
                resets_in_seconds: 3600,
            }),
        },
    ]
}

/// Run the samples and `cases` for every audience; the error names the first request that failed.
pub async fn run(
    policy: &Policy,
    audiences: &[Audience<'_>],
    cases: &[Case],
) -> Result<(), LoadError> {
    for case in cases {
        if let Some(team) = &case.team
            && !audiences.iter().any(|a| a.team == Some(team.as_str()))
        {
            return Err(LoadError::Canary(format!(
                "case `{}` is for team `{team}`, which this policy does not serve",
                case.name
            )));
        }
    }
    let mut n = 0;
    for audience in audiences {
        let for_team = audience
            .team
            .map(|t| format!(" for team `{t}`"))
            .unwrap_or_default();
        for sample in samples(audience) {
            n += 1;
            let name = sample.name;
            decide(policy, audience, n, &sample, &HeaderMap::new(), None)
                .await
                .map_err(|e| {
                    LoadError::Canary(format!("sample request `{name}`{for_team}: {e}"))
                })?;
        }
        let own = cases
            .iter()
            .filter(|c| c.team.is_none() || c.team.as_deref() == audience.team);
        for case in own {
            n += 1;
            let headers = case
                .header_map()
                .map_err(|e| LoadError::Canary(format!("case `{}`: {e}", case.name)))?;
            let sample = Sample {
                name: "case",
                api: case.api,
                body: case.request.clone(),
                budget: case.budget(),
            };
            decide(policy, audience, n, &sample, &headers, Some(case))
                .await
                .map_err(|e| LoadError::Canary(format!("case `{}`{for_team}: {e}", case.name)))?;
        }
    }
    Ok(())
}

/// One canary decision, checked.
async fn decide(
    policy: &Policy,
    audience: &Audience<'_>,
    n: usize,
    sample: &Sample,
    headers: &HeaderMap,
    case: Option<&Case>,
) -> Result<(), String> {
    let request = sample
        .api
        .parse(&sample.body)
        .map_err(|e| format!("the request is not valid: {e}"))?;
    let catalog = audience.catalog_for(sample.api);
    let catalog = match case {
        Some(case) => case.catalog(catalog)?,
        None => catalog.to_vec(),
    };
    let request = Arc::new(request);
    let request_id: Arc<str> = format!("canary-{n}").into();
    let view = input::request_view(
        &request,
        &request_id,
        headers,
        &policy.settings().headers,
        audience.team,
    );
    let operation = input::operation(&request);
    let verdict = policy
        .decide(DecisionInput {
            request,
            request_id,
            view: &view,
            catalog: &catalog,
            team: audience.team.map(Arc::from),
            budget: sample.budget,
            live: case.and_then(Case::live),
            operation,
        })
        .await
        .map_err(|failure| failure.to_string())?;
    match case {
        Some(case) => case.expect.check(&verdict),
        None => Ok(()),
    }
}
