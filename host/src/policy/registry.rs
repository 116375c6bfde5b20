//! The live version of one policy name, and the only place it changes.
//!
//! A [`PolicySlot`] holds the version requests run on behind an [`ArcSwap`]: a request takes an
//! `Arc` of the live version once and runs entirely on it, so a swap never changes a decision
//! half-way, and an old version is freed when its last request ends. Changes (a new version going
//! live, a rollback) take the slot's lock, keep the previous version for rollback, and are
//! recorded as [`SlotEvent`]s that the admin API shows and the log and metrics report. The slot
//! also judges every decision of its live version and rolls back by itself when a new version
//! fails too often ([`super::RollbackRule`]). A rollback leaves the slot *unsaved* and wakes the
//! control plane (through the [`Notify`] every slot shares), which writes the restored version
//! back to the policy's file, so that a restart loads what is live.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::Notify;

use super::candidate::{Candidate, Judgement};
use super::{DecisionFailure, Policy, Verdict};
use crate::config::PolicyConfig;

/// How many events a slot remembers.
const EVENTS_KEPT: usize = 16;

/// Something that happened to a slot.
#[derive(Debug, Clone)]
pub struct SlotEvent {
    pub at: SystemTime,
    /// `live`, `refused` or `rolled-back`.
    pub kind: &'static str,
    /// What caused it: `start`, `file`, `upload`, `config`, `deploy`, `admin` or `automatic`.
    pub trigger: &'static str,
    /// The version it concerns (the refused one, or the one now live).
    pub version: Option<String>,
    pub message: String,
}

/// No version to roll back to.
#[derive(Debug, thiserror::Error)]
#[error("policy `{0}` has no previous version to roll back to")]
pub struct NoPrevious(pub String);

struct SlotState {
    config: PolicyConfig,
    previous: Option<Arc<Policy>>,
    /// SHA-256 of the policy file's content when it was last acted upon (loaded, refused or
    /// written by an upload): the file counts as changed only when its content differs.
    file_sha256: Option<String>,
    /// Set by a rollback until the control plane has written the live version back to the file.
    unsaved: bool,
    events: VecDeque<SlotEvent>,
}

/// One policy name: its config, live version, previous version and history. A slot lives as long
/// as its policy stays in the config; reloads change what it holds, never the slot itself.
pub struct PolicySlot {
    name: Arc<str>,
    live: ArcSwap<Policy>,
    /// A version tried beside the live one, if any (`candidate`).
    candidate: ArcSwapOption<Candidate>,
    state: Mutex<SlotState>,
    /// Notified when a rollback leaves this slot unsaved.
    unsaved: Arc<Notify>,
}

