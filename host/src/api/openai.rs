//! The fields of an OpenAI chat-completions request (`POST /v1/chat/completions`) that are
//! OpenAI's own: its message shape and roles, `stream_options`, the two output-cap fields, and
//! the legacy `functions`. Called by [`ClientRequest::parse`](super::ClientRequest::parse); reads the
//! raw values it is given and fills the request's view.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::raw::{Param, Ranges, content, declares_any, must_be, optional, value};
use super::{ApiError, ClientRequest, MessageInfo, Role};

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

fn role(name: Option<&str>, param: Param<'_>) -> Result<Role, ApiError> {
    Ok(match name {
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some("function") => Role::Function,
        _ => {
            return Err(must_be(
                param.field("role"),
                "one of system, developer, user, assistant or tool",
            ));
        }
    })
}

/// Read one top-level field that only OpenAI's API has; others are kept as bytes, unread.
pub(super) fn field(
    request: &mut ClientRequest,
    key: &str,
    raw: &RawValue,
) -> Result<(), ApiError> {
    match key {
        "stream_options" => {
            #[derive(Deserialize)]
            struct StreamOptions {
                #[serde(default)]
                include_usage: Option<bool>,
            }
            let options: Option<StreamOptions> = optional(raw, "stream_options", "an object")?;
            request.stream_usage = options.map(|o| o.include_usage.unwrap_or(false));
        }
        "max_tokens" | "max_completion_tokens" => {
            if let Some(n) = optional::<u32>(raw, key, "a non-negative integer")? {
                request.max_tokens = Some(request.max_tokens.map_or(n, |m| m.min(n)));
            }
        }
        // Legacy tools; `tools` itself is read for both APIs.
        "functions" => request.has_tools |= declares_any(raw, key)?,
        _ => {}
    }
    Ok(())
}

/// Summarise the `messages` array.
pub(super) fn messages(
    request: &mut ClientRequest,
    list: &[&RawValue],
    ranges: &Ranges,
) -> Result<(), ApiError> {
    for (i, raw) in list.iter().enumerate() {
        let param = Param::at("messages", i);
        let wire: MessageWire<'_> = value(raw, param, "a message object")?;
        let role = role(wire.role.as_deref(), param)?;
        let text_at = ranges.message_text(raw, wire.content);
        let content = content(wire.content, param.field("content"))?;
        request.messages.push(MessageInfo {
            role,
            chars: content.chars(),
            has_image: content.has_image,
            has_tool_call: matches!(role, Role::Tool | Role::Function)
                || wire.tool_calls.is_some_and(|c| !c.is_empty())
                || wire.function_call.is_some(),
        });
        request.texts.push(text_at);
    }
    Ok(())
}
