//! The `settle` phase: what a served request cost, charged to its team.
//!
//! One function settles every answer, when it ends: an answer read whole at once, a stream when
//! its summary comes. The usage the answer reported is priced at the serving model's catalog
//! prices; the team's budget is charged that cost, or, when no usage came (an upstream that
//! reports none, a stream cut short), the prompt as estimated, so a budget is never charged
//! nothing for a served request; the team's token bucket is settled from the usage. A request
//! that was not served settles nothing: its rate-limit charge was given back when its
//! [`Admission`] was dropped. With `[state]`, the cost and tokens are settled in the fleet's
//! shared state too (once, by request id). This phase writes only the team's counters and the
//! [`Exchange`].

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::context::Exchange;
use crate::control::{self, Admission};
use crate::fleet::{FleetBill, FleetCharge};
use crate::upstream::stream::StreamSummary;
use crate::upstream::{Prices, Usage};

/// What a served request owes, and to whom.
pub struct Bill {
    /// The serving model's prices.
    prices: Prices,
    /// The team budget to charge.
    budget: Option<Arc<control::Budget>>,
    /// The team's rate limits, to settle the tokens with.
    rate: Option<Arc<control::RateLimit>>,
    /// Its charge on the fleet's shared limits, to settle there.
    fleet: Option<FleetBill>,
    /// The prompt's size as estimated at admission.
    estimated_input_tokens: u32,
}

impl Bill {
    /// The bill of a request served at `prices`, holding `admission` (and a charge on the
    /// fleet's limits), for a team with `budget`.
    pub fn new(
        prices: Prices,
        budget: Option<Arc<control::Budget>>,
        (admission, fleet): (Option<Admission>, Option<FleetCharge>),
        estimated_input_tokens: u32,
    ) -> Self {
        Self {
            prices,
            budget,
            rate: admission.map(Admission::served),
            fleet: fleet.map(FleetCharge::served),
            estimated_input_tokens,
        }
    }
}

/// Settle `bill` for an answer that ended having reported `usage`.
pub fn settle(exchange: &mut Exchange, bill: Bill, usage: Option<Usage>) {
    exchange.usage = usage;
    exchange.cost_usd = usage.map(|u| u.cost(bill.prices));
    if let (Some(rate), Some(usage)) = (&bill.rate, usage) {
        rate.settle(
            Instant::now(),
            usage.input_tokens + usage.output_tokens,
            bill.estimated_input_tokens,
        );
    }
    let cost = exchange.cost_usd.unwrap_or_else(|| {
        let prompt = Usage {
            input_tokens: bill.estimated_input_tokens.into(),
            output_tokens: 0,
        };
        prompt.cost(bill.prices)
    });
    if let Some(budget) = &bill.budget {
        budget.record(SystemTime::now(), cost);
    }
    if let Some(fleet) = bill.fleet {
        fleet.settle(cost, usage.map(|u| u.input_tokens + u.output_tokens));
    }
}

/// Settle `bill` for a stream that ended with `summary` (`None` when its watcher went away
/// without one), noting how it went in `exchange`.
pub fn stream_ended(exchange: &mut Exchange, bill: Bill, summary: Option<StreamSummary>) {
    let usage = summary.and_then(|s| s.usage);
    if let Some(summary) = summary {
        exchange.stream_end = Some(summary.end.name());
        exchange.first_byte = summary.first_byte;
        exchange.time_to_first_token = summary
            .first_token_at
            .map(|at| at.saturating_duration_since(exchange.started));
    }
    settle(exchange, bill, usage);
}
