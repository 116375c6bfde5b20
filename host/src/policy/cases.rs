//! A policy's own test cases: a JSON-lines file that the canary runs before a version goes live.
//!
//! Each line is one case: a chat-completions request body as a client would send it, optional
//! request headers and team, and what the decision must look like. For example:
//!
//! ```json
//! {"name": "short question", "request": {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}, "expect": {"model": "gpt-4o-mini"}}
//! ```
//!
//! `expect` may say `model` (the first target), `route` (every target, in order), `reject` (a
//! rejection with this status) and `reason_contains`; a case without `expect` passes with any
//! valid decision. Blank lines are skipped. This module reads the one file it is given.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Verdict;

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
    /// The request body, as a client sends it to `POST /v1/chat/completions`.
    pub request: serde_json::Value,
    /// Request headers, for policies that read allow-listed headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What the decision must be.
    #[serde(default)]
    pub expect: Expect,
}

/// Properties a decision must have.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The first target's model.
    pub model: Option<String>,
    /// Every target's model, in order.
    pub route: Option<Vec<String>>,
    /// A rejection with this status.
    pub reject: Option<u16>,
    /// Text the route's reason must contain.
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
                None if self.model.is_some() || self.route.is_some() => Err(format!(
                    "expected a route, got a rejection ({status}: {message})"
                )),
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
        let mut case: Case = serde_json::from_str(line).map_err(|e| (i + 1, e.to_string()))?;
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
