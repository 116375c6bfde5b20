//! `switchyard policy replay`: run a candidate policy over recorded decisions and say what would
//! change.
//!
//! Each record is decided again in a fresh sandbox with exactly what the live policy was given:
//! the request view, the catalog with its live health, the team budget, the time-to-first-token
//! figures, and (when the proxy recorded it) message text; the `wasi:random` seed comes from the
//! same request id, so a policy that draws random numbers draws the same ones. A decision
//! *changes* when its targets or its kind (route, rejection, failure) differ; a new reason alone
//! is not a change. Cost is estimated from the tokens each request used (its recorded usage, or
//! the estimated prompt and no output when it was not served), priced at each decision's first
//! target. This module reads the log it is given and nothing else.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::ToolError;
use crate::policy::json::{DecisionJson, DecisionRecord};
use crate::policy::wit::{Budget, Request};
use crate::policy::{DecisionInput, FixedLive, LiveView, MessageSource, Model, Policy};
use crate::upstream::{Prices, Usage};

/// What `policy replay` found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Decisions replayed.
    pub decisions: usize,
    /// Records left out: of other policies or teams, or a last line cut short.
    pub skipped: usize,
    /// Decisions whose targets or kind changed.
    pub changed: usize,
    /// Replayed decisions that failed (trap, deadline, error, …).
    pub failures: usize,
    /// Records without message text: a policy that reads it saw none.
    pub without_text: usize,
    /// How often each first target (or `reject`/`failure`) was chosen, before and after.
    pub before: BTreeMap<String, usize>,
    pub after: BTreeMap<String, usize>,
    /// Estimated cost of the recorded decisions and of the candidate's, in US dollars.
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
    /// Up to the requested number of changed decisions.
    pub sample: Vec<Change>,
}

/// One changed decision.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub request_id: String,
    pub team: String,
    pub before: DecisionJson,
    pub after: DecisionJson,
}

/// Read the records of `path`, and how many lines were left out: a last line that does not
/// parse (a write cut short) is skipped; any other bad line is an error naming the file, line and
/// column.
pub fn load(path: &Path) -> Result<(Vec<DecisionRecord>, usize), ToolError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ToolError::input(path, format!("cannot read: {e}")))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut records = Vec::with_capacity(lines.len());
    for (at, (i, line)) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(_) if at + 1 == lines.len() && !text.ends_with('\n') => return Ok((records, 1)),
            Err(e) => {
                return Err(ToolError::input(
                    path,
                    format!(
                        "line {}, column {}: not a decision record: {e}",
                        i + 1,
                        e.column()
                    ),
                ));
            }
        }
    }
    Ok((records, 0))
}

/// Which records to replay.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only decisions of the policy with this name.
    pub policy: Option<String>,
    /// Only decisions of this team.
    pub team: Option<String>,
}

impl Filter {
    fn keeps(&self, record: &DecisionRecord) -> bool {
        let name = record
            .policy
            .split_once('@')
            .map_or(record.policy.as_str(), |(name, _)| name);
        self.policy.as_deref().is_none_or(|p| p == name)
            && self.team.as_deref().is_none_or(|t| t == record.team)
    }
}

/// Decide every record `filter` keeps again with `policy`; keep at most `sample` changes.
pub async fn run(
    policy: &Policy,
    records: &[DecisionRecord],
    filter: &Filter,
    sample: usize,
) -> ReplayReport {
    let kept: Vec<&DecisionRecord> = records.iter().filter(|r| filter.keeps(r)).collect();
    let mut report = ReplayReport {
        skipped: records.len() - kept.len(),
        decisions: kept.len(),
        changed: 0,
        failures: 0,
        without_text: 0,
        before: BTreeMap::new(),
        after: BTreeMap::new(),
        cost_before_usd: 0.0,
        cost_after_usd: 0.0,
        sample: Vec::new(),
    };
    for record in kept {
        let after = decide(policy, record).await;
        if record.messages.is_none() {
            report.without_text += 1;
        }
        if matches!(after, DecisionJson::Failure { .. }) {
            report.failures += 1;
        }
        *report.before.entry(choice(&record.decision)).or_default() += 1;
        *report.after.entry(choice(&after)).or_default() += 1;
        report.cost_before_usd += record
            .outcome
            .as_ref()
            .and_then(|o| o.cost_usd)
            .unwrap_or_else(|| cost(record, &record.decision));
        report.cost_after_usd += cost(record, &after);
        if !same(&record.decision, &after) {
            report.changed += 1;
            if report.sample.len() < sample {
                report.sample.push(Change {
                    request_id: record.request.id.clone(),
                    team: record.team.clone(),
                    before: record.decision.clone(),
                    after,
                });
            }
        }
    }
    report
}

