//! A policy's own test cases: a JSON-lines file that the canary runs before a version goes live.
//!
//! Each line is one case: a request body as a client would send it (OpenAI chat completions,
//! Anthropic messages with `"api": "anthropic"`, a Responses API request with
//! `"api": "responses"`, or embeddings with `"api": "embeddings"`, decided over the team's
//! embedding models), optional request headers and team, the live state
//! the policy should see (`health` overrides on the catalog, `first_token_ms` and `budget`, what
//! the host functions answer), and what the decision must look like. For example:
//!
//! ```json
//! {"name": "short question", "request": {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}, "expect": {"model": "gpt-4o-mini"}}
//! {"name": "mini is down", "request": {"messages": [{"role": "user", "content": "Hi"}]}, "health": {"gpt-4o-mini": {"healthy": false}}, "expect": {"model_in": ["claude-haiku-4-5"]}}
//! ```
//!
//! `expect` may say `model` (the first target), `model_in` (the first target is one of these),
//! `route` (every target, in order), `reject` (a rejection with this status) and
//! `reason_contains`; a case without `expect` passes with any valid decision. Blank lines are
//! skipped. This module reads the one file it is given.

use std::collections::BTreeMap;
use std::path::Path;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::json::{BudgetJson, HealthPatch, OperationJson, patch_catalog};
use super::wit::Budget;
use super::{FixedLive, LiveView, Model, Verdict};

/// One case of a cases file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case is about; defaults to its line number.
    #[serde(default)]
    pub name: String,
    /// Run only for this team (with its catalog); by default the case runs for every team bound
    /// to the policy.
    pub team: Option<String>,
    /// The client API and operation the request is written for: `openai` (chat completions,
    /// the default), `anthropic` (messages), `responses` or `embeddings`.
    #[serde(default)]
    pub api: OperationJson,
    /// The request body, as a client sends it to `POST /v1/chat/completions` (or
    /// `POST /v1/messages` with `"api": "anthropic"`, `POST /v1/responses` with
    /// `"api": "responses"`, `POST /v1/embeddings` with `"api": "embeddings"`).
    pub request: serde_json::Value,
    /// Request headers, for policies that read allow-listed headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Live state of catalog models, by id, changed for this case (e.g. a breaker open).
    #[serde(default)]
    pub health: BTreeMap<String, HealthPatch>,
    /// What `host.first-token-ms` answers, by model id; `none` for models not listed.
    #[serde(default)]
    pub first_token_ms: BTreeMap<String, f32>,
    /// What `host.team-budget` answers; `none` when absent.
    pub budget: Option<BudgetJson>,
    /// What the decision must be.
    #[serde(default)]
    pub expect: Expect,
}

/// Properties a decision must have.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The first target's model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The first target's model is one of these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_in: Option<Vec<String>>,
    /// Every target's model, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<String>>,
    /// A rejection with this status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject: Option<u16>,
    /// Text the route's reason must contain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_contains: Option<String>,
}

impl Expect {
    /// Say how `verdict` differs from what is expected, if it does.
    pub fn check(&self, verdict: &Verdict) -> Result<(), String> {
        match verdict {
            Verdict::Reject { status, message } => match self.reject {
                Some(expected) if expected == status.as_u16() => Ok(()),
                Some(expected) => Err(format!(
                    "expected a rejection with status {expected}, got {status}: {message}"
                )),
                None if self.model.is_some() || self.model_in.is_some() || self.route.is_some() => {
                    Err(format!(
                        "expected a route, got a rejection ({status}: {message})"
                    ))
                }
                None => Ok(()),
            },
            Verdict::Route { targets, reason } => {
                let models: Vec<&str> = targets.iter().map(|t| t.model.as_str()).collect();
                if let Some(status) = self.reject {
                    return Err(format!(
                        "expected a rejection with status {status}, got a route to {}",
                        models.join(", ")
                    ));
                }
                if let Some(model) = &self.model
                    && models.first() != Some(&model.as_str())
                {
                    return Err(format!(
                        "expected model `{model}` first, got a route to {}",
                        models.join(", ")
                    ));
                }
                if let Some(allowed) = &self.model_in
                    && !models
                        .first()
                        .is_some_and(|m| allowed.iter().any(|a| a == m))
                {
                    return Err(format!(
                        "expected one of {} first, got a route to {}",
                        allowed.join(", "),
                        models.join(", ")
                    ));
                }
                if let Some(route) = &self.route
                    && models != route.iter().map(String::as_str).collect::<Vec<_>>()
                {
                    return Err(format!(
                        "expected the route {}, got {}",
                        route.join(", "),
                        models.join(", ")
                    ));
                }
                if let Some(text) = &self.reason_contains
                    && !reason.contains(text.as_str())
                {
                    return Err(format!(
                        "expected a reason containing {text:?}, got {reason:?}"
                    ));
                }
                Ok(())
            }
        }
    }
}

