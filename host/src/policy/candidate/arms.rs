//! The two arms of a split, live and candidate, and the judgement of the candidate against the
//! live version: per arm, requests, upstream errors, policy failures, latency, time to first
//! token and cost per request; abort when the candidate's failure rate, upstream error rate or
//! cost per request exceeds the live arm's by the rule's margin after its minimum of requests;
//! once a step has run long enough (requests and time) with no abort, step up the share, or
//! promote after the last step.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Arm;
use crate::config::RolloutConfig;

/// One request of a split, as its `log` phase saw it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArmSample {
    /// An upstream attempt failed, or the answer was a server error.
    pub upstream_error: bool,
    /// The deciding version failed (and the team's failure behaviour served the request).
    pub policy_failed: bool,
    pub latency: Duration,
    pub time_to_first_token: Option<Duration>,
    pub cost_usd: Option<f64>,
}

/// The sums of one arm.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    requests: u64,
    upstream_errors: u64,
    policy_failures: u64,
    latency_us: u64,
    ttft_us: u64,
    ttft_count: u64,
    cost_nanos: u64,
}

impl Sums {
    fn add(&mut self, sample: &ArmSample) {
        self.requests += 1;
        self.upstream_errors += u64::from(sample.upstream_error);
        self.policy_failures += u64::from(sample.policy_failed);
        self.latency_us += sample.latency.as_micros() as u64;
        if let Some(ttft) = sample.time_to_first_token {
            self.ttft_us += ttft.as_micros() as u64;
            self.ttft_count += 1;
        }
        self.cost_nanos += sample.cost_usd.map_or(0, |c| (c * 1e9).round() as u64);
    }

    fn rate(&self, n: u64) -> f64 {
        match self.requests {
            0 => 0.0,
            total => n as f64 / total as f64,
        }
    }

    fn cost_per_request(&self) -> f64 {
        self.rate(self.cost_nanos) / 1e9
    }

    fn report(&self) -> ArmReport {
        let mean_ms = |us: u64, n: u64| match n {
            0 => None,
            n => Some(us as f64 / n as f64 / 1000.0),
        };
        ArmReport {
            requests: self.requests,
            upstream_error_rate: self.rate(self.upstream_errors),
            policy_failure_rate: self.rate(self.policy_failures),
            latency_ms: mean_ms(self.latency_us, self.requests),
            time_to_first_token_ms: mean_ms(self.ttft_us, self.ttft_count),
            cost_usd_per_request: self.cost_per_request(),
        }
    }
}

/// Both arms, for the whole split and for the current step.
#[derive(Debug)]
pub(super) struct Arms {
    live: Sums,
    candidate: Sums,
    /// The candidate's requests since the current step began, and when it began.
    step_requests: u64,
    step_started: Instant,
    /// What the last judgement that changed something said.
    last: Option<String>,
}

impl Default for Arms {
    fn default() -> Self {
        Self {
            live: Sums::default(),
            candidate: Sums::default(),
            step_requests: 0,
            step_started: Instant::now(),
            last: None,
        }
    }
}

/// What a judgement says to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// The candidate does worse than the live version: drop it.
    Abort { reason: String },
    /// The step ran well: give the candidate `percent` of the requests.
    Step { percent: f64, reason: String },
    /// The last step ran well: make the candidate live.
    Promote { reason: String },
}

impl Judgement {
    pub fn reason(&self) -> &str {
        match self {
            Self::Abort { reason } | Self::Step { reason, .. } | Self::Promote { reason } => reason,
        }
    }
}

impl Arms {
    pub(super) fn add(&mut self, arm: Arm, sample: &ArmSample) {
        match arm {
            Arm::Live => self.live.add(sample),
            Arm::Candidate => {
                self.candidate.add(sample);
                self.step_requests += 1;
            }
        }
    }

    pub(super) fn new_step(&mut self) {
        self.step_requests = 0;
        self.step_started = Instant::now();
    }

