//! # scripted-policy: a test policy whose decisions the request itself scripts
//!
//! The end-to-end tests send headers (allow-listed in their config) that say what to decide:
//! - `x-test-route: a,b,c`: route to these model ids, in order (unknown ids included, to test
//!   decision validation); `x-test-timeout-ms` sets every target's timeout;
//! - `x-test-reject: STATUS MESSAGE`: reject;
//! - `x-test-error: MESSAGE`: return an error result;
//! - `x-test-read: INDEX,MAX`: read message text through the host and report in the reason how
//!   many characters came back and how they start;
//! - `x-test-dump: 1`: log everything the policy was given (request view and catalog), then route
//!   to the first catalog model;
//! - `x-test-budget: 1`: report the team's budget (`host.team-budget`) in the reason;
//! - `x-test-first-token: MODEL`: report the host's time-to-first-token estimate for `MODEL`
//!   (`host.first-token-ms`) in the reason;
//! - `x-test-spin: 1`: loop forever; `x-test-panic: MESSAGE`: panic.
//!
//! Without any of them it routes to the first catalog model.

use switchyard_sdk::{
    Catalog, Decision, Policy, Request, RequestExt, first_token_ms, log, reject, route, team_budget,
};

struct Scripted;

impl Policy for Scripted {
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        if req.header("x-test-spin").is_some() {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if let Some(message) = req.header("x-test-panic") {
            panic!("{message}");
        }
        if req.header("x-test-dump").is_some() {
            log::info(&format!("request: {req:?}"));
            for model in catalog.iter() {
                log::info(&format!("model: {model:?}"));
            }
        }
        if let Some(message) = req.header("x-test-error") {
            return Err(message.to_string());
        }
        if let Some(spec) = req.header("x-test-reject") {
            let (status, message) = spec.split_once(' ').unwrap_or((spec, "rejected"));
            let status = status.parse().map_err(|_| format!("bad status {status}"))?;
            return Ok(reject(status, message));
        }
        if let Some(spec) = req.header("x-test-read") {
            let (index, max) = spec.split_once(',').ok_or("x-test-read wants INDEX,MAX")?;
            let index: usize = index.parse().map_err(|_| "bad index")?;
            let max: u32 = max.parse().map_err(|_| "bad max")?;
            let first = catalog.iter().next().ok_or("empty catalog")?;
            let reason = match req.message_text(index, max) {
                Some(text) => {
                    let head: String = text.chars().take(16).collect();
                    format!("read {} chars: {head}", text.chars().count())
                }
                None => "no such message".to_string(),
            };
            return Ok(route([first.id.as_str()], reason));
        }
        let mut decision = match req.header("x-test-route") {
            Some(list) => route(list.split(',').map(str::trim), "scripted"),
            None => route(
                [catalog.iter().next().ok_or("empty catalog")?.id.as_str()],
                "first model",
            ),
        };
        if let Decision::Route(r) = &mut decision {
            if req.header("x-test-budget").is_some() {
                r.reason = match team_budget() {
                    Some(b) => format!(
                        "budget: {:.6} left of {:.6}, resets in {} s",
                        b.remaining_usd(),
                        b.limit_usd,
                        b.resets_in_seconds
                    ),
                    None => "budget: none".to_string(),
                };
            }
            if let Some(model) = req.header("x-test-first-token") {
                r.reason = match first_token_ms(model) {
                    Some(ms) => format!("first token of {model}: {ms:.1} ms"),
                    None => format!("first token of {model}: not measured"),
                };
            }
        }
        if let (Decision::Route(r), Some(ms)) = (&mut decision, req.header("x-test-timeout-ms")) {
            let ms: u32 = ms.parse().map_err(|_| "bad timeout")?;
            r.targets.iter_mut().for_each(|t| t.timeout_ms = Some(ms));
        }
        Ok(decision)
    }
}

switchyard_sdk::export_policy!(Scripted);
