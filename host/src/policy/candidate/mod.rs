//! A candidate version beside a policy's live one, and how it is tried before it goes live.
//!
//! **Shadow**: the candidate decides the same request views as the live version, in its own
//! fresh sandboxes, after the live request has been forwarded; its decisions are never acted on.
//! At most one shadow decision per core runs at once ([`Candidate::permit`]); one more is dropped
//! and counted, so a slow or looping candidate costs live traffic at most that many cores for its
//! deadline. Each pair of decisions is added up in `pairs`.
//!
//! **Split**: a share of the policy's requests is decided and served by the candidate, sticky by
//! a hash of the client key, a header or the request's `metadata.user`, so one user sees one
//! version, on every replica ([`Candidate::arm`]). Each arm's requests are added up in `arms`,
//! which also judges them against the policy's `rollout` rule: abort when the candidate does
//! worse than the live version by more than a margin, step up the share or promote when it has
//! done well long enough.
//!
//! This module holds data and arithmetic only; the request path runs the decisions and the
//! policy's slot applies what the judgement says.

mod arms;
mod pairs;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use arms::{ArmReport, ArmSample, Judgement, SplitReport};
pub use pairs::{Choice, Pair, Report, Tokens};

use super::Policy;
use crate::config::RolloutConfig;

/// How a candidate is tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Mode {
    /// Decides beside the live version on a share (`sample`, 0 to 1) of the policy's requests;
    /// never acted on.
    Shadow { sample: f64 },
    /// Decides and serves `percent` of the policy's requests, chosen by a hash of `sticky`.
    Split { percent: f64, sticky: Sticky },
}

/// What keeps a user in one arm of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Sticky {
    /// The client's API key (its digest; the key itself is never kept).
    Key,
    /// The request's `metadata.user` (or Anthropic's `metadata.user_id`).
    User,
    /// A request header's value.
    Header(String),
}

impl TryFrom<String> for Sticky {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "key" => Ok(Self::Key),
            "user" => Ok(Self::User),
            other => match other.strip_prefix("header:") {
                Some(name)
                    if !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
                {
                    Ok(Self::Header(name.to_string()))
                }
                _ => Err(format!(
                    "`{other}` is not `key`, `user` or `header:NAME` (a lower-case header name)"
                )),
            },
        }
    }
}

impl From<Sticky> for String {
    fn from(sticky: Sticky) -> Self {
        match sticky {
            Sticky::Key => "key".into(),
            Sticky::User => "user".into(),
            Sticky::Header(name) => format!("header:{name}"),
        }
    }
}

/// Which version a request of a split is decided and served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Live,
    Candidate,
}

/// A candidate run the whole fleet tries (recorded in its Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRun {
    /// The run's id: every replica trying this run has it.
    pub id: String,
    /// The reference, pinned to its digest, and the digest.
    pub reference: String,
    pub digest: String,
    /// The replica whose admin API started it.
    pub by: String,
}

/// Shares are kept in basis points (1/100 of a percent).
const FULL: u32 = 10_000;

/// A candidate version and what its tries showed.
pub struct Candidate {
    pub version: Arc<Policy>,
    pub mode: Mode,
    pub started_at: SystemTime,
    /// A split's automatic transitions (the policy's `rollout` table when it started).
    rule: Option<RolloutConfig>,
    /// The fleet's run this is, when the whole fleet tries it.
    pub fleet: Option<FleetRun>,
    /// A split's share of requests for the candidate now, in basis points.
    share: AtomicU32,
    /// Shadow decisions running now, at most its size.
    in_flight: Arc<Semaphore>,
    tally: Mutex<Tallies>,
}

#[derive(Default)]
struct Tallies {
    pairs: pairs::Tally,
    dropped: u64,
    arms: arms::Arms,
}

