//! The shadow of the `decide` phase: a policy's candidate deciding the same request as its live
//! version, off the request's critical path.
//!
//! `decide` prepares a [`Job`] when the team's policy has a candidate whose sample takes the
//! request: the request view, catalog and live figures the live version was shown, and what it
//! chose. Once the request has been forwarded and its answer's head is in, [`start`] runs the
//! candidate's decision on its own task, in its own fresh sandbox, if one of the candidate's
//! shadow slots is free (else the job is dropped and counted). The decision is never acted on:
//! the pair is added to the candidate's figures once the answer is complete, priced by its real
//! usage (which the `log` phase sends) or, when the request ended without one, by the prompt's
//! estimate. When the decision log samples the request, the `log` phase hands its record over
//! too, and it is written here with the candidate's decision beside the live one. Nothing here
//! can fail or slow the live request.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use crate::api::ClientRequest;
use crate::control::Snapshot;
use crate::policy::candidate::{Candidate, Choice, Pair, Tokens};
use crate::policy::json::{CandidateJson, DecisionJson, DecisionRecord};
use crate::policy::{DecisionFailure, DecisionInput, Model, Request, Verdict, wit};
use crate::telemetry::decisions::DecisionLog;
use crate::upstream::Usage;

/// A candidate's decision still to make, with what the live version was shown and chose.
pub struct Job {
    pub candidate: Arc<Candidate>,
    pub request: Arc<ClientRequest>,
    pub request_id: Arc<str>,
    pub view: Request,
    pub catalog: Arc<[Model]>,
    pub team: Arc<str>,
    pub budget: Option<wit::Budget>,
    pub snapshot: Arc<Snapshot>,
    pub live: Choice,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("candidate", &self.candidate.version.version())
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

/// What the `log` phase hands a shadow decision once the answer is complete.
#[derive(Debug)]
pub struct Settled {
    /// The answer's usage, if it reported one.
    pub usage: Option<Usage>,
    /// The request's decision record and its log, when the decision log samples it.
    pub record: Option<(Box<DecisionRecord>, Arc<DecisionLog>)>,
}

/// Where the `log` phase sends what a shadow decision's pair waits for.
pub type UsageSender = oneshot::Sender<Settled>;

/// The job for `live`'s decision of a request, when the slot's candidate samples it.
pub fn job(
    candidate: Option<Arc<Candidate>>,
    shown: Shown<'_>,
    live: &Result<Verdict, DecisionFailure>,
) -> Option<Job> {
    let candidate = candidate.filter(|c| c.samples(&shown.request_id))?;
    // A shadow that would find no free slot is dropped (and counted) now, before anything is
    // copied for it.
    if !candidate.has_room() {
        candidate.dropped();
        return None;
    }
    Some(Job {
        candidate,
        request: shown.request.clone(),
        request_id: shown.request_id,
        view: shown.view.clone(),
        catalog: shown.catalog.into(),
        team: shown.team,
        budget: shown.budget,
        snapshot: shown.snapshot.clone(),
        live: Choice::of(live),
    })
}

/// What the live version was shown, borrowed from `decide`.
pub struct Shown<'a> {
    pub request: &'a Arc<ClientRequest>,
    pub request_id: Arc<str>,
    pub view: &'a Request,
    pub catalog: &'a [Model],
    pub team: Arc<str>,
    pub budget: Option<wit::Budget>,
    pub snapshot: &'a Arc<Snapshot>,
}

/// Run `job` on a task of `tasks`, if a shadow slot is free; the sender for the answer's usage.
pub fn start(job: Job, tasks: &TaskTracker) -> Option<UsageSender> {
    let permit = job.candidate.permit()?;
    let (usage_tx, usage_rx) = oneshot::channel::<Settled>();
    tasks.spawn(async move {
        let started = Instant::now();
        let verdict = job
            .candidate
            .version
            .decide_if_free(DecisionInput {
                request: job.request.clone(),
                request_id: job.request_id.clone(),
                view: &job.view,
                catalog: &job.catalog,
                team: Some(job.team.clone()),
                budget: job.budget,
                live: Some(job.snapshot.clone()),
                operation: crate::policy::input::operation(&job.request),
            })
            .await;
        let candidate_time = started.elapsed();
        drop(permit);
        // No free sandbox: not the candidate's failure, and no decision to compare.
        let decided = !matches!(verdict, Err(DecisionFailure::Busy));
        let settled = usage_rx.await.ok();
        let usage = settled.as_ref().and_then(|s| s.usage);
        if let Some((mut record, log)) = settled.and_then(|s| s.record) {
            record.candidate = decided.then(|| CandidateJson {
                policy: job.candidate.version.version().to_string(),
                decision: DecisionJson::of(&verdict),
            });
            log.write(*record);
        }
        if !decided {
            job.candidate.dropped();
            return;
        }
        let tokens = match usage {
            Some(usage) => Tokens {
                input: usage.input_tokens,
                output: usage.output_tokens,
            },
            None => Tokens {
                input: u64::from(job.request.estimated_input_tokens()),
                output: 0,
            },
        };
        job.candidate.record(&Pair {
            live: job.live,
            candidate: Choice::of(&verdict),
            candidate_time,
            tokens,
            real_usage: usage.is_some(),
            catalog: job.catalog,
        });
    });
    Some(usage_tx)
}
