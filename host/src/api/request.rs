//! A chat request in either client API: parsed once into a compact view, forwarded as bytes.
//!
//! [`ClientRequest::parse`] keeps the body as received and records, for every top-level field and
//! every message, the byte range of its JSON value; the fields each API names differently are
//! read by `openai` and `anthropic`. Message text is never copied: summaries (role, length, image
//! and tool flags) are computed from strings borrowed from the body, and
//! [`ClientRequest::message_text`] decodes one message on demand when a policy asks for it.
//! [`ClientRequest::upstream_body`] rewrites only the fields that change (the model name, an output
//! cap) and copies every other field's bytes verbatim; when nothing changes it returns the
//! client's body itself. A request for an upstream of the other API is translated whole
//! (`translate`), which is the one place that re-serialises a prompt.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::raw::{Ranges, TextAt, content, declares_any, optional, value};
use super::responses::ResponsesFields;
use super::translate::ResponseFrame;
use super::{ApiError, Wire, anthropic, embeddings, openai, responses, translate};

/// Author of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// The legacy name for a tool result.
    Function,
}

/// What a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A chat completion (OpenAI) or a message (Anthropic).
    Chat,
    /// Embeddings of its inputs (OpenAI).
    Embeddings,
}

/// What is known about a message without keeping its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInfo {
    pub role: Role,
    /// Characters of text content.
    pub chars: u32,
    pub has_image: bool,
    pub has_tool_call: bool,
}

#[derive(Debug)]
struct Field {
    key: String,
    value: Range<usize>,
}

/// A parsed request body: a chat request, or an embeddings request whose inputs are its
/// messages.
#[derive(Debug)]
pub struct ClientRequest {
    /// The API the client spoke.
    pub api: Wire,
    /// What it asks for.
    pub operation: Operation,
    pub(super) body: Bytes,
    fields: Vec<Field>,
    pub(super) texts: Vec<TextAt>,
    /// One entry per message, in order; a system prompt counts as a message.
    pub messages: Vec<MessageInfo>,
    /// The `model` the client asked for.
    pub model: Option<String>,
    pub stream: bool,
    /// OpenAI: `stream_options.include_usage` when the client sent `stream_options` (false if
    /// that object leaves it out); `None` without `stream_options`, and always for Anthropic.
    pub stream_usage: Option<bool>,
    /// The client's output cap: OpenAI's `max_completion_tokens` or `max_tokens` (the lower, if
    /// both are sent), Anthropic's `max_tokens`.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// The request declares tools (or legacy functions).
    pub has_tools: bool,
    /// String entries of the `metadata` object.
    pub metadata: Vec<(String, String)>,
    /// What a Responses API request says of its conversation (empty for the other APIs).
    pub responses: ResponsesFields,
}

/// Top-level object as (key, raw value) pairs in order, values borrowed from the body.
struct TopLevel<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(TopLevel(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// The body's top-level object, or a 400 saying what is wrong with it.
fn top_level(body: &[u8]) -> Result<TopLevel<'_>, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let detail = if e.is_syntax() || e.is_eof() {
            format!("the body is not valid JSON: {e}")
        } else {
            "the body must be a JSON object".to_string()
        };
        ApiError::invalid(None, detail)
    })
}

/// The string entries of a `metadata` object.
fn metadata(raw: &RawValue) -> Result<Vec<(String, String)>, ApiError> {
    let map: Option<serde_json::Map<String, serde_json::Value>> =
        optional(raw, "metadata", "an object")?;
    Ok(map
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect())
}

/// A message object's `content`, borrowed.
#[derive(Deserialize)]
struct ContentOf<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

