//! What one policy version has done since it went live: decisions, failures by kind, the last
//! failure, and the judgement for automatic rollback.
//!
//! Counting is lock-free on the request path (atomics and pre-registered metric handles); only a
//! failure takes a lock, to keep its message.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use metrics::Counter;

use super::{DecisionFailure, Origin};

/// Every decision outcome a version counts: a valid decision, then each failure kind.
pub const OUTCOMES: [&str; 7] = [
    "ok",
    "timeout",
    "memory",
    "trap",
    "error",
    "invalid-decision",
    "busy",
];

/// When a new version is rolled back by itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollbackRule {
    /// How many first decisions are judged; 0 never rolls back.
    pub window: u32,
    /// Share of the window that may fail.
    pub failure_share: f64,
}

impl RollbackRule {
    /// Failures within the window after which the version is rolled back.
    fn limit(&self) -> u32 {
        // More than `share × window` failures: the smallest count above that product.
        (self.failure_share * f64::from(self.window)).floor() as u32 + 1
    }
}

/// A failure as the admin API shows it.
#[derive(Debug, Clone)]
pub struct LastFailure {
    pub at: std::time::SystemTime,
    pub request_id: String,
    pub message: String,
}

/// Counters of one policy version.
pub struct Stats {
    by_outcome: [AtomicU64; OUTCOMES.len()],
    /// Decisions counted towards the rollback window.
    judged: AtomicU32,
    /// Failures among them.
    judged_failures: AtomicU32,
    last_failure: Mutex<Option<LastFailure>>,
    metrics: [Counter; OUTCOMES.len()],
    /// Decisions by where their instance came from: fresh, spare, reused.
    origins: [Counter; 3],
}

impl Stats {
    /// Counters for the version `version` of policy `policy`, registered with the metrics recorder.
    pub fn new(policy: &str, version: &str) -> Self {
        Self {
            by_outcome: Default::default(),
            judged: AtomicU32::new(0),
            judged_failures: AtomicU32::new(0),
            last_failure: Mutex::new(None),
            metrics: OUTCOMES.map(|outcome| {
                metrics::counter!(
                    "switchyard_policy_decisions_total",
                    "policy" => policy.to_string(),
                    "version" => version.to_string(),
                    "outcome" => outcome,
                )
            }),
            origins: ["fresh", "spare", "reused"].map(|origin| {
                metrics::counter!(
                    "switchyard_policy_instances_total",
                    "policy" => policy.to_string(),
                    "version" => version.to_string(),
                    "instance" => origin,
                )
            }),
        }
    }

    /// Count where a decision's instance came from.
    pub fn instance(&self, origin: Origin) {
        let at = match origin {
            Origin::Fresh => 0,
            Origin::Spare => 1,
            Origin::Reused => 2,
        };
        self.origins[at].increment(1);
    }

    /// Count one decision. Returns true exactly once: on the failure that takes the version over
    /// `rule`'s limit within its first decisions.
    pub fn record(
        &self,
        outcome: Result<(), &DecisionFailure>,
        request_id: &str,
        rule: RollbackRule,
    ) -> bool {
        let index = match outcome {
            Ok(()) => 0,
            Err(failure) => {
                1 + OUTCOMES[1..]
                    .iter()
                    .position(|k| *k == failure.kind())
                    .expect("every failure kind is an outcome")
            }
        };
        self.by_outcome[index].fetch_add(1, Ordering::Relaxed);
        self.metrics[index].increment(1);
        let Err(failure) = outcome else {
            self.judged.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        *self.last_failure.lock().expect("stats lock") = Some(LastFailure {
            at: std::time::SystemTime::now(),
            request_id: request_id.to_string(),
            message: failure.to_string(),
        });
        // Waiting for a pool slot is the host's congestion, not the policy's fault.
        if matches!(failure, DecisionFailure::Busy) {
            return false;
        }
        let judged = self.judged.fetch_add(1, Ordering::Relaxed) + 1;
        if rule.window == 0 || judged > rule.window {
            return false;
        }
        let failures = self.judged_failures.fetch_add(1, Ordering::Relaxed) + 1;
        failures == rule.limit()
    }

    /// Decisions by outcome, in the order of [`OUTCOMES`].
    pub fn counts(&self) -> [u64; OUTCOMES.len()] {
        std::array::from_fn(|i| self.by_outcome[i].load(Ordering::Relaxed))
    }

    /// Failures among the first decisions that the rollback rule judges, and how many those were.
    pub fn judged(&self) -> (u32, u32) {
        (
            self.judged_failures.load(Ordering::Relaxed),
            self.judged.load(Ordering::Relaxed),
        )
    }

    pub fn last_failure(&self) -> Option<LastFailure> {
        self.last_failure.lock().expect("stats lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: RollbackRule = RollbackRule {
        window: 20,
        failure_share: 0.25,
    };

    #[test]
    fn rolls_back_on_the_failure_past_the_share_of_the_window() {
        let stats = Stats::new("p", "p@1");
        let trap = DecisionFailure::Trap("boom".into());
        let fired: Vec<bool> = (0..8)
            .map(|_| stats.record(Err(&trap), "r", RULE))
            .collect();
        assert_eq!(
            fired,
            [false, false, false, false, false, true, false, false]
        );
        assert_eq!(stats.counts()[3], 8);
        assert_eq!(
            stats.last_failure().unwrap().message,
            "the policy trapped: boom"
        );
    }

    #[test]
    fn failures_after_the_window_or_while_busy_do_not_count() {
        let stats = Stats::new("p", "p@1");
        for _ in 0..20 {
            assert!(!stats.record(Ok(()), "r", RULE));
        }
        let trap = DecisionFailure::Trap("late".into());
        assert!((0..30).all(|_| !stats.record(Err(&trap), "r", RULE)));

        let fresh = Stats::new("p", "p@2");
        assert!((0..30).all(|_| !fresh.record(Err(&DecisionFailure::Busy), "r", RULE)));
        assert_eq!(fresh.judged(), (0, 0));
    }

    #[test]
    fn a_zero_window_never_rolls_back() {
        let stats = Stats::new("p", "p@1");
        let off = RollbackRule {
            window: 0,
            failure_share: 0.0,
        };
        assert!((0..10).all(|_| !stats.record(Err(&DecisionFailure::Timeout), "r", off)));
    }
}
