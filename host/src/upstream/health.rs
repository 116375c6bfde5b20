//! Live health of every catalog model, learnt from the attempts made to it, and the circuit
//! breaker that keeps attempts away from a model that keeps failing.
//!
//! Per model: estimates of latency (an exponentially weighted average of the time to an answer's
//! head) and of time to first token (the same, of the time to a stream's first event), the share of failed attempts among the recent ones, the attempts in flight,
//! and a breaker. The breaker opens after `breaker_failures` consecutive failures, or at once for
//! as long as a 429 or 503 asks with `Retry-After`; while open, attempts skip the model. After
//! the cooldown it lets one attempt through as a probe: success closes it, failure opens it again.
//! These figures fill the live fields of the catalog policies see (`Catalog::live`, in the
//! control layer above): a model whose breaker is open is `healthy: false` there. The board outlives config reloads
//! (a model keeps its history), and this module touches nothing but its own counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::policy::wit::ModelHealth as HealthView;

/// Weight of the newest sample in the latency estimate.
const LATENCY_WEIGHT: f64 = 0.2;
/// Longest `Retry-After` honoured: an upstream cannot take a model out for longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How health is judged, from `[upstream]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Recent attempts the error rate is computed over.
    pub window: usize,
    /// Consecutive failures that open a breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before letting a probe through.
    pub cooldown: Duration,
}

impl HealthSettings {
    pub fn from_config(config: &Config) -> Self {
        let u = &config.upstream;
        Self {
            window: u.health_window as usize,
            breaker_failures: u.breaker_failures,
            cooldown: Duration::from_millis(u.breaker_cooldown_ms),
        }
    }
}

/// How an attempt ended, as health counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The model answered (any answer that is not a failure); `latency` to the answer's head.
    Answered { latency: Duration },
    /// Connection error, timeout, a cut answer, or a status that fails over; `retry_after` when
    /// the upstream asked for a pause.
    Failed { retry_after: Option<Duration> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// Past the cooldown; `probing` while the one probe attempt is out.
    HalfOpen {
        probing: bool,
    },
}

#[derive(Debug)]
struct State {
    latency_ms: Option<f64>,
    /// Time from an attempt's start to the first event of its stream.
    first_token_ms: Option<f64>,
    /// Recent attempts, newest last: true for a failure.
    recent: VecDeque<bool>,
    breaker: Breaker,
}

/// The health of one model.
#[derive(Debug)]
pub struct ModelHealth {
    in_flight: AtomicU32,
    state: Mutex<State>,
    /// `switchyard_breaker_open{model}`.
    breaker_gauge: metrics::Gauge,
}

/// An admitted attempt; counts as in flight until dropped. A probe (the one attempt a half-open
/// breaker lets through) that is dropped without an outcome recorded, because the request was
/// not sent after all or its client went away, lets the next attempt probe instead.
#[derive(Debug)]
pub struct InFlight {
    model: Arc<ModelHealth>,
    probe: bool,
}

/// A streamed answer's hold on its model's health: in flight until dropped; its outcome is
/// recorded when the stream ends, so a stream that stalls or breaks after its head counts as one
/// failure (and a probe is judged by the whole stream), and the time to its first token is
/// sampled.
#[derive(Debug)]
pub struct StreamWatch {
    in_flight: InFlight,
    settings: HealthSettings,
    started: Instant,
    /// Time from the attempt's start to the answer's head.
    head: Option<Duration>,
}

impl StreamWatch {
    /// Watch the stream of an attempt admitted as `in_flight` that started at `started`.
    pub fn new(in_flight: InFlight, settings: HealthSettings, started: Instant) -> Self {
        Self {
            in_flight,
            settings,
            started,
            head: None,
        }
    }

    /// The answer's head arrived at `now`.
    pub fn head(&mut self, now: Instant) {
        self.head = Some(now.duration_since(self.started));
    }

    /// The stream's first token (text or tool-call content) arrived at `now`.
    pub fn first_token(&self, now: Instant) {
        let sample = now.duration_since(self.started).as_secs_f64() * 1000.0;
        let mut state = self.in_flight.model.state();
        state.first_token_ms = Some(ewma(state.first_token_ms, sample));
    }

    /// The stream ended at `now`, whole (`complete`) or not (stalled, broken, unfinished, or an
    /// error event from the upstream).
    pub fn ended(&self, now: Instant, complete: bool) {
        let outcome = if complete {
            Outcome::Answered {
                latency: self
                    .head
                    .unwrap_or_else(|| now.duration_since(self.started)),
            }
        } else {
            Outcome::Failed { retry_after: None }
        };
        self.in_flight.model.record(now, outcome, &self.settings);
    }
}

fn ewma(old: Option<f64>, sample: f64) -> f64 {
    match old {
        Some(old) => old + LATENCY_WEIGHT * (sample - old),
        None => sample,
    }
}