impl ClientRequest {
    /// A request of `api` asking for `operation`, holding `body`, with nothing read yet.
    fn unread(api: Wire, operation: Operation, body: Bytes, fields: usize) -> Self {
        ClientRequest {
            api,
            operation,
            body,
            fields: Vec::with_capacity(fields),
            texts: Vec::new(),
            messages: Vec::new(),
            model: None,
            stream: false,
            stream_usage: None,
            max_tokens: None,
            temperature: None,
            has_tools: false,
            metadata: Vec::new(),
            responses: ResponsesFields {
                store: true,
                ..ResponsesFields::default()
            },
        }
    }

    /// Parse and check a chat request body of `api`; errors name the offending field.
    pub fn parse(api: Wire, body: Bytes) -> Result<ClientRequest, ApiError> {
        let request = Self::parse_chat(api, body)?;
        // Anthropic's API requires an output cap.
        if api == Wire::Anthropic && request.max_tokens.is_none() {
            return Err(ApiError::invalid(
                Some("max_tokens"),
                "`max_tokens` is required",
            ));
        }
        Ok(request)
    }

    /// Parse and check the body of an Anthropic token count (`POST /v1/messages/count_tokens`):
    /// a Messages request without an output cap.
    pub fn parse_count_tokens(body: Bytes) -> Result<ClientRequest, ApiError> {
        Self::parse_chat(Wire::Anthropic, body)
    }

    fn parse_chat(api: Wire, body: Bytes) -> Result<ClientRequest, ApiError> {
        let top = top_level(&body)?;
        let ranges = Ranges::within(&body);
        let mut request = ClientRequest::unread(api, Operation::Chat, body.clone(), top.0.len());
        // Anthropic's system prompt is a message, the first one, wherever the field appears.
        let mut system = None;
        let mut messages = Vec::new();
        for (key, raw) in top.0 {
            request.no_repeat(&key)?;
            match key.as_str() {
                _ if request.common_field(&key, raw)? => {}
                "messages" => messages = value(raw, "messages", "an array of messages")?,
                "tools" => request.has_tools |= declares_any(raw, "tools")?,
                "system" if api == Wire::Anthropic => system = Some(raw),
                _ if api == Wire::Anthropic => anthropic::field(&mut request, &key, raw)?,
                _ => openai::field(&mut request, &key, raw)?,
            }
            request.fields.push(Field {
                key,
                value: ranges.of(raw),
            });
        }
        if !request.fields.iter().any(|f| f.key == "messages") {
            return Err(ApiError::invalid(
                Some("messages"),
                "`messages` is required",
            ));
        }
        if messages.is_empty() {
            return Err(ApiError::invalid(
                Some("messages"),
                "`messages` must not be empty",
            ));
        }
        match api {
            Wire::Anthropic => anthropic::messages(&mut request, system, &messages, &ranges)?,
            _ => openai::messages(&mut request, &messages, &ranges)?,
        }
        Ok(request)
    }

    /// Parse and check a Responses API request body; errors name the offending field.
    pub fn parse_responses(body: Bytes) -> Result<ClientRequest, ApiError> {
        let top = top_level(&body)?;
        let ranges = Ranges::within(&body);
        let mut request =
            ClientRequest::unread(Wire::Responses, Operation::Chat, body.clone(), top.0.len());
        for (key, raw) in top.0 {
            request.no_repeat(&key)?;
            match key.as_str() {
                _ if request.common_field(&key, raw)? => {}
                "tools" => request.has_tools = declares_any(raw, "tools")?,
                _ => responses::field(&mut request, &key, raw, &ranges)?,
            }
            request.fields.push(Field {
                key,
                value: ranges.of(raw),
            });
        }
        if request.field("input").is_none() {
            return Err(ApiError::invalid(Some("input"), "`input` is required"));
        }
        Ok(request)
    }