impl Case {
    /// `catalog` with this case's health overrides; the error names a model it does not hold.
    pub fn catalog(&self, catalog: &[Model]) -> Result<Vec<Model>, String> {
        patch_catalog(catalog, &self.health)
    }

    /// The request headers the case sets.
    pub fn header_map(&self) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("header `{name}` has a bad value"))?;
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// What `host.team-budget` answers for this case.
    pub fn budget(&self) -> Option<Budget> {
        self.budget.map(Budget::from)
    }

    /// What `host.first-token-ms` answers for this case; `None` when the case sets nothing.
    pub fn live(&self) -> Option<std::sync::Arc<dyn LiveView>> {
        (!self.first_token_ms.is_empty())
            .then(|| std::sync::Arc::new(FixedLive(self.first_token_ms.clone())) as _)
    }
}

/// Read the cases of `path`; the error names the file and line.
pub fn load(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read cases file {}: {e}", path.display()))?;
    parse(&text).map_err(|(line, e)| format!("cases file {}, line {line}: {e}", path.display()))
}

/// Parse cases text; the error gives the 1-based line.
pub fn parse(text: &str) -> Result<Vec<Case>, (usize, String)> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut case: Case = serde_json::from_str(line)
            .map_err(|e| (i + 1, format!("column {}: {e}", e.column())))?;
        if case.name.is_empty() {
            case.name = format!("line {}", i + 1);
        }
        cases.push(case);
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;
    use crate::policy::PlannedTarget;

    fn route(models: &[&str], reason: &str) -> Verdict {
        Verdict::Route {
            targets: models
                .iter()
                .map(|m| PlannedTarget {
                    model: m.to_string(),
                    timeout: Some(Duration::from_secs(1)),
                    max_output_tokens: None,
                })
                .collect(),
            reason: reason.into(),
        }
    }

    #[test]
    fn parses_cases_and_names_the_bad_line() {
        let text = r#"{"request": {"messages": []}, "expect": {"model": "a"}}

{"name": "x", "request": {}, "expectt": {}}"#;
        assert_eq!(parse(text).unwrap_err().0, 3);
        let cases = parse(text.lines().next().unwrap()).unwrap();
        assert_eq!(cases[0].name, "line 1");
        assert_eq!(cases[0].expect.model.as_deref(), Some("a"));
    }

    #[test]
    fn expectations_compare_models_routes_rejections_and_reasons() {
        let expect = |json: &str| -> Expect { serde_json::from_str(json).unwrap() };
        let verdict = route(&["a", "b"], "cheap: short");
        assert!(
            expect(r#"{"model": "a", "reason_contains": "cheap"}"#)
                .check(&verdict)
                .is_ok()
        );
        assert!(expect(r#"{"route": ["a", "b"]}"#).check(&verdict).is_ok());
        let e = expect(r#"{"model": "b"}"#).check(&verdict).unwrap_err();
        assert_eq!(e, "expected model `b` first, got a route to a, b");
        assert!(expect(r#"{"reject": 400}"#).check(&verdict).is_err());
        assert!(
            expect(r#"{"reason_contains": "smart"}"#)
                .check(&verdict)
                .is_err()
        );
        let rejection = Verdict::Reject {
            status: StatusCode::BAD_REQUEST,
            message: "no".into(),
        };
        assert!(expect(r#"{"reject": 400}"#).check(&rejection).is_ok());
        assert!(expect(r#"{"model": "a"}"#).check(&rejection).is_err());
        assert!(expect("{}").check(&rejection).is_ok());
    }
}