impl Candidate {
    /// `version` tried as `mode`, with at most `concurrency` shadow decisions at once, a split
    /// judged by `rule`.
    pub fn new(
        version: Arc<Policy>,
        mode: Mode,
        concurrency: usize,
        rule: Option<RolloutConfig>,
    ) -> Self {
        let share = match &mode {
            Mode::Shadow { .. } => 0,
            Mode::Split { percent, .. } => (percent * 100.0).round().clamp(0.0, FULL as f64) as u32,
        };
        Self {
            version,
            mode,
            started_at: SystemTime::now(),
            rule,
            fleet: None,
            share: AtomicU32::new(share),
            in_flight: Arc::new(Semaphore::new(concurrency.max(1))),
            tally: Mutex::new(Tallies::default()),
        }
    }

    /// This candidate as the fleet's run `run`, if given.
    pub fn in_fleet(mut self, run: Option<FleetRun>) -> Self {
        self.fleet = run;
        self
    }

    /// A split's share of requests for the candidate now, in percent.
    pub fn percent(&self) -> f64 {
        f64::from(self.share.load(Ordering::Relaxed)) / 100.0
    }

    /// Raise a split's share to `percent`, as another replica of the fleet stepped it up; a
    /// lower share changes nothing (steps only go up). The current step starts again.
    pub fn raise_percent(&self, percent: f64) {
        let share = (percent * 100.0).round().clamp(0.0, FULL as f64) as u32;
        let mut tally = self.lock();
        if share > self.share.load(Ordering::Relaxed) {
            self.share.store(share, Ordering::Relaxed);
            tally.arms.new_step();
        }
    }

    /// Whether the shadow's sample takes the request with id `request_id`: the same answer for
    /// the same id, on every replica. Never for a split.
    pub fn samples(&self, request_id: &str) -> bool {
        match self.mode {
            Mode::Shadow { sample } => sample >= 1.0 || unit_hash(request_id) < sample,
            Mode::Split { .. } => false,
        }
    }

    /// The arm of a split request whose sticky value is `sticky` (`None`: a request without one,
    /// placed by its own id). The hash covers the policy's name, so one user may land in
    /// different arms of different policies, but always in the same arm of one.
    pub fn arm(&self, sticky: &str) -> Arm {
        if !matches!(self.mode, Mode::Split { .. }) {
            return Arm::Live;
        }
        let share = f64::from(self.share.load(Ordering::Relaxed)) / f64::from(FULL);
        let point = unit_hash(&format!("{}\u{0}{sticky}", self.version.name()));
        if point < share {
            Arm::Candidate
        } else {
            Arm::Live
        }
    }

    /// A slot for one shadow decision, or `None` (counted as dropped) when all are taken.
    pub fn permit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.in_flight.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.dropped();
        }
        permit
    }

    /// Count a shadow decision not made: its slots, or the engine's sandboxes, were all taken.
    pub fn dropped(&self) {
        self.lock().dropped += 1;
        metrics::counter!("switchyard_shadow_dropped_total", "policy" => self.version.name().to_string())
            .increment(1);
    }

    /// Add one pair of shadow decisions up.
    pub fn record(&self, pair: &Pair) {
        let agreement = self.lock().pairs.add(pair);
        metrics::counter!(
            "switchyard_shadow_decisions_total",
            "policy" => self.version.name().to_string(),
            "candidate" => self.version.version().to_string(),
            "agreement" => agreement,
        )
        .increment(1);
    }

    /// Add one request of a split up, and judge the candidate by its rule: what to do now, if
    /// anything. A step up takes effect here; an abort or a promotion is the slot's to apply.
    /// All of it under one lock: two requests ending at once cannot both step up, or promote
    /// past a step that has not run.
    pub fn record_arm(&self, arm: Arm, sample: &ArmSample) -> Option<Judgement> {
        let mut tally = self.lock();
        tally.arms.add(arm, sample);
        let percent = self.percent();
        let judgement = self
            .rule
            .as_ref()
            .and_then(|rule| tally.arms.judge(rule, percent));
        if let Some(Judgement::Step { percent, .. }) = &judgement {
            self.share
                .store((percent * 100.0).round() as u32, Ordering::Relaxed);
            tally.arms.new_step();
        }
        judgement
    }

    /// Whether a shadow slot is free now (checked before a shadow decision is prepared).
    pub fn has_room(&self) -> bool {
        self.in_flight.available_permits() > 0
    }

    /// The shadow figures so far.
    pub fn report(&self) -> Report {
        let tally = self.lock();
        tally.pairs.report(tally.dropped)
    }

    /// What this replica has tried of the candidate, for the fleet's status.
    pub fn figures(&self) -> Figures {
        Figures {
            candidate: self.version.version().to_string(),
            run: self.fleet.as_ref().map(|run| run.id.clone()),
            report: self.report(),
            split: matches!(self.mode, Mode::Split { .. }).then(|| self.split_report()),
        }
    }

    /// The split figures so far, per arm.
    pub fn split_report(&self) -> SplitReport {
        self.lock().arms.report(self.percent())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One replica's figures of a candidate, as its fleet report carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The candidate version.
    pub candidate: String,
    /// The fleet's run, when the fleet tries it.
    pub run: Option<String>,
    pub report: Report,
    pub split: Option<SplitReport>,
}

