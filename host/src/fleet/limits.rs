//! A team's rate limits and budget across the fleet: one script call admits a request
//! (`admit.lua`), one settles it when its answer or stream ends (`settle.lua`), one gives back
//! what it took when it was not served (`release.lua`).
//!
//! Rate limits are GCRA: one key per team and limit holding its theoretical arrival time, Redis
//! `TIME` as the clock, a minute's allowance as the burst; a token limit is charged the estimate
//! at admission and the rest at settlement, like the in-process buckets. A budget is counted in
//! integer micro-dollars: settled spending per window, plus a reservation per admitted request
//! (its largest possible cost), which settlement replaces by the real cost. Reservations that
//! are never settled (a replica died) expire. Settled requests are marked in one hash per
//! window, which expires after it. Every key of a team carries the hash tag `{team}`, so one
//! script's keys live on one Redis Cluster slot.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Fleet, FleetError};

/// A script: the shared helpers (`common.lua`), then its own code.
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!($file))))
    };
}

static ADMIT: LazyLock<Script> = script!("admit.lua");
static SETTLE: LazyLock<Script> = script!("settle.lua");
static RELEASE: LazyLock<Script> = script!("release.lua");

/// A minute's allowance may be taken at once.
const BURST: Duration = Duration::from_secs(60);

/// How long a reservation lives unsettled (a replica died mid-request).
const RESERVATION_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// How long past its window's end a settled request's mark keeps a retried settlement from
/// charging twice: longer than a reservation lives, with room for one waiting for Redis.
const SETTLED_MARK_SECS: u64 = 3600;

/// A team's budget as one admission sees it.
#[derive(Debug, Clone, Copy)]
pub struct BudgetAsk {
    pub limit_micros: u64,
    /// The current window's number since the epoch, and its length.
    pub window: (u64, Duration),
    /// What the request may cost at most.
    pub reserve_micros: u64,
    /// Admit it over the budget (the team downgrades instead of refusing).
    pub downgrades: bool,
}

/// What one admission asks of the fleet.
#[derive(Debug, Clone)]
pub struct Ask {
    pub team: String,
    pub request_id: String,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub estimated_tokens: u32,
    pub budget: Option<BudgetAsk>,
}

/// The fleet's answer to an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted; the team's window spending and open reservations, in micro-dollars.
    Admitted { spent: u64, reserved: u64 },
    /// Admitted over its budget, to be served on the downgrade route.
    OverBudgetAdmitted { spent: u64, reserved: u64 },
    /// Refused by a rate limit.
    Limited {
        limit: &'static str,
        retry_after: Duration,
    },
    /// Refused: the budget is spent.
    OverBudget { spent: u64, reserved: u64 },
    /// Refused for now: what the budget has left is reserved by requests in flight.
    Reserved { spent: u64, reserved: u64 },
}

/// A served request's charge, settled once.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub team: String,
    pub request_id: String,
    /// The window it was admitted in (number and length): its cost counts there, and its
    /// settled mark is kept with the window's others.
    pub window: (u64, Duration),
    pub cost_micros: u64,
    /// Tokens used beyond the estimate charged at admission (negative: a refund).
    pub token_delta: i64,
    pub tokens_per_minute: Option<u32>,
}

/// What an admitted request that was not served gives back.
#[derive(Debug, Clone)]
pub struct Release {
    pub team: String,
    pub request_id: String,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub estimated_tokens: u32,
}

/// Microseconds between two units of a per-minute limit; 0 for none.
fn interval_us(per_minute: Option<u32>) -> u64 {
    per_minute.map_or(0, |n| 60_000_000 / u64::from(n.max(1)))
}

/// Microseconds of a per-minute limit that `units` take, rounded to the nearest (exact for
/// any limit, where one unit's interval alone would truncate); 0 for no limit.
fn span_us(per_minute: Option<u32>, units: i64) -> i64 {
    per_minute.map_or(0, |n| {
        let span = i128::from(units) * 60_000_000 / i128::from(n.max(1));
        i64::try_from(span).unwrap_or(if units < 0 { i64::MIN } else { i64::MAX })
    })
}

impl Fleet {
    fn key(&self, team: &str, name: &str) -> String {
        format!("{}:{{{team}}}:{name}", self.prefix)
    }

    fn spending_key(&self, team: &str, window: u64) -> String {
        self.key(team, &format!("spent:{window}"))
    }