impl Drop for ModelHealth {
    /// A model that leaves the catalog leaves no breaker showing.
    fn drop(&mut self) {
        self.breaker_gauge.set(0.0);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.model.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.probe {
            let mut state = self.model.state();
            if state.breaker == (Breaker::HalfOpen { probing: true }) {
                state.breaker = Breaker::HalfOpen { probing: false };
            }
        }
    }
}

impl ModelHealth {
    fn new(model: &str) -> Self {
        Self {
            breaker_gauge: metrics::gauge!("switchyard_breaker_open", "model" => model.to_string()),
            in_flight: AtomicU32::new(0),
            state: Mutex::new(State {
                latency_ms: None,
                first_token_ms: None,
                recent: VecDeque::new(),
                breaker: Breaker::Closed {
                    consecutive_failures: 0,
                },
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("health lock")
    }

    /// Let an attempt go to this model now, unless its breaker is open (or its one probe is
    /// already out); `Err` says until when it stays closed to attempts.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<InFlight, Option<Instant>> {
        let mut state = self.state();
        let probe = match state.breaker {
            Breaker::Closed { .. } => false,
            Breaker::Open { until } if now < until => return Err(Some(until)),
            Breaker::Open { .. } | Breaker::HalfOpen { probing: false } => {
                state.breaker = Breaker::HalfOpen { probing: true };
                true
            }
            Breaker::HalfOpen { probing: true } => return Err(None),
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(InFlight {
            model: self.clone(),
            probe,
        })
    }

    /// Learn from one attempt.
    pub fn record(&self, now: Instant, outcome: Outcome, settings: &HealthSettings) {
        let mut state = self.state();
        let failed = matches!(outcome, Outcome::Failed { .. });
        state.recent.push_back(failed);
        while state.recent.len() > settings.window {
            state.recent.pop_front();
        }
        let open = Breaker::Open {
            until: now + settings.cooldown,
        };
        state.breaker = match (outcome, state.breaker) {
            (Outcome::Answered { latency }, _) => {
                let sample = latency.as_secs_f64() * 1000.0;
                state.latency_ms = Some(ewma(state.latency_ms, sample));
                Breaker::Closed {
                    consecutive_failures: 0,
                }
            }
            (Outcome::Failed { retry_after }, breaker) => {
                let next = match breaker {
                    Breaker::Closed {
                        consecutive_failures,
                    } if consecutive_failures + 1 < settings.breaker_failures => Breaker::Closed {
                        consecutive_failures: consecutive_failures + 1,
                    },
                    Breaker::Open { until } => Breaker::Open {
                        until: until.max(now + settings.cooldown),
                    },
                    _ => open,
                };
                match (retry_after, next) {
                    (Some(pause), Breaker::Open { until }) => Breaker::Open {
                        until: until.max(now + pause.min(MAX_RETRY_AFTER)),
                    },
                    (Some(pause), _) => Breaker::Open {
                        until: now + pause.min(MAX_RETRY_AFTER),
                    },
                    (None, next) => next,
                }
            }
        };
        let open = !matches!(state.breaker, Breaker::Closed { .. });
        self.breaker_gauge.set(if open { 1.0 } else { 0.0 });
    }

    /// Estimated time to the first event of a stream, in milliseconds, once one was measured.
    pub fn first_token_ms(&self) -> Option<f32> {
        self.state().first_token_ms.map(|ms| ms as f32)
    }

    /// The live fields a policy sees.
    pub fn view(&self, now: Instant) -> HealthView {
        let state = self.state();
        let healthy = match state.breaker {
            Breaker::Closed { .. } | Breaker::HalfOpen { probing: false } => true,
            Breaker::Open { until } => now >= until,
            Breaker::HalfOpen { probing: true } => false,
        };
        let failures = state.recent.iter().filter(|failed| **failed).count();
        HealthView {
            healthy,
            latency_ms: state.latency_ms.unwrap_or(0.0) as f32,
            error_rate: if state.recent.is_empty() {
                0.0
            } else {
                failures as f32 / state.recent.len() as f32
            },
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// The health of every catalog model.
#[derive(Debug)]
pub struct HealthBoard {
    settings: HealthSettings,
    models: foldhash::HashMap<String, Arc<ModelHealth>>,
}

impl HealthBoard {
    /// A board for `config`'s catalog that keeps what `old` learnt of models still in it.
    pub fn new(config: &Config, old: Option<&HealthBoard>) -> Self {
        let models = config
            .models
            .iter()
            .map(|m| {
                let kept = old.and_then(|o| o.models.get(&m.id)).cloned();
                (
                    m.id.clone(),
                    kept.unwrap_or_else(|| Arc::new(ModelHealth::new(&m.id))),
                )
            })
            .collect();
        Self {
            settings: HealthSettings::from_config(config),
            models,
        }
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    /// The health of catalog model `id`.
    pub fn model(&self, id: &str) -> Option<&Arc<ModelHealth>> {
        self.models.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: HealthSettings = HealthSettings {
        window: 4,
        breaker_failures: 3,
        cooldown: Duration::from_secs(10),
    };
    const FAILED: Outcome = Outcome::Failed { retry_after: None };

    fn answered(ms: u64) -> Outcome {
        Outcome::Answered {
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn the_breaker_opens_probes_and_closes() {
        let model = Arc::new(ModelHealth::new("m"));
        let t0 = Instant::now();
        for _ in 0..2 {
            drop(model.admit(t0).unwrap());
            model.record(t0, FAILED, &SETTINGS);
        }
        assert!(model.view(t0).healthy, "two failures are not yet three");
        model.record(t0, FAILED, &SETTINGS);
        assert!(!model.view(t0).healthy);
        assert_eq!(model.admit(t0).unwrap_err(), Some(t0 + SETTINGS.cooldown));

        let later = t0 + SETTINGS.cooldown;
        assert!(
            model.view(later).healthy,
            "after the cooldown a probe may go"
        );
        let probe = model.admit(later).unwrap();
        assert_eq!(model.admit(later).unwrap_err(), None, "one probe at a time");
        assert_eq!(model.view(later).in_flight, 1);
        model.record(later, FAILED, &SETTINGS);
        drop(probe);
        assert!(!model.view(later).healthy, "a failed probe opens it again");

        let again = later + SETTINGS.cooldown;
        let probe = model.admit(again).unwrap();
        model.record(again, answered(100), &SETTINGS);
        drop(probe);
        let view = model.view(again);
        assert!(view.healthy);
        assert_eq!(view.in_flight, 0);
        assert!(model.admit(again).is_ok(), "closed again");
    }

    #[test]
    fn a_probe_dropped_without_an_outcome_lets_the_next_one_probe() {
        let model = Arc::new(ModelHealth::new("m"));
        let t0 = Instant::now();
        for _ in 0..3 {
            model.record(t0, FAILED, &SETTINGS);
        }
        let later = t0 + SETTINGS.cooldown;
        let probe = model.admit(later).unwrap();
        assert_eq!(model.admit(later).unwrap_err(), None);
        drop(probe);
        assert!(model.admit(later).is_ok(), "another probe may go");
    }

    #[test]
    fn a_stream_counts_once_when_it_ends() {
        let model = Arc::new(ModelHealth::new("m"));
        let t0 = Instant::now();
        for _ in 0..3 {
            let mut watch = StreamWatch::new(model.admit(t0).unwrap(), SETTINGS, t0);
            watch.head(t0 + Duration::from_millis(10));
            assert_eq!(model.view(t0).in_flight, 1, "in flight until it ends");
            watch.ended(t0 + Duration::from_millis(50), false);
        }
        assert!(
            !model.view(t0).healthy,
            "three streams that broke after their head open the breaker"
        );

        let later = t0 + Duration::from_millis(50) + SETTINGS.cooldown;
        let mut watch = StreamWatch::new(model.admit(later).unwrap(), SETTINGS, later);
        watch.head(later + Duration::from_millis(10));
        watch.first_token(later + Duration::from_millis(30));
        watch.ended(later + Duration::from_millis(90), true);
        drop(watch);
        let view = model.view(later);
        assert!(view.healthy && view.in_flight == 0);
        assert!(
            (view.latency_ms - 10.0).abs() < 0.01,
            "latency is to the head"
        );
        assert_eq!(model.first_token_ms(), Some(30.0));
    }

    #[test]
    fn retry_after_opens_at_once_for_as_long_as_asked_within_a_cap() {
        let model = Arc::new(ModelHealth::new("m"));
        let t0 = Instant::now();
        let pause = |secs| Outcome::Failed {
            retry_after: Some(Duration::from_secs(secs)),
        };
        model.record(t0, pause(30), &SETTINGS);
        assert_eq!(
            model.admit(t0).unwrap_err(),
            Some(t0 + Duration::from_secs(30))
        );
        model.record(t0, pause(100_000), &SETTINGS);
        assert_eq!(model.admit(t0).unwrap_err(), Some(t0 + MAX_RETRY_AFTER));
    }

    #[test]
    fn latency_is_averaged_and_errors_counted_over_the_window() {
        let model = ModelHealth::new("m");
        let t0 = Instant::now();
        model.record(t0, answered(100), &SETTINGS);
        model.record(t0, answered(200), &SETTINGS);
        assert!((model.view(t0).latency_ms - 120.0).abs() < 0.01);
        model.record(t0, FAILED, &SETTINGS);
        assert_eq!(model.view(t0).error_rate, 1.0 / 3.0);
        for _ in 0..4 {
            model.record(t0, answered(100), &SETTINGS);
        }
        assert_eq!(
            model.view(t0).error_rate,
            0.0,
            "the failure left the window"
        );
    }
}
