//! Client-facing wire formats: what a client sends and how errors look to it.
//!
//! This layer turns request bytes into a compact view ([`ChatRequest`]) that the policy and
//! upstream layers read, without copying prompt text, and shapes every client-visible error
//! ([`ApiError`]). It touches nothing but the bytes it is given.

mod error;
pub mod openai;

pub use error::ApiError;
pub use openai::{ChatRequest, MessageInfo, Role};