    /// Admit one request for its team's limits and budget.
    pub async fn admit(&self, ask: &Ask) -> Result<Verdict, FleetError> {
        let team = &ask.team;
        let budget = ask.budget;
        let window = budget.map_or((0, Duration::from_secs(1)), |b| b.window);
        let mut invocation = ADMIT.prepare_invoke();
        invocation
            .key(self.key(team, "rpm"))
            .key(self.key(team, "tpm"))
            .key(self.spending_key(team, window.0))
            .key(self.key(team, "reserved"))
            .key(self.key(team, "reservations"))
            .key(self.key(team, "reservation-amounts"))
            .arg(interval_us(ask.requests_per_minute))
            .arg(u8::from(ask.tokens_per_minute.is_some()))
            .arg(BURST.as_micros() as u64)
            .arg(span_us(
                ask.tokens_per_minute,
                i64::from(ask.estimated_tokens),
            ))
            .arg(budget.map_or(0, |b| b.limit_micros))
            .arg(budget.map_or(0, |b| b.reserve_micros))
            .arg(&ask.request_id)
            .arg(RESERVATION_LIFETIME.as_micros() as u64)
            .arg(u8::from(budget.is_some_and(|b| b.downgrades)));
        let answer: Vec<i64> = self
            .call(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let at = |i: usize| answer.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(match at(0) {
            0 => Verdict::Admitted {
                spent: at(1),
                reserved: at(2),
            },
            4 => Verdict::OverBudgetAdmitted {
                spent: at(1),
                reserved: at(2),
            },
            1 => Verdict::Limited {
                limit: "requests_per_minute",
                retry_after: Duration::from_micros(at(1)),
            },
            2 => Verdict::Limited {
                limit: "tokens_per_minute",
                retry_after: Duration::from_micros(at(1)),
            },
            5 => Verdict::Reserved {
                spent: at(1),
                reserved: at(2),
            },
            _ => Verdict::OverBudget {
                spent: at(1),
                reserved: at(2),
            },
        })
    }

    /// Settle `settlement` now; idempotent by its request id.
    pub(super) async fn settle_now(&self, settlement: &Settlement) -> Result<(), FleetError> {
        let team = &settlement.team;
        let mut invocation = SETTLE.prepare_invoke();
        invocation
            .key(self.key(team, "tpm"))
            .key(self.spending_key(team, settlement.window.0))
            .key(self.key(team, "reserved"))
            .key(self.key(team, "reservations"))
            .key(self.key(team, "reservation-amounts"))
            .key(self.key(team, &format!("settled:{}", settlement.window.0)))
            .arg(&settlement.request_id)
            .arg(settlement.cost_micros)
            .arg(span_us(
                settlement.tokens_per_minute,
                settlement.token_delta,
            ))
            .arg(settlement.window.1.as_secs() * 2)
            .arg(settlement.window.1.as_secs() * 2 + SETTLED_MARK_SECS);
        self.call(|mut c| async move { invocation.invoke_async::<u8>(&mut c).await })
            .await
            .map(drop)
    }

    /// Give back what an admitted request took; best effort (a lost release only makes the
    /// team's limits stricter until its reservation expires).
    pub async fn release(&self, release: Release) {
        let team = &release.team;
        let mut invocation = RELEASE.prepare_invoke();
        invocation
            .key(self.key(team, "rpm"))
            .key(self.key(team, "tpm"))
            .key(self.key(team, "reserved"))
            .key(self.key(team, "reservations"))
            .key(self.key(team, "reservation-amounts"))
            .arg(&release.request_id)
            .arg(interval_us(release.requests_per_minute))
            .arg(span_us(
                release.tokens_per_minute,
                i64::from(release.estimated_tokens),
            ));
        if let Err(e) = self
            .call(|mut c| async move { invocation.invoke_async::<u8>(&mut c).await })
            .await
        {
            tracing::debug!(team = %release.team, "releasing a request's charge failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_spread_a_minute() {
        assert_eq!(interval_us(Some(60)), 1_000_000);
        assert_eq!(interval_us(Some(600_000)), 100);
        assert_eq!(interval_us(None), 0);
    }

    #[test]
    fn token_spans_do_not_truncate_large_limits() {
        // 100M tokens a minute: 0.6 µs a token, 600 µs for a thousand.
        assert_eq!(span_us(Some(100_000_000), 1000), 600);
        assert_eq!(span_us(Some(7_000_000), 7_000_000), 60_000_000);
        assert_eq!(span_us(Some(60), -2), -2_000_000, "a refund");
        assert_eq!(span_us(None, 1000), 0);
    }
}
