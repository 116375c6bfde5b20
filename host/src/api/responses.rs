//! An OpenAI Responses API request (`POST /v1/responses`), read into the same compact view as a
//! chat request. `instructions` is the first message (a system prompt); `input` is a string (one
//! user message) or a list of items, each summarised as a message: a `message` item by its role
//! and content parts (`input_text`, `input_image`, `output_text`, ...), a `function_call` as an
//! assistant tool call, a `function_call_output` as a tool result whose `output` a policy may
//! read, a `reasoning` item as an assistant turn without text, any other item (built-in tool
//! calls, references) as a tool step without text. `max_output_tokens` is the output cap;
//! `previous_response_id` and `store` are kept for the conversation store. Every other field is
//! kept as bytes, for a native provider or for `translate`. Pure functions over the body's bytes.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::raw::{Param, Ranges, TextAt, content, must_be, optional, value};
use super::{ApiError, ClientRequest, MessageInfo, Role};

/// The turns of a conversation before this request, rebuilt from the response it continues
/// (`previous_response_id`): a JSON array of Responses items, the earlier inputs and outputs in
/// order.
#[derive(Debug, Clone)]
pub struct History {
    pub items: Bytes,
}

/// What the proxy must know of a Responses request beyond the common view.
#[derive(Debug, Clone, Default)]
pub struct ResponsesFields {
    /// The response this one continues.
    pub previous_response_id: Option<String>,
    /// Whether the response may be kept for later (`store`, true unless the client says false).
    pub store: bool,
    /// The earlier turns, when the response it continues was made by translation.
    pub history: Option<History>,
}

impl ClientRequest {
    /// Continue the conversation `history`: its items count in the view as messages before this
    /// request's input (after `instructions`), by role and size; their text stays unread.
    pub fn continue_from(&mut self, history: History) {
        let items: Vec<&RawValue> = serde_json::from_slice(&history.items).unwrap_or_default();
        let at = usize::from(self.field("instructions").is_some_and(|v| v != b"null"));
        let earlier: Vec<MessageInfo> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let wire: ItemWire<'_> = serde_json::from_str(item.get()).ok()?;
                summarise(&wire, Param::at("history", i))
                    .ok()
                    .map(|(info, _)| info)
            })
            .collect();
        let count = earlier.len();
        self.messages.splice(at..at, earlier);
        self.texts
            .splice(at..at, std::iter::repeat_n(TextAt::NoText, count));
        self.responses.history = Some(history);
    }
}

/// One input item, its fields borrowed.
#[derive(Deserialize)]
struct ItemWire<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    output: Option<&'a RawValue>,
}

/// Read one top-level field of a Responses request; the rest are kept as bytes, unread.
pub(super) fn field(
    request: &mut ClientRequest,
    key: &str,
    raw: &RawValue,
    ranges: &Ranges,
) -> Result<(), ApiError> {
    match key {
        "input" => input(request, raw, ranges)?,
        "instructions" => {
            if let Some(text) = optional::<Cow<'_, str>>(raw, key, "a string")? {
                request.messages.insert(0, system(&text));
                request.texts.insert(0, TextAt::Content(ranges.of(raw)));
            }
        }
        "max_output_tokens" => request.max_tokens = optional(raw, key, "a positive integer")?,
        "previous_response_id" => {
            request.responses.previous_response_id = optional(raw, key, "a string")?;
        }
        "store" => request.responses.store = optional(raw, key, "a boolean")?.unwrap_or(true),
        _ => {}
    }
    Ok(())
}

fn system(text: &str) -> MessageInfo {
    MessageInfo {
        role: Role::System,
        chars: chars(text),
        has_image: false,
        has_tool_call: false,
    }
}

fn chars(text: &str) -> u32 {
    u32::try_from(text.chars().count()).unwrap_or(u32::MAX)
}

/// Summarise `input`: a string is one user message, a list one message per item.
fn input(request: &mut ClientRequest, raw: &RawValue, ranges: &Ranges) -> Result<(), ApiError> {
    const EXPECTED: &str = "a string or an array of input items";
    if raw.get().starts_with('"') {
        let text: Cow<'_, str> = value(raw, "input", EXPECTED)?;
        request.messages.push(MessageInfo {
            role: Role::User,
            ..system(&text)
        });
        request.texts.push(TextAt::Content(ranges.of(raw)));
        return Ok(());
    }
    let items: Vec<&RawValue> = value(raw, "input", EXPECTED)?;
    for (i, item) in items.into_iter().enumerate() {
        let param = Param::at("input", i);
        let wire: ItemWire<'_> = value(item, param, "an input item object")?;
        let (info, text) = summarise(&wire, param)?;
        request.messages.push(info);
        request.texts.push(match text {
            Text::Message => TextAt::Message(ranges.of(item)),
            Text::Output(output) => TextAt::Content(ranges.of(output)),
            Text::None => TextAt::NoText,
        });
    }
    Ok(())
}

/// Where an item's text is.
enum Text<'a> {
    /// In its `content`.
    Message,
    /// In its `output` (a tool result).
    Output(&'a RawValue),
    None,
}

