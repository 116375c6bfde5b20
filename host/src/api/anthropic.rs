//! The fields of an Anthropic Messages request (`POST /v1/messages`) that are Anthropic's own:
//! the top-level `system` prompt (which the view counts as the first message), messages of
//! content blocks with `user` and `assistant` roles, and the required `max_tokens`.
//! Called by [`ClientRequest::parse`](super::ClientRequest::parse); reads the raw values it is given
//! and fills the request's view.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::raw::{Param, Ranges, TextAt, content, must_be, optional, value};
use super::{ApiError, ClientRequest, MessageInfo, Role};

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// Read one top-level field that only Anthropic's API has; others are kept as bytes, unread.
pub(super) fn field(
    request: &mut ClientRequest,
    key: &str,
    raw: &RawValue,
) -> Result<(), ApiError> {
    if key == "max_tokens" {
        request.max_tokens = optional(raw, key, "a non-negative integer")?;
    }
    Ok(())
}

/// Summarise `system` and the `messages` array.
pub(super) fn messages(
    request: &mut ClientRequest,
    system: Option<&RawValue>,
    list: &[&RawValue],
    ranges: &Ranges,
) -> Result<(), ApiError> {
    if let Some(raw) = system.filter(|raw| raw.get() != "null") {
        let content = content(Some(raw), "system")?;
        request.messages.push(MessageInfo {
            role: Role::System,
            chars: content.chars(),
            has_image: false,
            has_tool_call: false,
        });
        request.texts.push(TextAt::Content(ranges.of(raw)));
    }
    for (i, raw) in list.iter().enumerate() {
        let param = Param::at("messages", i);
        let wire: MessageWire<'_> = value(raw, param, "a message object")?;
        let role = match wire.role.as_deref() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => return Err(must_be(param.field("role"), "user or assistant")),
        };
        let text_at = ranges.message_text(raw, wire.content);
        let content = content(wire.content, param.field("content"))?;
        request.messages.push(MessageInfo {
            role,
            chars: content.chars(),
            has_image: content.has_image,
            has_tool_call: content.has_tool_block,
        });
        request.texts.push(text_at);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::api::Wire;

    fn parse(json: &str) -> Result<ClientRequest, ApiError> {
        ClientRequest::parse(Wire::Anthropic, Bytes::copy_from_slice(json.as_bytes()))
    }

    #[test]
    fn the_system_prompt_is_the_first_message() {
        let r = parse(
            r#"{"model":"claude","max_tokens":300,"stream":true,"metadata":{"user_id":"u1"},
                "system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Be kind."}],
                "tools":[{"name":"f","input_schema":{"type":"object"}}],
                "messages":[
                  {"role":"user","content":[{"type":"text","text":"look"},{"type":"image","source":{"type":"url","url":"u"}}]},
                  {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},
                  {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"42"}]},
                  {"role":"user","content":"thanks"}
                ]}"#,
        )
        .unwrap();
        assert_eq!(r.api, Wire::Anthropic);
        assert_eq!(
            (r.max_tokens, r.stream, r.has_tools),
            (Some(300), true, true)
        );
        assert_eq!(r.metadata, [("user_id".to_string(), "u1".to_string())]);
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::User,
                Role::User
            ]
        );
        assert_eq!(r.messages[0].chars, 18);
        assert!(r.messages[1].has_image && !r.messages[1].has_tool_call);
        assert!(r.messages[2].has_tool_call && r.messages[3].has_tool_call);
        assert_eq!(r.message_text(0, 100).unwrap(), "Be brief.\nBe kind.");
        assert_eq!(r.message_text(1, 100).unwrap(), "look");
        assert_eq!(r.message_text(4, 3).unwrap(), "tha");
        assert!(!r.asks_stream_usage() && r.wants_stream_usage());
    }

    #[test]
    fn bad_bodies_name_the_field() {
        for (body, param) in [
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"max_tokens":5,"system":7,"messages":[{"role":"user","content":"x"}]}"#,
                "system",
            ),
            (r#"{"max_tokens":5,"messages":[]}"#, "messages"),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }

    #[test]
    fn same_api_upstreams_get_the_clients_bytes_with_the_model_and_cap_rewritten() {
        let json =
            r#"{"model":"claude","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}"#;
        let r = parse(json).unwrap();
        assert_eq!(
            r.body_for(Wire::Anthropic, "claude", None).unwrap(),
            json.as_bytes()
        );
        let out: serde_json::Value =
            serde_json::from_slice(&r.body_for(Wire::Anthropic, "haiku", Some(100)).unwrap())
                .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"model":"haiku","max_tokens":100,"messages":[{"role":"user","content":"hi"}]})
        );
    }
}
