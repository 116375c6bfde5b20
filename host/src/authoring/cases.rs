//! `switchyard policy test`: run a cases file through a component under its production limits.
//!
//! Each case is decided in a fresh sandbox exactly as a live request would be (the request parsed
//! by the proxy's own parser, the view built the same way, the decision validated against the
//! case's catalog), traced: the result carries the time, the memory peak and the policy's log
//! lines beside the verdict. As in the proxy's canary, a case that names no team runs for every
//! team bound to the policy (each with its catalog) when the config says which those are. A case
//! whose request, team or overrides are wrong fails with a message saying so; nothing here stops
//! at the first failure.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde::Serialize;

use super::CatalogSource;
use crate::api::ClientRequest;
use crate::policy::cases::{Case, Expect};
use crate::policy::json::DecisionJson;
use crate::policy::{DecisionInput, Model, Policy, input};

/// How one case went.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub team: Option<String>,
    pub passed: bool,
    /// Why it failed: the mismatch, the policy failure, or the case's own fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub expected: Expect,
    /// What the policy decided; `None` when the case could not be run.
    pub decision: Option<DecisionJson>,
    pub elapsed_ms: f64,
    pub memory_peak_bytes: usize,
    pub logs: Vec<LogLine>,
}

/// A line the policy logged during a case.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// Run every case: for its own team, else for each of `teams` (the command line's team, or the
/// teams bound to the policy), else once with the whole catalog.
pub async fn run(
    policy: &Policy,
    cases: &[Case],
    catalogs: &CatalogSource,
    teams: &[String],
) -> Vec<CaseResult> {
    let mut results = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let audiences: Vec<Option<&str>> = match (&case.team, teams) {
            (Some(team), _) => vec![Some(team.as_str())],
            (None, []) => vec![None],
            (None, teams) => teams.iter().map(|t| Some(t.as_str())).collect(),
        };
        let several = audiences.len() > 1;
        for team in audiences {
            let mut result = run_one(policy, case, i + 1, catalogs, team).await;
            if several && let Some(team) = team {
                result.name = format!("{} (team {team})", result.name);
            }
            results.push(result);
        }
    }
    results
}

async fn run_one(
    policy: &Policy,
    case: &Case,
    n: usize,
    catalogs: &CatalogSource,
    team: Option<&str>,
) -> CaseResult {
    let mut result = CaseResult {
        name: case.name.clone(),
        team: team.map(str::to_string),
        passed: false,
        failure: None,
        expected: case.expect.clone(),
        decision: None,
        elapsed_ms: 0.0,
        memory_peak_bytes: 0,
        logs: Vec::new(),
    };
    let (request, headers, catalog) = match prepare(policy, case, catalogs, team) {
        Ok(prepared) => prepared,
        Err(e) => {
            result.failure = Some(e);
            return result;
        }
    };
    let request = Arc::new(request);
    let request_id: Arc<str> = format!("case-{n}").into();
    let view = input::request_view(
        &request,
        &request_id,
        &headers,
        &policy.settings().headers,
        team,
    );
    let operation = input::operation(&request);
    let (outcome, trace) = policy
        .decide_traced(DecisionInput {
            request,
            request_id,
            view: &view,
            catalog: &catalog,
            team: team.map(Arc::from),
            budget: case.budget(),
            live: case.live(),
            operation,
        })
        .await;
    result.elapsed_ms = trace.elapsed.as_secs_f64() * 1000.0;
    result.memory_peak_bytes = trace.memory_peak;
    result.logs = trace
        .logs
        .into_iter()
        .map(|l| LogLine {
            level: l.level,
            message: l.message,
        })
        .collect();
    result.decision = Some(DecisionJson::of(&outcome));
    let checked = match &outcome {
        Ok(verdict) => case.expect.check(verdict),
        Err(failure) => Err(failure.to_string()),
    };
    match checked {
        Ok(()) => result.passed = true,
        Err(e) => result.failure = Some(e),
    }
    result
}

/// What deciding `case` for `team` takes: its request parsed, its headers (each one the policy
/// is allowed to see) and its catalog; or why the case itself is wrong.
fn prepare(
    policy: &Policy,
    case: &Case,
    catalogs: &CatalogSource,
    team: Option<&str>,
) -> Result<(ClientRequest, HeaderMap, Vec<Model>), String> {
    let request = case
        .api
        .parse(&case.request)
        .map_err(|e| format!("the case's request is not valid: {e}"))?;
    let headers = case.header_map()?;
    let allowed = &policy.settings().headers;
    if let Some(name) = headers
        .keys()
        .find(|h| !allowed.iter().any(|a| a == h.as_str()))
    {
        return Err(format!(
            "header `{name}` is not in the policy's headers allow-list ({}), so the policy \
             would never see it",
            allowed.join(", ")
        ));
    }
    let catalog = catalogs
        .catalog(team, case.api.model_kind())
        .map_err(|e| e.to_string())?;
    let catalog = case.catalog(&catalog)?;
    Ok((request, headers, catalog))
}