impl Figures {
    /// The figures of several replicas taken together: counts added, rates and means weighted
    /// by the counts they cover, the decision-time percentiles the largest of any replica's.
    pub fn merge(all: &[Figures]) -> Option<Figures> {
        let first = all.first()?;
        let reports: Vec<&Report> = all.iter().map(|f| &f.report).collect();
        let splits: Vec<&SplitReport> = all.iter().filter_map(|f| f.split.as_ref()).collect();
        Some(Figures {
            candidate: first.candidate.clone(),
            run: first.run.clone(),
            report: Report::merge(&reports),
            split: SplitReport::merge(&splits),
        })
    }
}

/// `text` hashed to a number in [0, 1), the same on every replica and every run.
pub fn unit_hash(text: &str) -> f64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let top = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (top >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_sample_is_a_stable_share_of_request_ids() {
        let in_sample = (0..10_000)
            .filter(|i| unit_hash(&format!("req-{i}")) < 0.25)
            .count();
        assert!((2300..2700).contains(&in_sample), "{in_sample}");
        assert_eq!(unit_hash("req-1"), unit_hash("req-1"));
    }

    #[test]
    fn replicas_figures_add_up() {
        let report = |pairs: u64, agreement: f64, row: &[(&str, u64)]| Report {
            pairs,
            dropped: 1,
            agreement,
            same_chain: agreement,
            confusion: [(
                "a".to_string(),
                row.iter().map(|(m, n)| (m.to_string(), *n)).collect(),
            )]
            .into(),
            live_usd_per_1000: 1.0,
            candidate_usd_per_1000: if pairs == 10 { 2.0 } else { 0.5 },
            priced_by_usage: pairs,
            failure_rate: 0.0,
            failures: BTreeMap::new(),
            decision_us_p50: pairs as u32,
            decision_us_p99: 2 * pairs as u32,
        };
        let figures = |report| Figures {
            candidate: "p@1".into(),
            run: Some("run".into()),
            report,
            split: None,
        };
        let merged = Figures::merge(&[
            figures(report(10, 1.0, &[("a", 10)])),
            figures(report(30, 0.5, &[("a", 15), ("b", 15)])),
        ])
        .unwrap();
        let r = merged.report;
        assert_eq!((r.pairs, r.dropped, r.priced_by_usage), (40, 2, 40));
        assert_eq!(r.agreement, 0.625);
        assert_eq!(r.confusion["a"]["a"], 25);
        assert_eq!(r.confusion["a"]["b"], 15);
        assert_eq!(r.candidate_usd_per_1000, (10.0 * 2.0 + 30.0 * 0.5) / 40.0);
        assert_eq!((r.decision_us_p50, r.decision_us_p99), (30, 60));
        assert!(Figures::merge(&[]).is_none());
    }

    #[test]
    fn sticky_settings_are_read_and_written_back() {
        for text in ["key", "user", "header:x-user"] {
            let sticky = Sticky::try_from(text.to_string()).unwrap();
            assert_eq!(String::from(sticky), text);
        }
        let bad = Sticky::try_from("header:X User".to_string()).unwrap_err();
        assert!(bad.contains("header:NAME"), "{bad}");
    }
}