    /// Judge the candidate, now at `percent`, by `rule`.
    pub(super) fn judge(&mut self, rule: &RolloutConfig, percent: f64) -> Option<Judgement> {
        if self.candidate.requests < rule.min_requests || self.live.requests < rule.min_requests {
            return None;
        }
        let judgement = match self.abort_reason(rule) {
            Some(reason) => Some(Judgement::Abort {
                reason: format!("{reason} after {} requests", self.candidate.requests),
            }),
            None => self.step_ended(rule, percent),
        };
        if let Some(judgement) = &judgement {
            self.last = Some(judgement.reason().to_string());
        }
        judgement
    }

    /// Why the candidate is worse than the live version by more than `rule` allows, if it is:
    /// its policy failures, then its upstream errors, then its cost.
    fn abort_reason(&self, rule: &RolloutConfig) -> Option<String> {
        let (live, candidate) = (&self.live, &self.candidate);
        let worse = |what: &str, candidate: f64, live: f64, margin: f64| {
            (candidate > live + margin).then(|| {
                format!("{what} {candidate:.4} is above the live version's {live:.4} by more than {margin}")
            })
        };
        worse(
            "policy failure rate",
            candidate.rate(candidate.policy_failures),
            live.rate(live.policy_failures),
            rule.max_failure_margin,
        )
        .or_else(|| {
            worse(
                "upstream error rate",
                candidate.rate(candidate.upstream_errors),
                live.rate(live.upstream_errors),
                rule.max_error_margin,
            )
        })
        .or_else(|| {
            // Nothing to compare with when the live arm's answers cost nothing known.
            let live_cost = live.cost_per_request();
            (live_cost > 0.0)
                .then(|| {
                    worse(
                        "cost per request (USD)",
                        candidate.cost_per_request(),
                        live_cost,
                        live_cost * rule.max_cost_margin,
                    )
                })
                .flatten()
        })
    }

    /// Once the step at `percent` has run its requests and its time: the next step, or the
    /// promotion after the last.
    fn step_ended(&self, rule: &RolloutConfig, percent: f64) -> Option<Judgement> {
        let elapsed = self.step_started.elapsed();
        if self.step_requests < rule.promote_after_requests
            || elapsed < Duration::from_secs(rule.promote_after_secs)
        {
            return None;
        }
        let ran = format!(
            "{} requests and {} s at {percent}% with no abort condition",
            self.step_requests,
            elapsed.as_secs()
        );
        Some(match rule.steps.iter().find(|&&step| step > percent) {
            Some(&next) if next < 100.0 => Judgement::Step {
                percent: next,
                reason: format!("{ran}: up to {next}%"),
            },
            _ => Judgement::Promote {
                reason: format!("{ran}: promoted"),
            },
        })
    }

    pub(super) fn report(&self, percent: f64) -> SplitReport {
        SplitReport {
            percent,
            live: self.live.report(),
            candidate: self.candidate.report(),
            last_transition: self.last.clone(),
        }
    }
}

/// One arm's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub requests: u64,
    pub upstream_error_rate: f64,
    pub policy_failure_rate: f64,
    /// Mean time from arrival to the complete answer, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Mean time to the first token of streamed answers, in milliseconds.
    pub time_to_first_token_ms: Option<f64>,
    pub cost_usd_per_request: f64,
}

/// A split's figures, as the admin API and `policy rollout status` show them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// The candidate's share of requests now, in percent.
    pub percent: f64,
    pub live: ArmReport,
    pub candidate: ArmReport,
    /// Why the share last changed, or why the split ended.
    pub last_transition: Option<String>,
}

