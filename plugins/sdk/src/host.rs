//! The host functions a policy may call, and who answers them: the proxy when the policy runs as
//! a component (`wasm32`), the thread's mock host from [`crate::testing`] on any other target.

#[cfg(not(target_arch = "wasm32"))]
use crate::testing::answers as imp;
use crate::{Budget, Operation};

/// The calls to the proxy, through the contract's imports and `wasi:random`.
#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings::switchyard::policy::host;
    use crate::{Budget, Operation};

    pub fn message_text(index: u32, max_chars: u32) -> Option<String> {
        host::message_text(index, max_chars)
    }

    pub fn team_budget() -> Option<Budget> {
        host::team_budget()
    }

    pub fn first_token_ms(model: &str) -> Option<f32> {
        host::first_token_ms(model)
    }

    pub fn random_u64() -> Result<u64, String> {
        getrandom::u64().map_err(|e| format!("wasi:random failed: {e}"))
    }

    pub fn operation() -> Operation {
        host::request_operation()
    }

    /// The host refuses a call that passes it more than this (and fails the decision).
    const MAX_LOG_BYTES: usize = 4096;

    pub fn log(level: host::LogLevel, message: &str) {
        let cut = message.floor_char_boundary(MAX_LOG_BYTES);
        host::log(level, &message[..cut]);
    }
}

/// Up to `max_chars` characters of message `index`; see [`crate::RequestExt::message_text`].
pub(crate) fn message_text(index: u32, max_chars: u32) -> Option<String> {
    imp::message_text(index, max_chars)
}

/// Where the request's team stands against its budget; `None` when the team has no budget.
/// Once the budget is spent the host refuses or downgrades the team's requests itself, so a
/// policy uses this to downgrade earlier, e.g. when [`Budget::remaining_share`] runs low.
pub fn team_budget() -> Option<Budget> {
    imp::team_budget()
}

/// The host's estimate of the time to the first event of a stream from catalog model `model`,
/// in milliseconds; `None` until a stream from it has been measured.
pub fn first_token_ms(model: &str) -> Option<f32> {
    imp::first_token_ms(model)
}

/// What the request asks for, and in which client API: a chat completion, an Anthropic
/// message, a response (OpenAI's Responses API) or embeddings. For embeddings the catalog holds
/// embedding models only, and each input is a user message.
pub fn operation() -> Operation {
    imp::operation()
}

/// A random number from `wasi:random`. The host seeds it from the request id (unless configured
/// otherwise), so replaying a request replays the decision.
pub fn random_u64() -> Result<u64, String> {
    imp::random_u64()
}

/// Log lines that the proxy tags with the policy and request id. The proxy keeps the first
/// 1024 bytes of a line and 32 lines a decision; a line is cut to 4096 bytes before it is sent,
/// as the host fails a decision that passes it more in one call.
pub mod log {
    pub use crate::bindings::switchyard::policy::host::LogLevel as Level;

    use super::imp;

    pub fn debug(message: &str) {
        imp::log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        imp::log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        imp::log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        imp::log(Level::Error, message);
    }
}
