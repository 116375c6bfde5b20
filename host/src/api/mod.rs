//! Client-facing wire formats: what a client sends and how errors look to it.
//!
//! This layer turns request bytes of any client API (OpenAI chat completions, Anthropic
//! Messages, OpenAI's Responses API and embeddings) into one compact view ([`ClientRequest`])
//! that the policy and upstream layers read, without copying prompt text; translates requests,
//! answers and stream events between the formats (`translate`); and shapes
//! every client-visible error ([`ApiError`]) in the client's own format. It touches nothing but
//! the bytes it is given.

mod anthropic;
mod embeddings;
mod error;
mod openai;
mod raw;
mod request;
mod responses;
pub mod translate;

pub use error::ApiError;
pub use request::{ClientRequest, MessageInfo, Operation, Role};
pub use responses::{History, ResponsesFields};
pub use translate::Wire;
