//! One admitted request's claim on its team's shared limits, from admission to settlement.
//!
//! A [`FleetCharge`] is what an admission through the fleet holds. Dropped before it is
//! [`FleetCharge::served`] (the request was refused later or failed upstream), what it took in
//! Redis is given back by a task of its own. Served, it becomes a [`FleetBill`], settled once
//! when the answer or stream ends; a settlement that cannot reach Redis waits in the fleet until
//! it can. Both run as tasks the fleet tracks, so a stopping proxy waits for them.

use std::sync::Arc;
use std::time::Duration;

use super::{Fleet, Release, Settlement};

/// What one request was charged, and where.
#[derive(Debug, Clone)]
struct Charged {
    team: String,
    request_id: String,
    /// Its budget window (number and length), when the team has a budget.
    window: Option<(u64, Duration)>,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u32>,
    /// The tokens charged at admission; none when Redis was away then.
    estimated_tokens: u32,
    /// Whether Redis holds its admission (to give back if it is not served).
    in_redis: bool,
}

/// An admitted request's claim on its team's shared limits.
pub struct FleetCharge {
    fleet: Arc<Fleet>,
    charged: Charged,
    served: bool,
}

/// A served request's charge, to settle when its cost is known.
pub struct FleetBill {
    fleet: Arc<Fleet>,
    charged: Charged,
}

impl FleetCharge {
    /// The claim of request `request_id` of `team`, admitted in budget `window` (none without a
    /// budget) with these limits;
    /// `estimated_tokens` were charged in Redis unless `in_redis` is false (Redis was away and
    /// the request was admitted without it).
    pub fn new(
        fleet: Arc<Fleet>,
        team: &str,
        request_id: &str,
        window: Option<(u64, Duration)>,
        (requests_per_minute, tokens_per_minute): (Option<u32>, Option<u32>),
        estimated_tokens: u32,
        in_redis: bool,
    ) -> Self {
        let charged = Charged {
            team: team.to_string(),
            request_id: request_id.to_string(),
            window,
            requests_per_minute,
            tokens_per_minute,
            estimated_tokens: if in_redis { estimated_tokens } else { 0 },
            in_redis,
        };
        Self {
            fleet,
            charged,
            served: false,
        }
    }

    /// The request was served: keep the charge, to be settled from its usage.
    pub fn served(mut self) -> FleetBill {
        self.served = true;
        FleetBill {
            fleet: self.fleet.clone(),
            charged: self.charged.clone(),
        }
    }
}

impl Drop for FleetCharge {
    fn drop(&mut self) {
        if self.served || !self.charged.in_redis {
            return;
        }
        let release = Release {
            team: self.charged.team.clone(),
            request_id: self.charged.request_id.clone(),
            requests_per_minute: self.charged.requests_per_minute,
            tokens_per_minute: self.charged.tokens_per_minute,
            estimated_tokens: self.charged.estimated_tokens,
        };
        let fleet = self.fleet.clone();
        self.fleet
            .track(async move { fleet.release(release).await });
    }
}

impl FleetBill {
    /// Settle the request at `cost_usd`, having used `tokens` (when its answer said).
    pub fn settle(self, cost_usd: f64, tokens: Option<u64>) {
        let charged = self.charged;
        let token_delta = tokens.map_or(0, |used| {
            i64::try_from(used).unwrap_or(i64::MAX) - i64::from(charged.estimated_tokens)
        });
        // Without a budget, the hour it was admitted in holds its settled mark.
        let hour = || (crate::clock::unix_secs() / 3600, Duration::from_secs(3600));
        let settlement = Settlement {
            team: charged.team,
            request_id: charged.request_id,
            window: charged.window.unwrap_or_else(hour),
            // A team without a budget has no spending to count.
            cost_micros: charged.window.map_or(0, |_| micros(cost_usd)),
            token_delta,
            tokens_per_minute: charged.tokens_per_minute,
        };
        let fleet = self.fleet.clone();
        self.fleet
            .track(async move { fleet.settle(settlement).await });
    }
}

/// US dollars as whole micro-dollars, rounded up: a budget is never charged less than spent.
pub fn micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).ceil() as u64
    } else {
        0
    }
}
