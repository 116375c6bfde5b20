//! Per-team rate limits: requests and tokens per minute, as token buckets.
//!
//! Each limit is a bucket holding up to a minute's allowance and refilling continuously. A
//! request takes one from the request bucket, and its estimated prompt tokens from the token
//! bucket, when it is admitted; once its answer reports usage, the token bucket is charged the
//! difference between what was used and what was estimated (a refund when the estimate was
//! high). The token bucket may go below zero that way, and then admits nothing until it has
//! refilled above zero: a request's output cannot be known before it is served, so a team that
//! overshoots pays it back. A refused request is told when to retry. Buckets outlive config
//! reloads that keep a team's limits. This module touches only its own counters; the time is
//! passed in, and these are not the general token buckets of a crate such as `governor` because
//! of the charge-after-the-fact that token limits need.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// One bucket.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    /// (level, when it was last refilled).
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn per_minute(amount: u32, now: Instant) -> Self {
        let capacity = f64::from(amount);
        Self {
            capacity,
            per_second: capacity / 60.0,
            state: Mutex::new((capacity, now)),
        }
    }

    /// Refill to `now`, then apply `f` to the level.
    fn with_level<T>(&self, now: Instant, f: impl FnOnce(&mut f64) -> T) -> T {
        let mut state = self.state.lock().expect("bucket lock");
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.per_second).min(self.capacity);
        state.1 = now.max(state.1);
        f(&mut state.0)
    }

    /// Time until the level reaches `needed`.
    fn wait_for(&self, level: f64, needed: f64) -> Duration {
        Duration::from_secs_f64(((needed - level) / self.per_second).max(0.0))
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Which limit: `requests_per_minute` or `tokens_per_minute`.
    pub limit: &'static str,
    /// When a retry may be admitted.
    pub retry_after: Duration,
}

/// A team's rate limits.
#[derive(Debug)]
pub struct RateLimit {
    config: RateLimitConfig,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl RateLimit {
    pub fn new(config: &RateLimitConfig, now: Instant) -> Self {
        Self {
            config: config.clone(),
            requests: config
                .requests_per_minute
                .map(|n| Bucket::per_minute(n, now)),
            tokens: config.tokens_per_minute.map(|n| Bucket::per_minute(n, now)),
        }
    }

    /// The limits this was made from.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Admit a request with `estimated_tokens` of prompt at `now`, or say which limit refuses
    /// it. What it took is given back if the [`Admission`] is dropped before it is served.
    pub fn admit(
        self: &Arc<Self>,
        now: Instant,
        estimated_tokens: u32,
    ) -> Result<Admission, Limited> {
        self.take(now, estimated_tokens)?;
        Ok(Admission {
            rate: self.clone(),
            estimated: estimated_tokens,
            served: false,
        })
    }

    fn take(&self, now: Instant, estimated_tokens: u32) -> Result<(), Limited> {
        if let Some(tokens) = &self.tokens {
            tokens.with_level(now, |level| {
                (*level > 0.0).then_some(()).ok_or(Limited {
                    limit: "tokens_per_minute",
                    retry_after: tokens.wait_for(*level, 1.0),
                })
            })?;
        }
        if let Some(requests) = &self.requests {
            requests.with_level(now, |level| {
                if *level >= 1.0 {
                    *level -= 1.0;
                    Ok(())
                } else {
                    Err(Limited {
                        limit: "requests_per_minute",
                        retry_after: requests.wait_for(*level, 1.0),
                    })
                }
            })?;
        }
        if let Some(tokens) = &self.tokens {
            tokens.with_level(now, |level| *level -= f64::from(estimated_tokens));
        }
        Ok(())
    }

    /// Give back what a request that was not served took.
    fn refund(&self, now: Instant, estimated: u32) {
        if let Some(requests) = &self.requests {
            requests.with_level(now, |level| *level = (*level + 1.0).min(requests.capacity));
        }
        if let Some(tokens) = &self.tokens {
            tokens.with_level(now, |level| {
                *level = (*level + f64::from(estimated)).min(tokens.capacity);
            });
        }
    }

    /// Charge the tokens an admitted request used beyond its estimate (a refund when negative).
    pub fn settle(&self, now: Instant, used: u64, estimated: u32) {
        if let Some(tokens) = &self.tokens {
            let extra = used as f64 - f64::from(estimated);
            tokens.with_level(now, |level| *level -= extra);
        }
    }
}

/// An admitted request's claim on its team's limits. Dropped before [`Admission::served`] (the
/// request was refused or failed upstream), what it took is given back.
#[derive(Debug)]
pub struct Admission {
    rate: Arc<RateLimit>,
    estimated: u32,
    served: bool,
}

impl Admission {
    /// The request was served: keep the charge, to be settled from its usage.
    pub fn served(mut self) -> Arc<RateLimit> {
        self.served = true;
        self.rate.clone()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.served {
            self.rate.refund(Instant::now(), self.estimated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: Option<u32>, tokens: Option<u32>) -> (Arc<RateLimit>, Instant) {
        let now = Instant::now();
        let config = RateLimitConfig {
            requests_per_minute: requests,
            tokens_per_minute: tokens,
        };
        (Arc::new(RateLimit::new(&config, now)), now)
    }

    #[test]
    fn requests_are_admitted_up_to_the_minute_s_allowance_then_refill() {
        let (rate, t0) = limit(Some(2), None);
        let _first = rate.admit(t0, 0).unwrap().served();
        let _second = rate.admit(t0, 0).unwrap().served();
        let refused = rate.admit(t0, 0).unwrap_err();
        assert_eq!(refused.limit, "requests_per_minute");
        assert_eq!(
            refused.retry_after,
            Duration::from_secs(30),
            "one request per 30 s"
        );
        assert!(rate.admit(t0 + Duration::from_secs(30), 0).is_ok());
    }

    #[test]
    fn a_request_that_is_not_served_gives_back_what_it_took() {
        let (rate, t0) = limit(Some(1), Some(100));
        drop(rate.admit(t0, 80).unwrap());
        let kept = rate.admit(t0, 80).unwrap().served();
        assert!(
            rate.admit(t0, 80).is_err(),
            "the first gave back, the second kept"
        );
        drop(kept);
    }

    #[test]
    fn tokens_are_estimated_up_front_and_settled_after() {
        let (rate, t0) = limit(None, Some(600));
        rate.admit(t0, 500).unwrap().served();
        rate.admit(t0, 50).unwrap().served();
        rate.settle(t0, 800, 50);
        // 600 - 500 - 50 - 750 = -700: 700 tokens of debt, then one more before admitting.
        let refused = rate.admit(t0, 10).unwrap_err();
        assert_eq!(refused.limit, "tokens_per_minute");
        assert_eq!(refused.retry_after, Duration::from_secs_f64(701.0 / 10.0));
        rate.settle(t0, 0, 800);
        assert!(
            rate.admit(t0, 10).is_ok(),
            "a settled refund pays the debt back"
        );
    }

    #[test]
    fn a_refused_request_takes_nothing() {
        let (rate, t0) = limit(Some(1), Some(100));
        rate.admit(t0, 200).unwrap().served();
        assert!(rate.admit(t0, 1).is_err());
        rate.settle(t0, 0, 200);
        assert!(rate.admit(t0, 1).is_err(), "the request bucket is empty");
        assert!(rate.admit(t0 + Duration::from_secs(60), 1).is_ok());
    }
}
