//! The canary: decisions a new version must get right before it may go live.
//!
//! A candidate runs, under its production limits, a few built-in sample requests (a short
//! question, a long multi-turn conversation, tool use with streaming, an image, a request naming a
//! catalog model) and then the policy's own cases, for every team the policy serves, each with
//! that team's catalog. Every decision must be valid for that catalog (which is how a decision
//! naming a model outside it is caught) and match the case's expectations. The first failure
//! refuses the version with a message naming the request and the team. Canary decisions are not
//! counted in the version's statistics.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;

use super::cases::Case;
use super::{DecisionInput, LoadError, Model, Policy, input};
use crate::api::{ChatRequest, Wire};

/// Who a version will serve: one team (or no team, when none is bound yet) and its catalog.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    pub team: Option<&'a str>,
    pub catalog: &'a [Model],
}

/// Built-in sample requests, as (name, body).
fn samples(catalog: &[Model]) -> Vec<(&'static str, serde_json::Value)> {
    let long_text = "Please review the following design notes carefully. ".repeat(80);
    let named = catalog.first().map_or("auto", |m| m.id.as_str());
    vec![
        (
            "short question",
            serde_json::json!({"model": "auto", "messages": [
                {"role": "user", "content": "What is the capital of France?"}]}),
        ),
        (
            "long conversation",
            serde_json::json!({"model": "auto", "max_tokens": 512, "temperature": 0.2, "messages": [
                {"role": "system", "content": "You are a careful reviewer."},
                {"role": "user", "content": long_text},
                {"role": "assistant", "content": "Here are my first thoughts."},
                {"role": "user", "content": "Think step by step: 1. risks 2. costs 3. a plan."}]}),
        ),
        (
            "tool use, streamed",
            serde_json::json!({"model": "auto", "stream": true,
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                "messages": [
                    {"role": "user", "content": "What is the weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]}),
        ),
        (
            "image",
            serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
        ),
        (
            "a catalog model by name",
            serde_json::json!({"model": named, "messages": [{"role": "user", "content": "Hello"}]}),
        ),
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
        for (name, body) in samples(audience.catalog) {
            n += 1;
            decide(policy, audience, n, &body, &HeaderMap::new(), None)
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
            let headers = case_headers(case)
                .map_err(|e| LoadError::Canary(format!("case `{}`: {e}", case.name)))?;
            decide(policy, audience, n, &case.request, &headers, Some(case))
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
    body: &serde_json::Value,
    headers: &HeaderMap,
    case: Option<&Case>,
) -> Result<(), String> {
    let request = ChatRequest::parse(Wire::Openai, Bytes::from(body.to_string()))
        .map_err(|e| format!("the request is not valid: {}", e.message))?;
    let request = Arc::new(request);
    let request_id: Arc<str> = format!("canary-{n}").into();
    let view = input::request_view(
        &request,
        &request_id,
        headers,
        &policy.settings().headers,
        audience.team,
    );
    let verdict = policy
        .decide(DecisionInput {
            request,
            request_id,
            view: &view,
            catalog: audience.catalog,
            budget: None,
            live: None,
        })
        .await
        .map_err(|failure| failure.to_string())?;
    match case {
        Some(case) => case.expect.check(&verdict),
        None => Ok(()),
    }
}

fn case_headers(case: &Case) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &case.headers {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| format!("header `{name}` has a bad value"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}
