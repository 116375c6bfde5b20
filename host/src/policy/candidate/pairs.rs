//! Pairs of decisions on one request, the live version's and a shadow candidate's, and what
//! they add up to: agreement on the first model and on the whole route, a confusion table of
//! live choice to candidate choice, the projected cost of each choice for the request's usage
//! (its real usage once the answer is in, else the prompt's estimate), the candidate's failures
//! by kind and its decision times.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::super::{DecisionFailure, Model, Verdict};

/// Decision times kept for the percentiles.
const TIMES_KEPT: usize = 4096;

/// What one version chose for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The route, as catalog model ids in order.
    Route(Vec<String>),
    /// Refused the request with this status.
    Reject(u16),
    /// Failed, of this kind (`timeout`, `trap`, ...).
    Failed(&'static str),
}

impl Choice {
    pub fn of(verdict: &Result<Verdict, DecisionFailure>) -> Self {
        match verdict {
            Ok(Verdict::Route { targets, .. }) => {
                Self::Route(targets.iter().map(|t| t.model.clone()).collect())
            }
            Ok(Verdict::Reject { status, .. }) => Self::Reject(status.as_u16()),
            Err(failure) => Self::Failed(failure.kind()),
        }
    }

    /// The first model, or what stands for the choice in the confusion table.
    fn label(&self) -> String {
        match self {
            Self::Route(models) => models.first().cloned().unwrap_or_default(),
            Self::Reject(status) => format!("rejected ({status})"),
            Self::Failed(kind) => format!("failed ({kind})"),
        }
    }

    /// What this choice would cost for `tokens` at `catalog`'s prices, in micro-dollars: its
    /// first target's price; nothing for a refusal or failure.
    fn cost_micros(&self, catalog: &[Model], tokens: Tokens) -> u64 {
        let Self::Route(models) = self else {
            return 0;
        };
        let Some(model) = models
            .first()
            .and_then(|id| catalog.iter().find(|m| &m.id == id))
        else {
            return 0;
        };
        let usd = model.input_cost_per_mtok * tokens.input as f64 / 1e6
            + model.output_cost_per_mtok * tokens.output as f64 / 1e6;
        (usd * 1e6).round() as u64
    }
}

/// The tokens a choice is priced for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

/// Both decisions on one request, and what it is priced for.
#[derive(Debug, Clone)]
pub struct Pair {
    pub live: Choice,
    pub candidate: Choice,
    /// How long the candidate's decision took.
    pub candidate_time: Duration,
    /// The request's real usage when the answer reported it, else the prompt's estimate.
    pub tokens: Tokens,
    /// Whether `tokens` is the real usage.
    pub real_usage: bool,
    /// The catalog the decisions were made on, for prices.
    pub catalog: Arc<[Model]>,
}

/// The sums behind a [`Report`].
#[derive(Debug, Default)]
pub(super) struct Tally {
    pairs: u64,
    same_first: u64,
    same_chain: u64,
    failures: BTreeMap<&'static str, u64>,
    /// Live label -> candidate label -> requests.
    confusion: BTreeMap<String, BTreeMap<String, u64>>,
    live_cost_micros: u64,
    candidate_cost_micros: u64,
    priced_by_usage: u64,
    times_us: VecDeque<u32>,
}

impl Tally {
    /// Add `pair`; the word for its agreement (`same`, `different`, `failed`).
    pub(super) fn add(&mut self, pair: &Pair) -> &'static str {
        self.pairs += 1;
        let first = |choice: &Choice| match choice {
            Choice::Route(models) => models.first().cloned(),
            _ => None,
        };
        let same_first = pair.live == pair.candidate
            || (first(&pair.live).is_some() && first(&pair.live) == first(&pair.candidate));
        self.same_first += u64::from(same_first);
        self.same_chain += u64::from(pair.live == pair.candidate);
        if let Choice::Failed(kind) = pair.candidate {
            *self.failures.entry(kind).or_default() += 1;
        }
        *self
            .confusion
            .entry(pair.live.label())
            .or_default()
            .entry(pair.candidate.label())
            .or_default() += 1;
        self.live_cost_micros += pair.live.cost_micros(&pair.catalog, pair.tokens);
        self.candidate_cost_micros += pair.candidate.cost_micros(&pair.catalog, pair.tokens);
        self.priced_by_usage += u64::from(pair.real_usage);
        if self.times_us.len() == TIMES_KEPT {
            self.times_us.pop_front();
        }
        let micros = u32::try_from(pair.candidate_time.as_micros()).unwrap_or(u32::MAX);
        self.times_us.push_back(micros);
        match (&pair.candidate, same_first) {
            (Choice::Failed(_), _) => "failed",
            (_, true) => "same",
            (_, false) => "different",
        }
    }

    pub(super) fn report(&self, dropped: u64) -> Report {
        let per_thousand = |micros: u64| match self.pairs {
            0 => 0.0,
            n => micros as f64 / 1e6 / n as f64 * 1000.0,
        };
        let share = |n: u64| match self.pairs {
            0 => 0.0,
            total => n as f64 / total as f64,
        };
        let mut times: Vec<u32> = self.times_us.iter().copied().collect();
        times.sort_unstable();
        let percentile = |p: f64| match times.len() {
            0 => 0,
            n => times[((n - 1) as f64 * p).round() as usize],
        };
        let failed: u64 = self.failures.values().sum();
        Report {
            pairs: self.pairs,
            dropped,
            agreement: share(self.same_first),
            same_chain: share(self.same_chain),
            confusion: self.confusion.clone(),
            live_usd_per_1000: per_thousand(self.live_cost_micros),
            candidate_usd_per_1000: per_thousand(self.candidate_cost_micros),
            priced_by_usage: self.priced_by_usage,
            failure_rate: share(failed),
            failures: self
                .failures
                .iter()
                .map(|(kind, n)| (kind.to_string(), *n))
                .collect(),
            decision_us_p50: percentile(0.5),
            decision_us_p99: percentile(0.99),
        }
    }
}