/// One input item as a message summary.
fn summarise<'a>(
    item: &ItemWire<'a>,
    param: Param<'_>,
) -> Result<(MessageInfo, Text<'a>), ApiError> {
    let step = |role, chars| MessageInfo {
        role,
        chars,
        has_image: false,
        has_tool_call: true,
    };
    Ok(match item.kind.as_deref() {
        None | Some("message") => {
            let role = match item.role.as_deref() {
                Some("user") => Role::User,
                Some("system") => Role::System,
                Some("developer") => Role::Developer,
                Some("assistant") => Role::Assistant,
                _ => {
                    return Err(must_be(
                        param.field("role"),
                        "one of user, system, developer or assistant",
                    ));
                }
            };
            let content = content(item.content, param.field("content"))?;
            let info = MessageInfo {
                role,
                chars: content.chars(),
                has_image: content.has_image,
                has_tool_call: false,
            };
            (info, Text::Message)
        }
        Some("function_call") => {
            let arguments = item.arguments.as_deref().unwrap_or_default();
            (step(Role::Assistant, chars(arguments)), Text::None)
        }
        Some("function_call_output") => {
            let output = content(item.output, param.field("output"))?;
            let text = item.output.map_or(Text::None, Text::Output);
            (step(Role::Tool, output.chars()), text)
        }
        Some("reasoning") => (
            MessageInfo {
                has_tool_call: false,
                ..step(Role::Assistant, 0)
            },
            Text::None,
        ),
        Some(_) => (step(Role::Tool, 0), Text::None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Wire;

    fn parse(json: &str) -> Result<ClientRequest, ApiError> {
        ClientRequest::parse_responses(Bytes::copy_from_slice(json.as_bytes()))
    }

    #[test]
    fn a_string_input_is_one_user_message_after_the_instructions() {
        let r = parse(
            r#"{"model":"auto","input":"h\u00e9llo","instructions":"Be brief.","max_output_tokens":64,
                "stream":true,"metadata":{"task":"code"},"previous_response_id":"resp_1","store":false}"#,
        )
        .unwrap();
        assert_eq!(r.api, Wire::Responses);
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User]);
        assert_eq!(r.messages[1].chars, 5);
        assert_eq!(r.message_text(0, 100).unwrap(), "Be brief.");
        assert_eq!(r.message_text(1, 100).unwrap(), "héllo");
        assert_eq!((r.max_tokens, r.stream), (Some(64), true));
        assert_eq!(r.metadata, [("task".to_string(), "code".to_string())]);
        assert_eq!(r.responses.previous_response_id.as_deref(), Some("resp_1"));
        assert!(!r.responses.store);
    }

    #[test]
    fn items_are_summarised_by_kind() {
        let r = parse(
            r#"{"model":"m","tools":[{"type":"function","name":"f"}],"input":[
                {"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","image_url":"data:x"}]},
                {"type":"reasoning","id":"rs_1","summary":[]},
                {"type":"function_call","call_id":"c1","name":"f","arguments":"{\"a\":1}"},
                {"type":"function_call_output","call_id":"c1","output":"sunny"},
                {"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok"}]},
                {"type":"web_search_call","id":"ws_1"}
            ]}"#,
        )
        .unwrap();
        assert!(r.has_tools && r.has_images() && r.responses.store);
        let seen: Vec<(Role, u32, bool)> = r
            .messages
            .iter()
            .map(|m| (m.role, m.chars, m.has_tool_call))
            .collect();
        assert_eq!(
            seen,
            [
                (Role::User, 4, false),
                (Role::Assistant, 0, false),
                (Role::Assistant, 7, true),
                (Role::Tool, 5, true),
                (Role::Assistant, 2, false),
                (Role::Tool, 0, true),
            ]
        );
        assert_eq!(r.message_text(0, 100).unwrap(), "look");
        assert_eq!(r.message_text(2, 100), None);
        assert_eq!(r.message_text(3, 100).unwrap(), "sunny");
    }

    #[test]
    fn earlier_turns_count_after_the_instructions() {
        let mut r = parse(r#"{"input":"and now?","instructions":"Be brief."}"#).unwrap();
        r.continue_from(History {
            items: Bytes::from_static(
                br#"[{"role":"user","content":"hello there"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hi"}]}]"#,
            ),
        });
        let seen: Vec<(Role, u32)> = r.messages.iter().map(|m| (m.role, m.chars)).collect();
        assert_eq!(
            seen,
            [
                (Role::System, 9),
                (Role::User, 11),
                (Role::Assistant, 2),
                (Role::User, 8)
            ]
        );
        assert_eq!(r.message_text(0, 100).unwrap(), "Be brief.");
        assert_eq!(r.message_text(1, 100), None, "earlier text stays unread");
        assert_eq!(r.message_text(3, 100).unwrap(), "and now?");
        assert!(r.responses.history.is_some());
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases = [
            (r#"{"model":"m"}"#, "input"),
            (r#"{"input":7}"#, "input"),
            (r#"{"input":[1]}"#, "input[0]"),
            (
                r#"{"input":[{"role":"wizard","content":"x"}]}"#,
                "input[0].role",
            ),
            (
                r#"{"input":[{"role":"user","content":7}]}"#,
                "input[0].content",
            ),
            (
                r#"{"input":"x","max_output_tokens":-1}"#,
                "max_output_tokens",
            ),
            (
                r#"{"input":"x","previous_response_id":7}"#,
                "previous_response_id",
            ),
            (r#"{"input":"x","instructions":[]}"#, "instructions"),
        ];
        for (body, param) in cases {
            let e = parse(body).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }
}