impl PolicySlot {
    /// A slot whose first version is `live`, read from a file with digest `file_sha256`;
    /// `unsaved` is notified whenever a rollback leaves it unsaved.
    pub fn new(
        config: PolicyConfig,
        live: Arc<Policy>,
        file_sha256: Option<String>,
        trigger: &'static str,
        unsaved: Arc<Notify>,
    ) -> Self {
        let slot = Self {
            name: config.name.as_str().into(),
            live: ArcSwap::new(live.clone()),
            candidate: ArcSwapOption::empty(),
            state: Mutex::new(SlotState {
                config,
                previous: None,
                file_sha256,
                unsaved: false,
                events: VecDeque::new(),
            }),
            unsaved,
        };
        slot.event(live_event(&live, trigger, "first version"));
        slot
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The policy's current config.
    pub fn config(&self) -> PolicyConfig {
        self.state().config.clone()
    }

    /// Take a reloaded config for this policy.
    pub fn set_config(&self, config: PolicyConfig) {
        self.state().config = config;
    }

    /// Digest of the file content last acted upon.
    pub fn file_sha256(&self) -> Option<String> {
        self.state().file_sha256.clone()
    }

    /// Remember the file content now acted upon.
    pub fn set_file_sha256(&self, sha256: String) {
        self.state().file_sha256 = Some(sha256);
    }

    /// Whether a rollback left the live version unsaved since the last call; clears the mark.
    pub fn take_unsaved(&self) -> bool {
        std::mem::take(&mut self.state().unsaved)
    }

    /// The version new requests run on.
    pub fn live(&self) -> Arc<Policy> {
        self.live.load_full()
    }

    /// The version a rollback would restore.
    pub fn previous(&self) -> Option<Arc<Policy>> {
        self.state().previous.clone()
    }

    /// Recent events, oldest first.
    pub fn events(&self) -> Vec<SlotEvent> {
        self.state().events.iter().cloned().collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().expect("policy slot lock")
    }

    /// Make `version` live; the version it replaces becomes the previous one. A candidate tried
    /// beside the old live version ends: its figures compared it with another version.
    pub fn promote(&self, version: Arc<Policy>, trigger: &'static str) {
        let mut state = self.state();
        let old = self.live.swap(version.clone());
        state.previous = Some(old);
        drop(state);
        self.end_candidate(trigger, "the live version changed");
        metrics::counter!("switchyard_policy_reloads_total", "policy" => self.name.to_string(), "trigger" => trigger, "result" => "live").increment(1);
        self.event(live_event(&version, trigger, "new version"));
    }

    /// Put the previous version back live; the one it replaces becomes the previous one.
    pub fn roll_back(&self, trigger: &'static str, why: &str) -> Result<Arc<Policy>, NoPrevious> {
        self.roll_back_from(None, trigger, why)
            .map(|restored| restored.expect("no condition to fail"))
    }

    /// Roll back, if `from` is given only while `from` is still live (`Ok(None)` otherwise).
    fn roll_back_from(
        &self,
        from: Option<&Arc<Policy>>,
        trigger: &'static str,
        why: &str,
    ) -> Result<Option<Arc<Policy>>, NoPrevious> {
        let mut state = self.state();
        if from.is_some_and(|from| !Arc::ptr_eq(&self.live.load(), from)) {
            return Ok(None);
        }
        let previous = state
            .previous
            .take()
            .ok_or_else(|| NoPrevious(self.name.to_string()))?;
        let old = self.live.swap(previous.clone());
        state.previous = Some(old.clone());
        state.unsaved = true;
        drop(state);
        self.end_candidate(trigger, "the live version was rolled back");
        self.unsaved.notify_one();
        let message = format!("rolled back from {}: {why}", old.version());
        tracing::warn!(policy = %self.name, version = %previous.version(), trigger, "{message}");
        metrics::counter!("switchyard_policy_rollbacks_total", "policy" => self.name.to_string(), "trigger" => trigger).increment(1);
        self.event(SlotEvent {
            at: SystemTime::now(),
            kind: "rolled-back",
            trigger,
            version: Some(previous.version().to_string()),
            message,
        });
        Ok(Some(previous))
    }

    /// The candidate tried beside the live version, if any.
    pub fn candidate(&self) -> Option<Arc<Candidate>> {
        self.candidate.load_full()
    }

    /// Try `candidate` beside the live version, in place of any other.
    pub fn start_candidate(&self, candidate: Arc<Candidate>) {
        let message = format!(
            "tried beside the live version from {}",
            candidate.version.origin()
        );
        tracing::info!(policy = %self.name, candidate = %candidate.version.version(), "candidate started");
        let event = SlotEvent {
            at: SystemTime::now(),
            kind: "candidate",
            trigger: "admin",
            version: Some(candidate.version.version().to_string()),
            message,
        };
        {
            let _state = self.state();
            self.candidate.store(Some(candidate));
        }
        self.event(event);
    }

    /// Stop trying the candidate, `why`; it is returned, with its figures, if there was one.
    pub fn end_candidate(&self, trigger: &'static str, why: &str) -> Option<Arc<Candidate>> {
        self.end_candidate_if(None, trigger, why)
    }

    /// End the candidate, only if it is `only` when that is given (a judgement must not end a
    /// candidate that replaced the one it judged).
    fn end_candidate_if(
        &self,
        only: Option<&Arc<Candidate>>,
        trigger: &'static str,
        why: &str,
    ) -> Option<Arc<Candidate>> {
        let ended = {
            let _state = self.state();
            let current = self.candidate.load();
            let other =
                only.is_some_and(|only| !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, only)));
            if other {
                return None;
            }
            drop(current);
            self.candidate.swap(None)?
        };
        tracing::info!(policy = %self.name, candidate = %ended.version.version(), trigger, "candidate ended: {why}");
        self.event(SlotEvent {
            at: SystemTime::now(),
            kind: "candidate-ended",
            trigger,
            version: Some(ended.version.version().to_string()),
            message: why.to_string(),
        });
        Some(ended)
    }

    /// Apply what the split's rule judged of `candidate`, if it is still this slot's candidate:
    /// a step up is recorded; an abort drops it; a promotion puts it live and has the control
    /// plane write it to the policy's file (as after a rollback).
    pub fn judged(&self, candidate: &Arc<Candidate>, judgement: Judgement) {
        let current = self.candidate.load();
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, candidate)) {
            return;
        }
        drop(current);
        metrics::counter!("switchyard_rollout_transitions_total", "policy" => self.name.to_string(), "transition" => match &judgement {
            Judgement::Abort { .. } => "abort",
            Judgement::Step { .. } => "step",
            Judgement::Promote { .. } => "promote",
        })
        .increment(1);
        match judgement {
            Judgement::Step { reason, .. } => {
                tracing::info!(policy = %self.name, candidate = %candidate.version.version(), "candidate stepped up: {reason}");
                self.event(SlotEvent {
                    at: SystemTime::now(),
                    kind: "candidate",
                    trigger: "automatic",
                    version: Some(candidate.version.version().to_string()),
                    message: reason,
                });
            }
            Judgement::Abort { reason } => {
                self.end_candidate_if(Some(candidate), "automatic", &format!("aborted: {reason}"));
            }
            Judgement::Promote { reason } => {
                if self
                    .end_candidate_if(Some(candidate), "automatic", &reason)
                    .is_some()
                {
                    self.promote(candidate.version.clone(), "automatic");
                    self.state().unsaved = true;
                    self.unsaved.notify_one();
                }
            }
        }
    }

    /// Record that a candidate version was refused; the live version stays.
    pub fn refused(&self, trigger: &'static str, version: Option<String>, message: String) {
        metrics::counter!("switchyard_policy_reloads_total", "policy" => self.name.to_string(), "trigger" => trigger, "result" => "refused").increment(1);
        tracing::warn!(policy = %self.name, trigger, "new policy version refused, the live version keeps serving: {message}");
        self.event(SlotEvent {
            at: SystemTime::now(),
            kind: "refused",
            trigger,
            version,
            message,
        });
    }

    /// Count a decision of `version` and roll back by itself when `version` is live and has just
    /// failed more than its rollback rule allows.
    pub fn record(
        &self,
        version: &Arc<Policy>,
        outcome: &Result<Verdict, DecisionFailure>,
        request_id: &str,
    ) {
        let outcome = outcome.as_ref().map(|_| ());
        let rule = version.settings().rollback;
        if !version.stats.record(outcome, request_id, rule) {
            return;
        }
        let (failed, judged) = version.stats.judged();
        let last = version
            .stats
            .last_failure()
            .map(|f| f.message)
            .unwrap_or_default();
        let why = format!(
            "{failed} of its first {judged} decisions failed (more than {:.0}% of {}); last: {last}",
            rule.failure_share * 100.0,
            rule.window
        );
        if self
            .roll_back_from(Some(version), "automatic", &why)
            .is_err()
        {
            tracing::error!(policy = %self.name, version = %version.version(), "{why}; there is no previous version to roll back to");
        }
    }

    fn event(&self, event: SlotEvent) {
        let mut state = self.state();
        if state.events.len() == EVENTS_KEPT {
            state.events.pop_front();
        }
        state.events.push_back(event);
    }
}

fn live_event(version: &Policy, trigger: &'static str, what: &str) -> SlotEvent {
    tracing::info!(policy = %version.name(), version = %version.version(), trigger, origin = version.origin(), "policy version live");
    SlotEvent {
        at: SystemTime::now(),
        kind: "live",
        trigger,
        version: Some(version.version().to_string()),
        message: format!("{what} from {}", version.origin()),
    }
}
