//! Team budgets: what each team spent in the current window, and whether it may spend more.
//!
//! A team with a `budget` in the config gets a [`Budget`]: its limit, its window, what its
//! requests get once the limit is reached, and a [`Ledger`] of spending that outlives config
//! reloads (a reload that keeps the team keeps what it spent). Windows are fixed and aligned to
//! the Unix epoch, so everyone can tell when one ends. Spending is recorded when a request's cost
//! is known: at the answer when it is read whole, when the stream ends for a stream. The check is
//! made before the policy runs, so a request admitted under the limit is served whole even if it
//! crosses it: the overshoot is bounded by what the team has in flight. This module touches only
//! its own counters; the time is passed in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{BudgetConfig, OverBudget};
use crate::policy::{PlannedTarget, wit};

/// A team's spending, in the window it was counted in.
#[derive(Debug, Default)]
pub struct Ledger {
    /// (window number since the epoch, US dollars spent in it).
    spent: Mutex<(u64, f64)>,
}

impl Ledger {
    fn spent(&self, window: u64) -> f64 {
        let spent = self.spent.lock().expect("ledger lock");
        if spent.0 == window { spent.1 } else { 0.0 }
    }

    fn add(&self, window: u64, usd: f64) {
        let mut spent = self.spent.lock().expect("ledger lock");
        if spent.0 != window {
            *spent = (window, 0.0);
        }
        spent.1 += usd;
    }
}

/// Where a team stands against its budget at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetStatus {
    pub limit_usd: f64,
    pub spent_usd: f64,
    /// Time until the window ends and spending starts again from zero.
    pub resets_in: Duration,
}

impl BudgetStatus {
    /// The window's spending has reached the limit.
    pub fn exhausted(&self) -> bool {
        self.spent_usd >= self.limit_usd
    }

    /// This standing as `host.team-budget` reports it to a policy.
    pub fn view(&self) -> wit::Budget {
        wit::Budget {
            limit_usd: self.limit_usd,
            spent_usd: self.spent_usd,
            resets_in_seconds: self.resets_in.as_secs_f64().ceil() as u64,
        }
    }
}

/// A team's budget, as configured, with its ledger.
#[derive(Debug)]
pub struct Budget {
    limit_usd: f64,
    window: Duration,
    pub over: OverBudget,
    /// The route used instead of the policy's once the budget is spent (`over = "downgrade"`).
    pub downgrade: Vec<PlannedTarget>,
    ledger: Arc<Ledger>,
}

impl Budget {
    /// The budget `config` describes (already validated), counting into `ledger`.
    pub fn new(config: &BudgetConfig, ledger: Arc<Ledger>) -> Self {
        Self {
            limit_usd: config.usd,
            window: config.window().unwrap_or(Duration::from_secs(86_400)),
            over: config.over,
            downgrade: config
                .downgrade
                .iter()
                .map(|model| PlannedTarget {
                    model: model.clone(),
                    timeout: None,
                    max_output_tokens: None,
                })
                .collect(),
            ledger,
        }
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The window `now` falls in, and the time left in it.
    fn window_at(&self, now: SystemTime) -> (u64, Duration) {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let length = self.window.as_secs().max(1);
        let number = since_epoch.as_secs() / length;
        let ends = Duration::from_secs((number + 1) * length);
        (number, ends.saturating_sub(since_epoch))
    }

    /// Where the team stands at `now`.
    pub fn status(&self, now: SystemTime) -> BudgetStatus {
        let (window, resets_in) = self.window_at(now);
        BudgetStatus {
            limit_usd: self.limit_usd,
            spent_usd: self.ledger.spent(window),
            resets_in,
        }
    }

    /// The limit in US dollars.
    pub fn limit_usd(&self) -> f64 {
        self.limit_usd
    }

    /// The window `now` falls in (its number since the epoch and its length), and the time left
    /// in it.
    pub fn window(&self, now: SystemTime) -> ((u64, Duration), Duration) {
        let (number, left) = self.window_at(now);
        (
            (number, Duration::from_secs(self.window.as_secs().max(1))),
            left,
        )
    }

    /// Where this replica stands against its share of the budget (the limit divided by
    /// `replicas`), from what it spent itself: the budget while the fleet's count is out of reach.
    pub fn share(&self, now: SystemTime, replicas: u32) -> BudgetStatus {
        let status = self.status(now);
        BudgetStatus {
            limit_usd: status.limit_usd / f64::from(replicas.max(1)),
            ..status
        }
    }

    /// Count `usd` spent at `now`.
    pub fn record(&self, now: SystemTime, usd: f64) {
        if usd.is_finite() && usd > 0.0 {
            self.ledger.add(self.window_at(now).0, usd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(usd: f64, window: &str) -> Budget {
        let config = BudgetConfig {
            usd,
            window: window.into(),
            over: OverBudget::Refuse,
            downgrade: Vec::new(),
        };
        Budget::new(&config, Arc::default())
    }

    #[test]
    fn spending_counts_within_its_window_and_starts_again_in_the_next() {
        let b = budget(1.0, "1h");
        let t = UNIX_EPOCH + Duration::from_secs(10 * 3600 + 600);
        b.record(t, 0.4);
        b.record(t + Duration::from_secs(60), 0.6);
        let status = b.status(t + Duration::from_secs(120));
        assert!((status.spent_usd - 1.0).abs() < 1e-12);
        assert!(status.exhausted());
        assert_eq!(status.resets_in, Duration::from_secs(3000 - 120));
        let next = t + Duration::from_secs(3000);
        assert_eq!(b.status(next).spent_usd, 0.0, "a new window");
        assert_eq!(b.status(next).resets_in, Duration::from_secs(3600));
        b.record(next, 0.25);
        assert!(!b.status(next).exhausted());
    }

    #[test]
    fn only_real_costs_count() {
        let b = budget(1.0, "1d");
        let t = UNIX_EPOCH + Duration::from_secs(1);
        for cost in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            b.record(t, cost);
        }
        assert_eq!(b.status(t).spent_usd, 0.0);
    }
}
