//! Checking what a policy returned before anything acts on it.
//!
//! A policy is untrusted: its decision is turned into a [`Verdict`] only if every target names a
//! catalog model, the chain and texts are within bounds, and a rejection uses an error status.
//! Anything else is an invalid decision, which the caller treats as a policy failure. The texts
//! it keeps (reason, rejection message) and quotes in its errors pass through [`untrusted`].

use std::time::Duration;

use axum::http::StatusCode;

use super::untrusted;
use super::wit::switchyard::policy::types::{Route, Target};
use super::wit::{Decision, Model};

/// Most targets a route may carry.
pub const MAX_TARGETS: usize = 8;
/// Longest reason a route may give, in bytes.
pub const MAX_REASON_BYTES: usize = 256;
/// Longest rejection message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest per-target timeout a policy may ask for.
pub const MAX_TARGET_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest policy error message kept; longer ones are cut.
pub const MAX_ERROR_BYTES: usize = 512;

/// The most bytes a decision within the contract's limits holds, as the host copies it out of a
/// policy (strings, and lists at the host's size of an element), over `catalog`: a route of
/// [`MAX_TARGETS`] targets naming its longest model id, with a reason of [`MAX_REASON_BYTES`];
/// a rejection message; or an error message.
pub fn max_bytes(catalog: &[Model]) -> usize {
    let longest_id = catalog.iter().map(|m| m.id.len()).max().unwrap_or(0);
    let route = MAX_TARGETS * (size_of::<Target>() + longest_id) + MAX_REASON_BYTES;
    route.max(MAX_MESSAGE_BYTES).max(MAX_ERROR_BYTES)
}

/// One validated step of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTarget {
    /// A catalog model id.
    pub model: String,
    pub timeout: Option<Duration>,
    pub max_output_tokens: Option<u32>,
}

/// A validated decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Route {
        targets: Vec<PlannedTarget>,
        reason: String,
    },
    Reject {
        status: StatusCode,
        message: String,
    },
}

/// Check `decision` against `catalog`; the error says what is wrong with it.
pub fn validate(decision: Decision, catalog: &[Model]) -> Result<Verdict, String> {
    match decision {
        Decision::Route(route) => validate_route(route, catalog),
        Decision::Reject(r) => {
            let status = StatusCode::from_u16(r.status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| format!("rejection status {} is not 400-599", r.status))?;
            if r.message.len() > MAX_MESSAGE_BYTES {
                return Err(format!(
                    "rejection message is {} bytes, at most {MAX_MESSAGE_BYTES} allowed",
                    r.message.len()
                ));
            }
            Ok(Verdict::Reject {
                status,
                message: untrusted::text(&r.message, MAX_MESSAGE_BYTES),
            })
        }
    }
}

/// A route within the limits, its reason printable, every target checked.
fn validate_route(route: Route, catalog: &[Model]) -> Result<Verdict, String> {
    if route.targets.is_empty() {
        return Err("route has no targets".into());
    }
    if route.targets.len() > MAX_TARGETS {
        return Err(format!(
            "route has {} targets, at most {MAX_TARGETS} allowed",
            route.targets.len()
        ));
    }
    if route.reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "reason is {} bytes, at most {MAX_REASON_BYTES} allowed",
            route.reason.len()
        ));
    }
    if route.reason.chars().any(char::is_control) {
        return Err("reason contains control characters".into());
    }
    let targets = route
        .targets
        .into_iter()
        .map(|t| validate_target(t, catalog))
        .collect::<Result<_, _>>()?;
    Ok(Verdict::Route {
        targets,
        reason: untrusted::text(&route.reason, MAX_REASON_BYTES),
    })
}

/// A target naming a model of `catalog`, its timeout and output cap within bounds.
fn validate_target(t: Target, catalog: &[Model]) -> Result<PlannedTarget, String> {
    if !catalog.iter().any(|m| m.id == t.model) {
        let shown = untrusted::text(&t.model, 64);
        return Err(format!("target model `{shown}` is not in the catalog"));
    }
    let timeout = t.timeout_ms.map(|ms| Duration::from_millis(ms.into()));
    if timeout.is_some_and(|d| d.is_zero() || d > MAX_TARGET_TIMEOUT) {
        return Err(format!(
            "target `{}` timeout must be 1 ms to 600 s",
            t.model
        ));
    }
    if t.max_output_tokens == Some(0) {
        return Err(format!(
            "target `{}` max-output-tokens must be at least 1",
            t.model
        ));
    }
    Ok(PlannedTarget {
        model: t.model,
        timeout,
        max_output_tokens: t.max_output_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::super::wit::switchyard::policy::types::{Rejection, Route, Target};
    use super::*;

    fn catalog() -> Vec<Model> {
        ["a", "b"]
            .iter()
            .map(|id| Model {
                id: id.to_string(),
                provider: "p".into(),
                input_cost_per_mtok: 1.0,
                output_cost_per_mtok: 1.0,
                context_window: 1000,
                tags: vec![],
                health: crate::policy::input::unmeasured(),
            })
            .collect()
    }

    fn route(models: &[&str], reason: &str) -> Decision {
        Decision::Route(Route {
            targets: models
                .iter()
                .map(|m| Target {
                    model: m.to_string(),
                    timeout_ms: Some(500),
                    max_output_tokens: None,
                })
                .collect(),
            reason: reason.into(),
        })
    }

    #[test]
    fn accepts_a_route_over_catalog_models() {
        let v = validate(route(&["b", "a"], "ok"), &catalog()).unwrap();
        let Verdict::Route { targets, reason } = v else {
            panic!()
        };
        assert_eq!(
            targets.iter().map(|t| t.model.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(targets[0].timeout, Some(Duration::from_millis(500)));
        assert_eq!(reason, "ok");
    }

    #[test]
    fn refuses_nonsense() {
        let c = catalog();
        assert_eq!(
            validate(route(&[], "x"), &c).unwrap_err(),
            "route has no targets"
        );
        assert!(
            validate(route(&["a", "zzz"], "x"), &c)
                .unwrap_err()
                .contains("`zzz` is not in the catalog")
        );
        assert!(
            validate(route(&["a"; 9], "x"), &c)
                .unwrap_err()
                .contains("9 targets")
        );
        assert!(
            validate(route(&["a"], &"r".repeat(300)), &c)
                .unwrap_err()
                .contains("reason is 300 bytes")
        );
        assert!(
            validate(route(&["a"], "ok\nfake log line"), &c)
                .unwrap_err()
                .contains("control characters")
        );
        let reject = |status| {
            Decision::Reject(Rejection {
                status,
                message: "no".into(),
            })
        };
        assert!(
            validate(reject(200), &c)
                .unwrap_err()
                .contains("200 is not 400-599")
        );
        assert_eq!(
            validate(reject(429), &c).unwrap(),
            Verdict::Reject {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "no".into()
            }
        );
    }
}
