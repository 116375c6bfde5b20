//! Teams: who a client is (virtual API keys), which policy routes its requests, which models it
//! may use, and what a policy failure means for it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use super::{Invalid, OnStateError};

/// What a team's requests get when its policy fails (trap, deadline, memory cap, error result or
/// invalid decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// The team's static `fallback` route.
    #[default]
    Fallback,
    /// The model the client asked for, if the team may use it; otherwise the `fallback` route
    /// when one is configured, else a 503.
    Requested,
    /// A 503 saying that the routing policy failed, without internals.
    Reject,
}

/// What a team's requests get once its budget for the window is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverBudget {
    /// A 429 (`budget_exceeded`) with `Retry-After` set to the end of the window.
    #[default]
    Refuse,
    /// The budget's `downgrade` route instead of the policy's decision. The policy does not
    /// run for such requests, so nothing it would reject is rejected.
    Downgrade,
}

/// A team's spending limit, counted at the catalog's prices from the usage every answer reports
/// (streams included, counted when they end).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// US dollars the team may spend per window.
    pub usd: f64,
    /// Length of a window, such as `1h`, `1d` or `30d`. Windows are aligned to the Unix epoch, so
    /// a `1d` window runs from 00:00 to 24:00 UTC; spending starts again from zero in each.
    #[serde(default = "default_window")]
    pub window: String,
    /// What requests get once the window's spending reaches `usd`.
    #[serde(default)]
    pub over: OverBudget,
    /// With `over = "downgrade"`: the models (the team may use) tried in order instead of the
    /// policy's route.
    #[serde(default)]
    pub downgrade: Vec<String>,
}

fn default_window() -> String {
    "1d".into()
}

impl BudgetConfig {
    /// Longest window: a year.
    const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

    /// The window's length, once `validate` has accepted it.
    pub fn window(&self) -> Result<Duration, String> {
        let window = humantime::parse_duration(&self.window)
            .map_err(|e| format!("`{}` is not a duration such as 1h or 1d ({e})", self.window))?;
        if window < Duration::from_secs(1) || window > Self::MAX_WINDOW {
            return Err("must be between 1s and 366d".into());
        }
        if window.subsec_nanos() != 0 {
            return Err("must be a whole number of seconds".into());
        }
        Ok(window)
    }
}

/// A team's rate limits; a request over one gets 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests admitted per minute (in bursts of up to a minute's worth).
    pub requests_per_minute: Option<u32>,
    /// Tokens (prompt and output, as answers report them) per minute. A request is charged its
    /// estimated prompt when admitted and the rest when its usage is known, so a team can
    /// overshoot by one request and then waits it off.
    pub tokens_per_minute: Option<u32>,
}

/// One team: its keys, its policy and the models it may use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The team's name, shown to its policy and in logs.
    pub name: String,
    /// Name of the policy (from `policies`) that routes the team's requests.
    pub policy: String,
    /// The models the team may use; its policy sees only these, and a decision naming any other
    /// is a policy failure. Default: the whole catalog.
    pub models: Option<Vec<String>>,
    /// Models tried in order when the policy fails (`on_failure = "fallback"`, and
    /// `"requested"` when the client asked for a model the team may not use).
    #[serde(default)]
    pub fallback: Vec<String>,
    /// What a policy failure means for this team's requests.
    #[serde(default)]
    pub on_failure: FailureMode,
    /// A spending limit per window; none means no limit.
    pub budget: Option<BudgetConfig>,
    /// Request and token rates; none means no limit.
    pub rate_limit: Option<RateLimitConfig>,
    /// With `[state]`: what the team's requests get while Redis cannot be reached (`closed`,
    /// `open` or `local`, the default).
    #[serde(default)]
    pub on_state_error: OnStateError,
    /// Virtual API keys of the team, as clients send them (`Authorization: Bearer KEY` or
    /// `x-api-key: KEY`). Prefer `key_sha256`, which keeps secrets out of the file.
    #[serde(default)]
    pub keys: Vec<String>,
    /// SHA-256 digests of the team's keys, as 64 hex digits (`printf %s KEY | sha256sum`).
    #[serde(default)]
    pub key_sha256: Vec<String>,
}

/// Client authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// A team that serves requests carrying no key at all. Unset (the default), such requests
    /// get 401. A request with a key that matches no team gets 401 either way.
    pub anonymous_team: Option<String>,
}

/// Parse a key digest written as 64 hex digits.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Check teams against the policies and models that exist.
pub(super) fn validate_teams(
    teams: &[TeamConfig],
    auth: &AuthConfig,
    policies: &HashSet<&str>,
    models: &HashSet<&str>,
) -> Result<(), Invalid> {
    if teams.is_empty() {
        return Err(Invalid::new("teams", "at least one team is needed"));
    }
    let mut names = HashSet::new();
    // Which team each key (as a digest or a plain key) belongs to, to refuse a key shared by two.
    let mut keys: HashMap<String, &str> = HashMap::new();
    for (index, team) in teams.iter().enumerate() {
        let check = TeamCheck {
            index,
            team,
            models,
        };
        if team.name.trim().is_empty() {
            return Err(Invalid::new(check.field("name"), "must not be empty"));
        }
        if !names.insert(team.name.as_str()) {
            return Err(Invalid::new(
                check.field("name"),
                format!("duplicate team `{}`", team.name),
            ));
        }
        check.policy_and_routes(policies)?;
        check.claim_keys(&mut keys)?;
    }
    if let Some(team) = &auth.anonymous_team
        && !names.contains(team.as_str())
    {
        return Err(Invalid::new(
            "auth.anonymous_team",
            format!("no team named `{team}`"),
        ));
    }
    Ok(())
}

