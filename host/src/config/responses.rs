//! The conversation store of the Responses API: how long the proxy keeps the responses it
//! served and how much it keeps.

use serde::Deserialize;

use super::Invalid;

/// What the proxy keeps of Responses API responses, for follow-ups (`previous_response_id`) and
/// `GET /v1/responses/{id}`: a response made by translation whole (its input and output items,
/// which hold prompt text, in this process's memory), a response a provider made itself as the
/// provider to send its follow-ups to. A response asked for with `store: false` is not kept. A
/// reload applies new limits; a restart forgets every response.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// How long a response is kept, in seconds.
    #[serde(default = "ttl_secs")]
    pub ttl_secs: u64,
    /// Most memory the kept responses take together, in MiB; the oldest go first.
    #[serde(default = "max_mib")]
    pub max_mib: u32,
}

fn ttl_secs() -> u64 {
    3600
}

fn max_mib() -> u32 {
    64
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            ttl_secs: ttl_secs(),
            max_mib: max_mib(),
        }
    }
}

impl ResponsesConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.ttl_secs == 0 {
            return Err(Invalid::new("responses.ttl_secs", "must be at least 1"));
        }
        if self.max_mib == 0 {
            return Err(Invalid::new("responses.max_mib", "must be at least 1"));
        }
        Ok(())
    }
}