/// The candidate's decision for `record`.
async fn decide(policy: &Policy, record: &DecisionRecord) -> DecisionJson {
    let view = Request::from(&record.request);
    let catalog: Vec<Model> = record.catalog.iter().cloned().map(Model::from).collect();
    let texts: Arc<dyn MessageSource> = Arc::new(record.messages.clone().unwrap_or_default());
    let live: Arc<dyn LiveView> = Arc::new(FixedLive(record.first_token_ms.clone()));
    let outcome = policy
        .decide(DecisionInput {
            request: texts,
            request_id: record.request.id.as_str().into(),
            view: &view,
            catalog: &catalog,
            team: Some(record.team.as_str().into()),
            budget: record.budget.map(Budget::from),
            live: Some(live),
            operation: record.request.operation(),
        })
        .await;
    DecisionJson::of(&outcome)
}

/// What a decision chose, for counting: its first target, `reject` or `failure`.
fn choice(decision: &DecisionJson) -> String {
    match decision {
        DecisionJson::Route { targets, .. } => targets
            .first()
            .map_or_else(String::new, |t| t.model.clone()),
        DecisionJson::Reject { .. } => "reject".into(),
        DecisionJson::Failure { .. } => "failure".into(),
    }
}

/// Same targets and kind; reasons and messages may differ.
fn same(a: &DecisionJson, b: &DecisionJson) -> bool {
    match (a, b) {
        (DecisionJson::Route { targets: x, .. }, DecisionJson::Route { targets: y, .. }) => x == y,
        (DecisionJson::Reject { status: x, .. }, DecisionJson::Reject { status: y, .. }) => x == y,
        (DecisionJson::Failure { kind: x, .. }, DecisionJson::Failure { kind: y, .. }) => x == y,
        _ => false,
    }
}

/// The estimated cost of serving `record`'s request as `decision` says: its tokens priced at the
/// first target; nothing for a rejection or failure.
fn cost(record: &DecisionRecord, decision: &DecisionJson) -> f64 {
    let Some(model) = decision
        .model()
        .and_then(|id| record.catalog.iter().find(|m| m.id == id))
    else {
        return 0.0;
    };
    let usage = match &record.outcome {
        Some(outcome) if outcome.input_tokens.is_some() => Usage {
            input_tokens: outcome.input_tokens.unwrap_or(0),
            output_tokens: outcome.output_tokens.unwrap_or(0),
        },
        _ => Usage {
            input_tokens: u64::from(record.request.estimated_input_tokens),
            output_tokens: 0,
        },
    };
    usage.cost(Prices {
        input_per_mtok: model.input_cost_per_mtok,
        output_per_mtok: model.output_cost_per_mtok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::json::TargetJson;

    fn route(models: &[&str], reason: &str) -> DecisionJson {
        DecisionJson::Route {
            targets: models
                .iter()
                .map(|m| TargetJson {
                    model: m.to_string(),
                    timeout_ms: None,
                    max_output_tokens: None,
                })
                .collect(),
            reason: reason.into(),
        }
    }

    #[test]
    fn a_new_reason_alone_is_not_a_change() {
        assert!(same(&route(&["a", "b"], "x"), &route(&["a", "b"], "y")));
        assert!(!same(&route(&["a", "b"], "x"), &route(&["b", "a"], "x")));
        let reject = DecisionJson::Reject {
            status: 400,
            message: "no".into(),
        };
        assert!(!same(&route(&["a"], "x"), &reject));
        assert_eq!(choice(&reject), "reject");
        assert_eq!(choice(&route(&["a", "b"], "x")), "a");
    }
}