/// A shadow candidate's figures, as the admin API and `policy rollout status` show them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    /// Pairs of decisions compared.
    pub pairs: u64,
    /// Shadow decisions dropped because as many as allowed were running.
    pub dropped: u64,
    /// Share of pairs that chose the same first model (or refused or failed alike).
    pub agreement: f64,
    /// Share of pairs that chose the same whole route.
    pub same_chain: f64,
    /// Live choice -> candidate choice -> requests.
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
    /// Projected cost per 1 000 requests of the live version's choices, in US dollars.
    pub live_usd_per_1000: f64,
    /// Projected cost per 1 000 requests of the candidate's choices, in US dollars.
    pub candidate_usd_per_1000: f64,
    /// Pairs priced by the answer's real usage (the rest by the prompt's estimate).
    pub priced_by_usage: u64,
    /// Share of the candidate's decisions that failed.
    pub failure_rate: f64,
    /// The candidate's failures by kind.
    pub failures: BTreeMap<String, u64>,
    /// The candidate's decision time, median and 99th percentile, in microseconds.
    pub decision_us_p50: u32,
    pub decision_us_p99: u32,
}

impl Report {
    /// Several replicas' figures taken together (see `Figures::merge`).
    pub fn merge(all: &[&Report]) -> Report {
        let pairs: u64 = all.iter().map(|r| r.pairs).sum();
        let weighted = |value: fn(&Report) -> f64| match pairs {
            0 => 0.0,
            n => all.iter().map(|r| value(r) * r.pairs as f64).sum::<f64>() / n as f64,
        };
        let mut confusion: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        for report in all {
            for (live, row) in &report.confusion {
                for (candidate, n) in row {
                    *confusion
                        .entry(live.clone())
                        .or_default()
                        .entry(candidate.clone())
                        .or_default() += n;
                }
            }
            for (kind, n) in &report.failures {
                *failures.entry(kind.clone()).or_default() += n;
            }
        }
        Report {
            pairs,
            dropped: all.iter().map(|r| r.dropped).sum(),
            agreement: weighted(|r| r.agreement),
            same_chain: weighted(|r| r.same_chain),
            confusion,
            live_usd_per_1000: weighted(|r| r.live_usd_per_1000),
            candidate_usd_per_1000: weighted(|r| r.candidate_usd_per_1000),
            priced_by_usage: all.iter().map(|r| r.priced_by_usage).sum(),
            failure_rate: weighted(|r| r.failure_rate),
            failures,
            decision_us_p50: all.iter().map(|r| r.decision_us_p50).max().unwrap_or(0),
            decision_us_p99: all.iter().map(|r| r.decision_us_p99).max().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::super::wit::ModelHealth;

    fn model(id: &str, input: f64, output: f64) -> Model {
        Model {
            id: id.into(),
            provider: "p".into(),
            input_cost_per_mtok: input,
            output_cost_per_mtok: output,
            context_window: 1000,
            tags: Vec::new(),
            health: ModelHealth {
                healthy: true,
                latency_ms: 0.0,
                error_rate: 0.0,
                in_flight: 0,
            },
        }
    }

    fn route(models: &[&str]) -> Choice {
        Choice::Route(models.iter().map(|m| m.to_string()).collect())
    }

    #[test]
    fn pairs_add_up_to_agreement_confusion_and_cost() {
        let catalog: Arc<[Model]> =
            vec![model("cheap", 1.0, 2.0), model("strong", 10.0, 20.0)].into();
        let pair = |live: Choice, candidate: Choice| Pair {
            live,
            candidate,
            candidate_time: Duration::from_micros(40),
            tokens: Tokens {
                input: 1000,
                output: 500,
            },
            real_usage: true,
            catalog: catalog.clone(),
        };
        let mut tally = Tally::default();
        assert_eq!(
            tally.add(&pair(route(&["strong", "cheap"]), route(&["strong"]))),
            "same"
        );
        assert_eq!(
            tally.add(&pair(route(&["strong"]), route(&["cheap"]))),
            "different"
        );
        assert_eq!(
            tally.add(&pair(route(&["cheap"]), Choice::Failed("trap"))),
            "failed"
        );
        assert_eq!(
            tally.add(&pair(Choice::Reject(429), Choice::Reject(429))),
            "same"
        );
        let report = tally.report(0);
        assert_eq!(report.pairs, 4);
        assert_eq!(report.agreement, 0.5);
        assert_eq!(report.same_chain, 0.25);
        assert_eq!(report.confusion["strong"]["strong"], 1);
        assert_eq!(report.confusion["strong"]["cheap"], 1);
        assert_eq!(report.confusion["cheap"]["failed (trap)"], 1);
        assert_eq!(report.failures["trap"], 1);
        assert_eq!(report.failure_rate, 0.25);
        // strong: 1000 * $10 + 500 * $20 per million = $0.02; cheap: $0.002.
        assert!((report.live_usd_per_1000 - (0.02 + 0.02 + 0.002) / 4.0 * 1000.0).abs() < 1e-9);
        assert!((report.candidate_usd_per_1000 - (0.02 + 0.002) / 4.0 * 1000.0).abs() < 1e-9);
        assert_eq!(report.decision_us_p50, 40);
    }
}