    /// Parse and check an embeddings request body (OpenAI's); errors name the offending field.
    pub fn parse_embeddings(body: Bytes) -> Result<ClientRequest, ApiError> {
        let top = top_level(&body)?;
        let ranges = Ranges::within(&body);
        let mut request = ClientRequest::unread(
            Wire::Openai,
            Operation::Embeddings,
            body.clone(),
            top.0.len(),
        );
        for (key, raw) in top.0 {
            request.no_repeat(&key)?;
            match key.as_str() {
                "model" => request.model = optional(raw, "model", "a string")?,
                _ => embeddings::field(&mut request, &key, raw, &ranges)?,
            }
            request.fields.push(Field {
                key,
                value: ranges.of(raw),
            });
        }
        if request.messages.is_empty() {
            return Err(ApiError::invalid(Some("input"), "`input` is required"));
        }
        Ok(request)
    }

    /// Read `key` if it is a field every chat API names alike (`model`, `stream`,
    /// `temperature`, `metadata`); false when it is not one.
    fn common_field(&mut self, key: &str, raw: &RawValue) -> Result<bool, ApiError> {
        match key {
            "model" => self.model = optional(raw, "model", "a string")?,
            "stream" => self.stream = optional(raw, "stream", "a boolean")?.unwrap_or(false),
            "temperature" => self.temperature = optional(raw, "temperature", "a number")?,
            "metadata" => self.metadata = metadata(raw)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A 400 when `key` was read already: a field may appear once.
    fn no_repeat(&self, key: &str) -> Result<(), ApiError> {
        if self.fields.iter().any(|f| f.key == key) {
            return Err(ApiError::invalid(
                Some(key),
                format!("`{key}` appears more than once"),
            ));
        }
        Ok(())
    }

    /// Estimated prompt tokens: about four characters a token, plus a few per chat message.
    pub fn estimated_input_tokens(&self) -> u32 {
        let chars: u64 = self.messages.iter().map(|m| u64::from(m.chars)).sum();
        let per_message = match self.operation {
            Operation::Chat => 4,
            Operation::Embeddings => 0,
        };
        let tokens = chars.div_ceil(4) + per_message * self.messages.len() as u64;
        u32::try_from(tokens).unwrap_or(u32::MAX)
    }

    /// The raw JSON of the client's top-level field `key`, when it sent one.
    pub fn field(&self, key: &str) -> Option<&[u8]> {
        let field = self.fields.iter().find(|f| f.key == key)?;
        Some(&self.body[field.value.clone()])
    }

    /// Whether any message carries an image.
    pub fn has_images(&self) -> bool {
        self.messages.iter().any(|m| m.has_image)
    }

    /// The text of message `index`, parts joined by newlines, cut to `max_chars` characters.
    pub fn message_text(&self, index: usize, max_chars: usize) -> Option<String> {
        let (range, bare) = match self.texts.get(index)? {
            TextAt::Message(range) => (range.clone(), false),
            TextAt::Content(range) => (range.clone(), true),
            TextAt::NoText => return None,
        };
        let raw: &RawValue = serde_json::from_slice(&self.body[range]).ok()?;
        let value = if bare {
            Some(raw)
        } else {
            serde_json::from_str::<ContentOf<'_>>(raw.get())
                .ok()?
                .content
        };
        let pieces = content(value, "content").ok()?.pieces;
        let mut out = String::new();
        let mut left = max_chars;
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 && left > 0 {
                out.push('\n');
                left -= 1;
            }
            // A piece of no more bytes than characters left fits whole, uncounted.
            let end = if piece.len() <= left {
                piece.len()
            } else {
                piece
                    .char_indices()
                    .nth(left)
                    .map_or(piece.len(), |(at, _)| at)
            };
            out.push_str(&piece[..end]);
            left -= piece[..end].chars().count();
            if left == 0 {
                break;
            }
        }
        Some(out)
    }

    /// Whether the proxy asks an OpenAI-format upstream for the usage event at the end of the
    /// stream on its own account: a streamed OpenAI request whose client did not ask for it
    /// (said nothing, or said no). Usage is what budgets and costs are counted from, so it is
    /// always asked for; the event is kept from a client that did not want it. (Anthropic streams
    /// always report usage.)
    pub fn asks_stream_usage(&self) -> bool {
        self.api == Wire::Openai && self.stream && self.stream_usage != Some(true)
    }

    /// Whether the client wants the usage of a stream in what it receives: always for Anthropic,
    /// when `include_usage` was asked for OpenAI.
    pub fn wants_stream_usage(&self) -> bool {
        self.api == Wire::Anthropic || self.stream_usage == Some(true)
    }

    /// The output cap to send: the lower of the client's and `cap`.
    fn effective_cap(&self, cap: Option<u32>) -> Option<u32> {
        match (self.max_tokens, cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The body for an upstream speaking `wire`, naming `model`, with an optional lower output
    /// cap: the client's bytes rewritten ([`ClientRequest::upstream_body`]) for the client's own
    /// API, a translation for another one. A Responses request that continues a conversation the
    /// proxy keeps is rebuilt with its earlier turns, even for a Responses upstream. A request the
    /// other API cannot express is a 400.
    pub fn body_for(&self, wire: Wire, model: &str, cap: Option<u32>) -> Result<Bytes, ApiError> {
        let history = self.responses.history.as_ref();
        if wire == self.api && history.is_none() {
            return Ok(self.upstream_body(model, cap));
        }
        let cap = self.effective_cap(cap);
        let body = match (self.api, wire) {
            (Wire::Responses, _) => {
                translate::from_responses(&self.body, history, wire, model, cap)?
            }
            (_, Wire::Anthropic) => translate::openai_to_anthropic(&self.body, model, cap)?,
            (_, Wire::Openai | Wire::Responses) => {
                translate::anthropic_to_openai(&self.body, model, cap)?
            }
        };
        Ok(Bytes::from(body))
    }

    /// For a Responses request, the frame of the response its answer makes: a fresh id, the time
    /// now, and the request's settings that a response repeats.
    pub fn response_frame(&self) -> Option<ResponseFrame> {
        let now = crate::clock::unix_secs();
        (self.api == Wire::Responses).then(|| {
            let id = format!("resp_{}", uuid::Uuid::new_v4().simple());
            ResponseFrame::new(id, now, &self.body)
        })
    }

    /// The wire to speak to a provider whose chat API is `chat`, and which serves the Responses
    /// API itself when `native_responses`: the Responses API for a Responses request there, else
    /// its chat API.
    pub fn upstream_wire(&self, chat: Wire, native_responses: bool) -> Wire {
        if self.api == Wire::Responses && native_responses {
            Wire::Responses
        } else {
            chat
        }
    }

    /// The body to send upstream, in the client's API, for `model`, with an optional lower
    /// output cap. Fields other than `model` and the output cap keep the client's bytes exactly.
    /// A cap replaces the client's cap fields, or is added as `max_completion_tokens` (what
    /// OpenAI's reasoning models require; `max_output_tokens` in the Responses API) when the
    /// client sent none. A streamed request whose
    /// client did not ask for usage gets `"include_usage": true` in its `stream_options` (added,
    /// or set in the client's object), so that usage can be counted
    /// ([`ClientRequest::asks_stream_usage`]).
    pub fn upstream_body(&self, model: &str, max_tokens: Option<u32>) -> Bytes {
        let cap = max_tokens.filter(|m| self.max_tokens.is_none_or(|c| *m < c));
        let ask_usage = self.asks_stream_usage();
        if cap.is_none() && !ask_usage && self.model.as_deref() == Some(model) {
            return self.body.clone();
        }
        let mut out = BytesMut::with_capacity(self.body.len() + model.len() + 32);
        out.put_u8(b'{');
        let mut first = true;
        let mut put = |out: &mut BytesMut, key: &str, value: &[u8]| {
            if !first {
                out.put_u8(b',');
            }
            first = false;
            serde_json::to_writer(out.writer(), key).expect("writing to memory");
            out.put_u8(b':');
            out.put_slice(value);
        };
        let model_json = serde_json::to_vec(model).expect("strings serialise");
        let mut wrote_cap = false;
        let mut wrote_options = false;
        for field in &self.fields {
            match field.key.as_str() {
                "model" => continue,
                "stream_options" if ask_usage => {
                    let mut options: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(&self.body[field.value.clone()]).unwrap_or_default();
                    options.insert("include_usage".into(), true.into());
                    let value = serde_json::to_vec(&options).expect("a map serialises");
                    put(&mut out, "stream_options", &value);
                    wrote_options = true;
                }
                "max_tokens" | "max_completion_tokens" | "max_output_tokens" if cap.is_some() => {
                    put(
                        &mut out,
                        &field.key,
                        cap.expect("checked").to_string().as_bytes(),
                    );
                    wrote_cap = true;
                }
                key => put(&mut out, key, &self.body[field.value.clone()]),
            }
        }
        put(&mut out, "model", &model_json);
        if let (Some(cap), false) = (cap, wrote_cap) {
            let key = match self.api {
                Wire::Responses => "max_output_tokens",
                _ => "max_completion_tokens",
            };
            put(&mut out, key, cap.to_string().as_bytes());
        }
        if ask_usage && !wrote_options {
            put(&mut out, "stream_options", br#"{"include_usage":true}"#);
        }
        out.put_u8(b'}');
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Wire;

    fn parse(json: &str) -> Result<ClientRequest, ApiError> {
        ClientRequest::parse(Wire::Openai, Bytes::copy_from_slice(json.as_bytes()))
    }

    #[test]
    fn summarises_messages_without_keeping_text() {
        let r = parse(
            r#"{"model":"auto","stream":true,"max_tokens":50,"temperature":0.5,
                "metadata":{"task":"code","n":1},"tools":[{"type":"function"}],
                "messages":[
                  {"role":"system","content":"Be brief."},
                  {"role":"user","content":[{"type":"text","text":"h\u00e9llo"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"world"}]},
                  {"role":"assistant","content":null,"tool_calls":[{"id":"1"}]},
                  {"role":"tool","content":"42"}
                ]}"#,
        )
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("auto"));
        assert!(r.stream && r.has_tools && r.has_images());
        assert_eq!((r.max_tokens, r.temperature), (Some(50), Some(0.5)));
        assert_eq!(r.metadata, [("task".to_string(), "code".to_string())]);
        let chars: Vec<u32> = r.messages.iter().map(|m| m.chars).collect();
        assert_eq!(chars, [9, 11, 0, 2]);
        assert_eq!(r.messages[1].role, Role::User);
        assert!(r.messages[1].has_image && !r.messages[0].has_image);
        assert!(
            r.messages[2].has_tool_call
                && r.messages[3].has_tool_call
                && !r.messages[1].has_tool_call
        );
        assert_eq!(r.estimated_input_tokens(), 6 + 16);
        assert_eq!(r.message_text(1, 100).unwrap(), "héllo\nworld");
        assert_eq!(r.message_text(1, 7).unwrap(), "héllo\nw");
        assert_eq!(r.message_text(1, 3).unwrap(), "hél");
        assert_eq!(r.message_text(0, 100).unwrap(), "Be brief.");
        assert_eq!(
            r.message_text(2, 100).unwrap(),
            "",
            "a message without content"
        );
        assert_eq!(r.message_text(3, 100).unwrap(), "42");
        assert_eq!(r.message_text(4, 100), None);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases = [
            ("not json", None),
            ("[1,2]", None),
            (r#"{"model":"m"}"#, Some("messages")),
            (r#"{"messages":[]}"#, Some("messages")),
            (r#"{"messages":"hi"}"#, Some("messages")),
            (
                r#"{"messages":[{"content":"hi"}]}"#,
                Some("messages[0].role"),
            ),
            (
                r#"{"messages":[{"role":"wizard","content":"hi"}]}"#,
                Some("messages[0].role"),
            ),
            (r#"{"messages":["hi"]}"#, Some("messages[0]")),
            (
                r#"{"stream":true,"stream":false,"messages":[{"role":"user","content":"x"}]}"#,
                Some("stream"),
            ),
            (
                r#"{"messages":[{"role":"user","content":7}]}"#,
                Some("messages[0].content"),
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"},{"role":"user","content":[7]}]}"#,
                Some("messages[1].content"),
            ),
            (
                r#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
                Some("model"),
            ),
            (
                r#"{"stream":"yes","messages":[{"role":"user","content":"x"}]}"#,
                Some("stream"),
            ),
            (
                r#"{"max_tokens":-1,"messages":[{"role":"user","content":"x"}]}"#,
                Some("max_tokens"),
            ),
        ];
        for (body, param) in cases {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), param, "{body}: {}", e.message);
        }
    }

    #[test]
    fn forwards_the_clients_bytes_when_nothing_changes() {
        let json = r#"{"model":"gpt-4o-mini", "messages":[{"role":"user","content":"hi"}]}"#;
        let r = parse(json).unwrap();
        let out = r.upstream_body("gpt-4o-mini", None);
        assert_eq!(out, json.as_bytes());
        assert_eq!(out.as_ptr(), r.body.as_ptr(), "same buffer, no copy");
    }

    #[test]
    fn a_stream_asks_for_usage_unless_the_client_said_otherwise() {
        let silent =
            parse(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#)
                .unwrap();
        assert!(silent.asks_stream_usage());
        let out: serde_json::Value =
            serde_json::from_slice(&silent.upstream_body("m", None)).unwrap();
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage": true})
        );

        let asked = parse(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#).unwrap();
        assert_eq!(asked.stream_usage, Some(true));
        assert!(!asked.asks_stream_usage());
        let declined = parse(r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[{"role":"user","content":"x"}]}"#).unwrap();
        assert_eq!(declined.stream_usage, Some(false));
        assert!(
            declined.asks_stream_usage(),
            "usage is counted all the same"
        );
        let out: serde_json::Value =
            serde_json::from_slice(&declined.upstream_body("m", None)).unwrap();
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        assert_eq!(
            asked.upstream_body("m", None),
            asked.body,
            "left as sent when the client asked"
        );
    }

    #[test]
    fn rewrites_only_model_and_cap() {
        let r = parse(r#"{"model":"auto","max_tokens":500,"messages":[{"role":"user","content":"a\"b"}],"x":{"k":[1, 2]}}"#).unwrap();
        let out: serde_json::Value =
            serde_json::from_slice(&r.upstream_body("small", Some(100))).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"model":"small","max_tokens":100,"messages":[{"role":"user","content":"a\"b"}],"x":{"k":[1,2]}})
        );
        let out: serde_json::Value =
            serde_json::from_slice(&r.upstream_body("small", Some(900))).unwrap();
        assert_eq!(
            out["max_tokens"], 500,
            "a higher cap than the client's is ignored"
        );
        let r = parse(r#"{"messages":[{"role":"user","content":"x"}]}"#).unwrap();
        let out: serde_json::Value =
            serde_json::from_slice(&r.upstream_body("m", Some(10))).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"messages":[{"role":"user","content":"x"}],"model":"m","max_completion_tokens":10})
        );
        let r = parse(r#"{"max_tokens":50,"max_completion_tokens":30,"messages":[{"role":"user","content":"x"}]}"#).unwrap();
        assert_eq!(r.max_tokens, Some(30), "the lower of two caps counts");
        let out: serde_json::Value =
            serde_json::from_slice(&r.upstream_body("m", Some(20))).unwrap();
        assert_eq!(
            (
                out["max_tokens"].as_u64(),
                out["max_completion_tokens"].as_u64()
            ),
            (Some(20), Some(20))
        );
    }
}