impl ArmReport {
    fn merge(all: &[&ArmReport]) -> ArmReport {
        let requests: u64 = all.iter().map(|a| a.requests).sum();
        let weighted = |value: fn(&ArmReport) -> f64| match requests {
            0 => 0.0,
            n => {
                all.iter()
                    .map(|a| value(a) * a.requests as f64)
                    .sum::<f64>()
                    / n as f64
            }
        };
        let mean = |value: fn(&ArmReport) -> Option<f64>| {
            let known: Vec<(f64, u64)> = all
                .iter()
                .filter_map(|a| Some((value(a)?, a.requests)))
                .collect();
            let n: u64 = known.iter().map(|(_, n)| n).sum();
            (n > 0).then(|| known.iter().map(|(v, k)| v * *k as f64).sum::<f64>() / n as f64)
        };
        ArmReport {
            requests,
            upstream_error_rate: weighted(|a| a.upstream_error_rate),
            policy_failure_rate: weighted(|a| a.policy_failure_rate),
            latency_ms: mean(|a| a.latency_ms),
            time_to_first_token_ms: mean(|a| a.time_to_first_token_ms),
            cost_usd_per_request: weighted(|a| a.cost_usd_per_request),
        }
    }
}

impl SplitReport {
    /// Several replicas' split figures taken together; `None` for none.
    pub fn merge(all: &[&SplitReport]) -> Option<SplitReport> {
        let first = all.first()?;
        let live: Vec<&ArmReport> = all.iter().map(|s| &s.live).collect();
        let candidate: Vec<&ArmReport> = all.iter().map(|s| &s.candidate).collect();
        Some(SplitReport {
            percent: all.iter().map(|s| s.percent).fold(0.0, f64::max),
            live: ArmReport::merge(&live),
            candidate: ArmReport::merge(&candidate),
            last_transition: first.last_transition.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> RolloutConfig {
        RolloutConfig {
            min_requests: 10,
            max_failure_margin: 0.05,
            max_error_margin: 0.05,
            max_cost_margin: 0.5,
            promote_after_requests: 20,
            promote_after_secs: 0,
            steps: vec![5.0, 25.0, 100.0],
        }
    }

    fn sample(error: bool, cost: f64) -> ArmSample {
        ArmSample {
            upstream_error: error,
            cost_usd: Some(cost),
            ..ArmSample::default()
        }
    }

    #[test]
    fn a_candidate_with_more_upstream_errors_is_aborted_after_its_minimum() {
        let mut arms = Arms::default();
        arms.add(Arm::Candidate, &sample(true, 1.0));
        assert_eq!(arms.judge(&rule(), 5.0), None, "no live figures yet");
        let mut arms = Arms::default();
        for _ in 0..50 {
            arms.add(Arm::Live, &sample(false, 1.0));
        }
        for i in 0..9 {
            arms.add(Arm::Candidate, &sample(i % 2 == 0, 1.0));
            assert_eq!(arms.judge(&rule(), 5.0), None, "under the minimum");
        }
        arms.add(Arm::Candidate, &sample(true, 1.0));
        let judgement = arms.judge(&rule(), 5.0).unwrap();
        assert!(
            matches!(&judgement, Judgement::Abort { reason } if reason.starts_with("upstream error rate 0.6000")),
            "{judgement:?}"
        );
    }

    #[test]
    fn a_good_candidate_steps_up_then_is_promoted() {
        let mut arms = Arms::default();
        for _ in 0..20 {
            arms.add(Arm::Live, &sample(false, 1.0));
            arms.add(Arm::Candidate, &sample(false, 1.2));
        }
        assert!(
            matches!(arms.judge(&rule(), 5.0), Some(Judgement::Step { percent, .. }) if percent == 25.0)
        );
        arms.new_step();
        assert_eq!(
            arms.judge(&rule(), 25.0),
            None,
            "the new step has not run yet"
        );
        for _ in 0..20 {
            arms.add(Arm::Candidate, &sample(false, 1.2));
        }
        assert!(matches!(
            arms.judge(&rule(), 25.0),
            Some(Judgement::Promote { .. })
        ));
    }

    #[test]
    fn a_dearer_candidate_is_aborted() {
        let mut arms = Arms::default();
        for _ in 0..20 {
            arms.add(Arm::Live, &sample(false, 1.0));
            arms.add(Arm::Candidate, &sample(false, 1.6));
        }
        let judgement = arms.judge(&rule(), 5.0).unwrap();
        assert!(
            judgement.reason().starts_with("cost per request"),
            "{judgement:?}"
        );
    }
}
