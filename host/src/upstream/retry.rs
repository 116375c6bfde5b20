//! The retry budget: how many times a failed attempt may be tried again on the same target.
//!
//! Retries help with a blip and hurt a provider that is already failing, so they are bounded as
//! a share of traffic (as in Finagle and Linkerd): every request deposits `percent / 100` of a
//! retry, every retry withdraws a whole one, and a floor of `min_per_second` retries refills with
//! time so that a quiet proxy can still retry. The balance is capped, so a long quiet spell does
//! not bank a storm of retries. This module touches only its own counter.

use std::sync::Mutex;
use std::time::Instant;

/// Most retries the budget can hold at once.
const MAX_BALANCE: f64 = 100.0;

/// How much retrying the config allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries of one target after a failure, before the route moves on.
    pub retries: u32,
    /// Retries earned per request, as a share (0.2: one retry per five requests).
    pub ratio: f64,
    /// Retries earned per second regardless of traffic.
    pub min_per_second: f64,
}

#[derive(Debug)]
struct Balance {
    retries: f64,
    refilled_at: Instant,
}

/// A shared allowance of retries.
#[derive(Debug)]
pub struct RetryBudget {
    policy: RetryPolicy,
    balance: Mutex<Balance>,
}

impl RetryBudget {
    /// An empty budget: retries are earned, not granted up front.
    pub fn new(policy: RetryPolicy, now: Instant) -> Self {
        Self {
            policy,
            balance: Mutex::new(Balance {
                retries: 0.0,
                refilled_at: now,
            }),
        }
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// A request started: it earns its share of a retry.
    pub fn deposit(&self) {
        let mut balance = self.balance.lock().expect("retry budget lock");
        balance.retries = (balance.retries + self.policy.ratio).min(MAX_BALANCE);
    }

    /// May one retry go now? Takes it from the budget if so.
    pub fn withdraw(&self, now: Instant) -> bool {
        let mut balance = self.balance.lock().expect("retry budget lock");
        let elapsed = now.saturating_duration_since(balance.refilled_at);
        balance.retries =
            (balance.retries + elapsed.as_secs_f64() * self.policy.min_per_second).min(MAX_BALANCE);
        balance.refilled_at = now;
        if balance.retries >= 1.0 {
            balance.retries -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_are_a_share_of_requests() {
        let t0 = Instant::now();
        let budget = RetryBudget::new(
            RetryPolicy {
                retries: 1,
                ratio: 0.5,
                min_per_second: 0.0,
            },
            t0,
        );
        let granted = (0..10)
            .filter(|_| {
                budget.deposit();
                budget.withdraw(t0)
            })
            .count();
        assert_eq!(granted, 5);
    }

    #[test]
    fn a_floor_refills_with_time_up_to_a_cap() {
        let t0 = Instant::now();
        let budget = RetryBudget::new(
            RetryPolicy {
                retries: 1,
                ratio: 0.0,
                min_per_second: 2.0,
            },
            t0,
        );
        assert!(!budget.withdraw(t0), "nothing earned yet");
        let later = t0 + Duration::from_secs(1);
        assert!(budget.withdraw(later) && budget.withdraw(later));
        assert!(!budget.withdraw(later));
        let much_later = later + Duration::from_secs(3600);
        let burst = (0..1000).filter(|_| budget.withdraw(much_later)).count();
        assert_eq!(burst, MAX_BALANCE as usize);
    }
}
