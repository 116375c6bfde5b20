//! State shared by a fleet of replicas: where it lives, and how long a request waits for it.

use serde::Deserialize;

use super::Invalid;

/// Budgets and rate limits shared by every replica through Redis (`[state]`). Without this
/// table each replica keeps its own, in memory. Redis should persist what it is told
/// (`appendonly yes`), or a Redis restart forgets the window's spending. Restart to change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The Redis (or Valkey) server: `redis://[:PASSWORD@]HOST:PORT[/DB]`.
    pub redis_url: String,
    /// Prefix of every key the proxy writes; replicas sharing a prefix share their state.
    #[serde(default = "prefix")]
    pub prefix: String,
    /// Longest wait for one Redis call, in milliseconds; past it the team's `on_state_error`
    /// decides.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Failed calls in a row after which Redis is not asked for `breaker_cooldown_ms`.
    #[serde(default = "breaker_failures")]
    pub breaker_failures: u32,
    /// How long Redis is left alone after `breaker_failures` failed calls, in milliseconds.
    #[serde(default = "breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// How often a replica compares its policies with the versions deployed to the fleet
    /// (`switchyard policy deploy`), in milliseconds, besides learning of each deploy as it is
    /// made; also how soon a deploy the registry failed is tried again.
    #[serde(default = "rollout_check_ms")]
    pub rollout_check_ms: u64,
}

fn prefix() -> String {
    "switchyard".into()
}

fn timeout_ms() -> u64 {
    25
}

fn breaker_failures() -> u32 {
    3
}

fn breaker_cooldown_ms() -> u64 {
    1000
}

fn rollout_check_ms() -> u64 {
    10_000
}

/// What a team's requests get while the shared state cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnStateError {
    /// A 503 with `Retry-After`: nothing is served that the limits could not be checked for.
    Closed,
    /// Served without limits; the usage is settled once Redis is back.
    Open,
    /// Served under this replica's share of the limits: each limit divided by the number of
    /// live replicas (as last seen in Redis); the usage is settled once Redis is back.
    #[default]
    Local,
}

impl StateConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        match reqwest::Url::parse(&self.redis_url) {
            Ok(url) if url.scheme() == "redis" => {}
            Ok(_) => return Err(Invalid::new("state.redis_url", "must be a redis:// URL")),
            Err(e) => {
                return Err(Invalid::new(
                    "state.redis_url",
                    format!("is not a URL: {e}"),
                ));
            }
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(Invalid::new(
                "state.prefix",
                "must be a non-empty name without braces",
            ));
        }
        let zero = [
            ("state.timeout_ms", self.timeout_ms),
            ("state.breaker_failures", u64::from(self.breaker_failures)),
            ("state.breaker_cooldown_ms", self.breaker_cooldown_ms),
            ("state.rollout_check_ms", self.rollout_check_ms),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0);
        if let Some((field, _)) = zero {
            return Err(Invalid::new(field, "must be greater than 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(url: &str) -> StateConfig {
        StateConfig {
            redis_url: url.into(),
            prefix: prefix(),
            timeout_ms: timeout_ms(),
            breaker_failures: breaker_failures(),
            breaker_cooldown_ms: breaker_cooldown_ms(),
            rollout_check_ms: rollout_check_ms(),
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert!(state("redis://127.0.0.1:6379/").validate().is_ok());
        let field = |config: StateConfig| config.validate().unwrap_err().field;
        assert_eq!(field(state("http://x")), "state.redis_url");
        assert_eq!(field(state("not a url")), "state.redis_url");
        let mut braces = state("redis://x/");
        braces.prefix = "a{b}".into();
        assert_eq!(field(braces), "state.prefix");
        let mut zero = state("redis://x/");
        zero.timeout_ms = 0;
        assert_eq!(field(zero), "state.timeout_ms");
        let mut zero = state("redis://x/");
        zero.breaker_failures = 0;
        assert_eq!(field(zero), "state.breaker_failures");
        let mut zero = state("redis://x/");
        zero.rollout_check_ms = 0;
        assert_eq!(field(zero), "state.rollout_check_ms");
    }
}