/// The checks of one team, the `index`th, against the catalog's `models`.
struct TeamCheck<'a> {
    index: usize,
    team: &'a TeamConfig,
    models: &'a HashSet<&'a str>,
}

impl<'a> TeamCheck<'a> {
    /// The config's name for the team's field `name`.
    fn field(&self, name: &str) -> String {
        format!("teams[{}].{name}", self.index)
    }

    /// Its policy, models, fallback, rate limit and budget.
    fn policy_and_routes(&self, policies: &HashSet<&str>) -> Result<(), Invalid> {
        let team = self.team;
        if !policies.contains(team.policy.as_str()) {
            return Err(Invalid::new(
                self.field("policy"),
                format!("no policy named `{}`", team.policy),
            ));
        }
        if let Some(allowed) = &team.models {
            if allowed.is_empty() {
                return Err(Invalid::new(
                    self.field("models"),
                    "must allow at least one model (leave it out to allow the whole catalog)",
                ));
            }
            for (j, id) in allowed.iter().enumerate() {
                if !self.models.contains(id.as_str()) {
                    return Err(Invalid::new(
                        self.field(&format!("models[{j}]")),
                        format!("no model `{id}` in the catalog"),
                    ));
                }
            }
        }
        self.route("fallback", &team.fallback)?;
        if let Some(rate) = &team.rate_limit {
            for (name, value) in [
                ("requests_per_minute", rate.requests_per_minute),
                ("tokens_per_minute", rate.tokens_per_minute),
            ] {
                if value == Some(0) {
                    return Err(Invalid::new(
                        self.field(&format!("rate_limit.{name}")),
                        "must be greater than 0 (leave it out for no limit)",
                    ));
                }
            }
        }
        if let Some(budget) = &team.budget {
            self.budget(budget)?;
        }
        if team.on_failure == FailureMode::Fallback && team.fallback.is_empty() {
            return Err(Invalid::new(
                self.field("fallback"),
                "needs at least one model when on_failure is \"fallback\" (the default)",
            ));
        }
        Ok(())
    }

    /// Every model of the route `name` is one the team may use: in its `models`, or in the
    /// catalog when it has none.
    fn route(&self, name: &str, ids: &[String]) -> Result<(), Invalid> {
        for (j, id) in ids.iter().enumerate() {
            let allowed = match &self.team.models {
                Some(list) => list.iter().any(|m| m == id),
                None => self.models.contains(id.as_str()),
            };
            if !allowed {
                let message = if self.models.contains(id.as_str()) {
                    format!("model `{id}` is not in the team's `models`")
                } else {
                    format!("no model `{id}` in the catalog")
                };
                return Err(Invalid::new(self.field(&format!("{name}[{j}]")), message));
            }
        }
        Ok(())
    }

    /// A positive amount, a window, and a downgrade route the team may use, given exactly when
    /// going over the budget means downgrading.
    fn budget(&self, budget: &BudgetConfig) -> Result<(), Invalid> {
        if !budget.usd.is_finite() || budget.usd <= 0.0 {
            return Err(Invalid::new(
                self.field("budget.usd"),
                "must be a finite number of dollars greater than 0",
            ));
        }
        budget
            .window()
            .map_err(|e| Invalid::new(self.field("budget.window"), e))?;
        self.route("budget.downgrade", &budget.downgrade)?;
        match (budget.over, budget.downgrade.is_empty()) {
            (OverBudget::Downgrade, true) => Err(Invalid::new(
                self.field("budget.downgrade"),
                "needs at least one model when over is \"downgrade\"",
            )),
            (OverBudget::Refuse, false) => Err(Invalid::new(
                self.field("budget.downgrade"),
                "is only used when over is \"downgrade\"",
            )),
            _ => Ok(()),
        }
    }

    /// Record the team's keys (plain ones by their digests, and those given as digests) in
    /// `keys`, refusing one that is malformed or already belongs to another team.
    fn claim_keys(&self, keys: &mut HashMap<String, &'a str>) -> Result<(), Invalid> {
        let team = self.team;
        for (j, key) in team.keys.iter().enumerate() {
            if key.len() < 8 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Invalid::new(
                    self.field(&format!("keys[{j}]")),
                    "must be at least 8 characters without spaces",
                ));
            }
            let digest = super::hex(&sha256(key.as_bytes()));
            if let Some(other) = keys.insert(digest, &team.name) {
                return Err(Invalid::new(
                    self.field(&format!("keys[{j}]")),
                    format!("this key already belongs to team `{other}`"),
                ));
            }
        }
        for (j, hex) in team.key_sha256.iter().enumerate() {
            let Some(digest) = parse_digest(&hex.to_ascii_lowercase()) else {
                return Err(Invalid::new(
                    self.field(&format!("key_sha256[{j}]")),
                    "must be 64 hex digits (a SHA-256 digest)",
                ));
            };
            if let Some(other) = keys.insert(super::hex(&digest), &team.name) {
                return Err(Invalid::new(
                    self.field(&format!("key_sha256[{j}]")),
                    format!("this key already belongs to team `{other}`"),
                ));
            }
        }
        Ok(())
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
