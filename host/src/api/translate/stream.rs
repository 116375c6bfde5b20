//! Streamed answers from one wire format to another, one SSE event at a time: OpenAI
//! `chat.completion.chunk`s as Anthropic `message_start` / `content_block_*` / `message_delta` /
//! `message_stop` events, and back; either as the Responses API's typed events (Anthropic's by
//! way of chat chunks, see `to_responses`).
//!
//! [`StreamTranslator`] is fed each complete upstream event and returns the client's bytes for
//! it, keeping only what the translation needs between events (ids, the open content block,
//! the stop reason, usage). It also tells the caller whether the upstream finished properly or
//! reported an error, and for a Responses client which response the stream made. Pure
//! functions over bytes; no I/O.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::to_responses::{ResponseFrame, ToResponses, error_data};
use super::{Wire, anthropic_prompt_tokens, finish_reason, stop_reason};

/// One SSE event, parsed, borrowing from its bytes where it can.
struct Event<'a> {
    /// The `event:` field, if any.
    name: Option<Cow<'a, str>>,
    /// The `data:` lines joined by newlines.
    data: Cow<'a, str>,
}

impl<'a> Event<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::read(text),
            // Not UTF-8: read it with the bad bytes replaced, owning what it keeps.
            Err(_) => {
                let text = String::from_utf8_lossy(bytes);
                let event = Event::read(&text);
                Event {
                    name: event.name.map(|n| Cow::Owned(n.into_owned())),
                    data: Cow::Owned(event.data.into_owned()),
                }
            }
        }
    }

    fn read(text: &'a str) -> Self {
        let mut name = None;
        let mut data: Option<Cow<'a, str>> = None;
        for line in text.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = Some(Cow::Borrowed(value)),
                "data" => match &mut data {
                    Some(joined) => {
                        let joined = joined.to_mut();
                        joined.push('\n');
                        joined.push_str(value);
                    }
                    None => data = Some(Cow::Borrowed(value)),
                },
                _ => {}
            }
        }
        Self {
            name,
            data: data.unwrap_or_default(),
        }
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// An Anthropic SSE event.
fn anthropic_event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An Anthropic SSE error event.
fn anthropic_error(message: &str) -> String {
    anthropic_event(
        "error",
        &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
    )
}

/// The message of an upstream error that gave none.
const UPSTREAM_ERROR: &str = "the upstream reported an error";

/// An OpenAI SSE event.
fn openai_event(data: &Value) -> String {
    format!("data: {data}\n\n")
}

/// The content block open in the Anthropic stream being written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool use, with the OpenAI index of its call.
    Tool(u64),
}

/// State for OpenAI chunks in, Anthropic events out.
#[derive(Default)]
struct ToAnthropic {
    started: bool,
    /// The open block and its Anthropic index.
    open: Option<(Block, u64)>,
    next_index: u64,
    stop_reason: Option<&'static str>,
    input_tokens: u64,
    output_tokens: u64,
    /// The id of the tool call being written.
    tool_id: Option<String>,
}

impl ToAnthropic {
    fn chunk(&mut self, chunk: &Value, out: &mut String) {
        let has_choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if !has_choice && !chunk.get("usage").is_some_and(Value::is_object) {
            // Nothing to say, such as Azure's first chunk (content-filter results, with an
            // empty id and model): the message starts with the next one.
            return;
        }
        self.start(chunk, out);
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        if let Some(choice) = choice {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            for key in ["content", "refusal"] {
                if let Some(text) = delta.get(key).and_then(Value::as_str)
                    && !text.is_empty()
                {
                    self.open_block(Block::Text, None, out);
                    self.delta(json!({"type": "text_delta", "text": text}), out);
                }
            }
            let calls = delta.get("tool_calls").and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                self.tool_call(call, out);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.stop_reason = Some(stop_reason(reason));
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.input_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0);
            self.output_tokens = usage["completion_tokens"].as_u64().unwrap_or(0);
        }
    }

    /// `message_start`, before anything else.
    fn start(&mut self, chunk: &Value, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let field = |key: &str| chunk.get(key).and_then(Value::as_str).unwrap_or_default();
        let start = json!({
            "type": "message_start",
            "message": {
                "id": field("id"),
                "type": "message",
                "role": "assistant",
                "model": field("model"),
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        });
        out.push_str(&anthropic_event("message_start", &start));
    }

    fn tool_call(&mut self, call: &Value, out: &mut String) {
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let id = call.get("id").and_then(Value::as_str);
        let function = call.get("function").unwrap_or(&Value::Null);
        let open = self.open.map(|(block, _)| block);
        // A new call has a new index, or a new id at the same index; some servers repeat the
        // id on every piece of one call.
        let new_id = id.is_some_and(|id| self.tool_id.as_deref() != Some(id));
        if new_id || open != Some(Block::Tool(index)) {
            self.tool_id = id.map(str::to_string);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = id.unwrap_or_default();
            let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
            self.open_block(Block::Tool(index), Some(block), out);
        }
        if let Some(piece) = function.get("arguments").and_then(Value::as_str)
            && !piece.is_empty()
        {
            self.delta(
                json!({"type": "input_json_delta", "partial_json": piece}),
                out,
            );
        }
    }

    /// Opens a block of `kind` unless one is open already; `start` is its `content_block`
    /// (a new tool use is always opened).
    fn open_block(&mut self, kind: Block, start: Option<Value>, out: &mut String) {
        if start.is_none() && self.open.is_some_and(|(open, _)| open == kind) {
            return;
        }
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((kind, index));
        let content_block = start.unwrap_or_else(|| json!({"type": "text", "text": ""}));
        let event =
            json!({"type": "content_block_start", "index": index, "content_block": content_block});
        out.push_str(&anthropic_event("content_block_start", &event));
    }

    fn delta(&self, delta: Value, out: &mut String) {
        let index = self.open.map_or(0, |(_, index)| index);
        let event = json!({"type": "content_block_delta", "index": index, "delta": delta});
        out.push_str(&anthropic_event("content_block_delta", &event));
    }

    fn close_block(&mut self, out: &mut String) {
        if let Some((_, index)) = self.open.take() {
            let event = json!({"type": "content_block_stop", "index": index});
            out.push_str(&anthropic_event("content_block_stop", &event));
        }
    }

    /// `data: [DONE]`: the last block closed, the stop reason and usage, `message_stop`.
    fn done(&mut self, out: &mut String) {
        self.start(&Value::Null, out);
        self.close_block(out);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        });
        out.push_str(&anthropic_event("message_delta", &delta));
        out.push_str(&anthropic_event(
            "message_stop",
            &json!({"type": "message_stop"}),
        ));
    }
}

/// State for Anthropic events in, OpenAI chunks out.
#[derive(Default)]
struct ToOpenai {
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    /// Tool uses started so far; the last one's OpenAI index is one less.
    tools: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl ToOpenai {
    fn new(include_usage: bool, created: u64) -> Self {
        Self {
            include_usage,
            created,
            ..Self::default()
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        openai_event(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        }))
    }

    /// The chunks, if any, for one Anthropic event of type `kind`.
    fn event(&mut self, kind: &str, data: &Value, out: &mut String) {
        let field = |key: &str| data.get(key).unwrap_or(&Value::Null);
        match kind {
            "message_start" => self.message_start(field("message"), out),
            "content_block_start" => self.block_start(field("content_block"), out),
            "content_block_delta" => self.block_delta(field("delta"), out),
            "message_delta" => self.message_delta(data, out),
            "message_stop" => self.message_stop(out),
            "error" => {
                let error = field("error");
                out.push_str(&openai_event(&json!({"error": {
                    "message": error["message"].as_str().unwrap_or(UPSTREAM_ERROR),
                    "type": error["type"].as_str().unwrap_or("api_error"),
                    "param": null,
                    "code": null,
                }})));
            }
            _ => {}
        }
    }

    /// The message's id, model and first usage; the role's chunk.
    fn message_start(&mut self, message: &Value, out: &mut String) {
        let field = |key: &str| {
            message
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        self.id = field("id");
        self.model = field("model");
        let usage = message.get("usage").unwrap_or(&Value::Null);
        self.prompt_tokens = anthropic_prompt_tokens(usage);
        self.completion_tokens = usage["output_tokens"].as_u64().unwrap_or(0);
        out.push_str(&self.chunk(json!({"role": "assistant", "content": ""}), None));
    }

    /// A tool use's first chunk (its id and name); a text block starts with its first delta.
    fn block_start(&mut self, block: &Value, out: &mut String) {
        if block["type"] != "tool_use" {
            return;
        }
        let call = json!({
            "index": self.tools,
            "id": block["id"].as_str().unwrap_or_default(),
            "type": "function",
            "function": {"name": block["name"].as_str().unwrap_or_default(), "arguments": ""},
        });
        self.tools += 1;
        out.push_str(&self.chunk(json!({"tool_calls": [call]}), None));
    }

    /// A piece of text, or of the last tool use's arguments.
    fn block_delta(&self, delta: &Value, out: &mut String) {
        match delta["type"].as_str() {
            Some("text_delta") => {
                let text = delta["text"].as_str().unwrap_or_default();
                out.push_str(&self.chunk(json!({"content": text}), None));
            }
            Some("input_json_delta") => {
                let piece = delta["partial_json"].as_str().unwrap_or_default();
                if let (false, Some(index)) = (piece.is_empty(), self.tools.checked_sub(1)) {
                    let call = json!({"index": index, "function": {"arguments": piece}});
                    out.push_str(&self.chunk(json!({"tool_calls": [call]}), None));
                }
            }
            _ => {}
        }
    }

    /// The final usage and the finish reason's chunk.
    fn message_delta(&mut self, data: &Value, out: &mut String) {
        let usage = data.get("usage").unwrap_or(&Value::Null);
        if usage.get("input_tokens").is_some_and(Value::is_u64) {
            self.prompt_tokens = anthropic_prompt_tokens(usage);
        }
        if let Some(output) = usage["output_tokens"].as_u64() {
            self.completion_tokens = output;
        }
        let reason = data["delta"]["stop_reason"].as_str().map(finish_reason);
        out.push_str(&self.chunk(json!({}), reason));
    }

    /// The usage chunk when the client asked for it, and `data: [DONE]`.
    fn message_stop(&self, out: &mut String) {
        if self.include_usage {
            out.push_str(&openai_event(&json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens,
                    "total_tokens": self.prompt_tokens + self.completion_tokens,
                },
            })));
        }
        out.push_str("data: [DONE]\n\n");
    }
}

enum Mode {
    Same,
    ToAnthropic(ToAnthropic),
    ToOpenai(ToOpenai),
    /// Chat chunks (made from Anthropic events first, when the upstream speaks Anthropic's API)
    /// as Responses events.
    ToResponses(Option<Box<ToOpenai>>, Box<ToResponses>),
}

/// Translates a stream of complete SSE events (each passed whole: its `event:` line if any, its
/// `data:` line(s) and the blank line ending it) from one wire to another.
pub struct StreamTranslator {
    from: Wire,
    to: Wire,
    mode: Mode,
    complete: bool,
    upstream_error: bool,
    /// Events passed through so far (a Responses stream numbers its events from 0).
    passed: u64,
    /// The id of the response a Responses upstream's stream made (`response.created`).
    response_id: Option<String>,
}

/// The id of the response a `response.created` event's data names.
fn created_id(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Response {
        id: String,
    }
    #[derive(serde::Deserialize)]
    struct Created {
        response: Response,
    }
    serde_json::from_str::<Created>(data)
        .ok()
        .map(|c| c.response.id)
}

/// The chat chunks for one Anthropic event of type `kind`; an error event whose data cannot be
/// read still ends as an error.
fn anthropic_to_chat(
    state: &mut ToOpenai,
    kind: Option<&str>,
    json: Option<&Value>,
    out: &mut String,
) {
    match (kind, json) {
        (Some(kind), Some(data)) => state.event(kind, data, out),
        (Some("error"), None) => state.event("error", &Value::Null, out),
        _ => {}
    }
}

/// The Responses events for `chunks`, chat chunks as SSE events made from an Anthropic event.
fn chat_to_responses(chunks: &str, state: &mut ToResponses, out: &mut String) {
    for chunk in chunks.split_terminator("\n\n") {
        let data = chunk.strip_prefix("data: ").unwrap_or(chunk);
        if data == "[DONE]" {
            state.done(out);
            continue;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        match chunk.get("error") {
            Some(error) => {
                let message = error["message"].as_str().unwrap_or(UPSTREAM_ERROR);
                state.error("upstream_error", message, out);
            }
            None => state.chunk(&chunk, out),
        }
    }
}

impl StreamTranslator {
    /// `include_usage`: for an OpenAI client, whether it asked for the final usage chunk
    /// (`stream_options.include_usage`); an Anthropic client always gets usage. `created`: the
    /// unix seconds put in OpenAI chunks.
    pub fn new(from: Wire, to: Wire, include_usage: bool, created: u64) -> Self {
        let mode = match (from, to) {
            (Wire::Openai, Wire::Anthropic) => Mode::ToAnthropic(ToAnthropic::default()),
            (Wire::Anthropic, Wire::Openai) => {
                Mode::ToOpenai(ToOpenai::new(include_usage, created))
            }
            _ => Mode::Same,
        };
        Self {
            from,
            to,
            mode,
            complete: false,
            upstream_error: false,
            passed: 0,
            response_id: None,
        }
    }

    /// A translator for a Responses client whose response is `frame`, from an upstream
    /// speaking `from`.
    pub fn to_responses(from: Wire, frame: ResponseFrame, created: u64) -> Self {
        let mut translator = Self::new(from, Wire::Responses, true, created);
        let chat = match from {
            Wire::Responses => return translator,
            Wire::Anthropic => Some(Box::new(ToOpenai::new(true, created))),
            Wire::Openai => None,
        };
        translator.mode = Mode::ToResponses(chat, Box::new(ToResponses::new(frame)));
        translator
    }

    /// The client's bytes for one upstream event: possibly none, possibly several events.
    pub fn event<'a>(&mut self, event: &'a [u8]) -> Cow<'a, [u8]> {
        let parsed = Event::parse(event);
        let done = self.from == Wire::Openai && parsed.data.trim() == "[DONE]";
        let json = self.read(&parsed, done);
        let error = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .filter(|e| !e.is_null());
        let kind = json
            .as_ref()
            .and_then(|j| j["type"].as_str())
            .or(parsed.name.as_deref());
        self.observe(kind, error.is_some(), done, &parsed.data);
        let mut out = String::new();
        match &mut self.mode {
            Mode::Same => {
                self.passed += 1;
                return Cow::Borrowed(event);
            }
            Mode::ToResponses(None, state) if done => state.done(&mut out),
            Mode::ToResponses(None, state) => match (&json, error) {
                (_, Some(error)) => {
                    let message = error["message"].as_str().unwrap_or(UPSTREAM_ERROR);
                    let code = error["code"].as_str().unwrap_or("upstream_error");
                    state.error(code, message, &mut out);
                }
                (Some(chunk), None) => state.chunk(chunk, &mut out),
                (None, None) => {}
            },
            Mode::ToResponses(Some(chat), state) => {
                let mut chunks = String::new();
                anthropic_to_chat(chat, kind, json.as_ref(), &mut chunks);
                chat_to_responses(&chunks, state, &mut out);
            }
            Mode::ToAnthropic(state) if done => state.done(&mut out),
            Mode::ToAnthropic(state) => match (&json, error) {
                (_, Some(error)) => {
                    let message = error["message"].as_str().unwrap_or(UPSTREAM_ERROR);
                    out.push_str(&anthropic_error(message));
                }
                (Some(chunk), None) => state.chunk(chunk, &mut out),
                (None, None) => {}
            },
            Mode::ToOpenai(state) => anthropic_to_chat(state, kind, json.as_ref(), &mut out),
        }
        Cow::Owned(out.into_bytes())
    }

    /// The event's JSON, where the translation needs it. Passing through, only an error or an
    /// unnamed event needs its JSON read; a Responses event says what it is in its name.
    fn read(&self, parsed: &Event, done: bool) -> Option<Value> {
        match (&self.mode, self.from) {
            _ if done => None,
            (Mode::Same, Wire::Openai) if !parsed.data.contains("\"error\"") => None,
            (Mode::Same, Wire::Anthropic | Wire::Responses) if parsed.name.is_some() => None,
            _ => parsed.json(),
        }
    }

    /// Notes whether the upstream's stream has completed or reported an error, and the
    /// response a Responses upstream made, from an event of type `kind` with data `data`.
    fn observe(&mut self, kind: Option<&str>, error: bool, done: bool, data: &str) {
        match self.from {
            Wire::Openai => {
                self.complete |= done;
                self.upstream_error |= error;
            }
            Wire::Anthropic => {
                self.complete |= kind == Some("message_stop");
                self.upstream_error |= kind == Some("error");
            }
            Wire::Responses => {
                self.complete |= matches!(kind, Some("response.completed" | "response.incomplete"));
                self.upstream_error |= matches!(kind, Some("error" | "response.failed"));
                if kind == Some("response.created") {
                    self.response_id = created_id(data);
                }
            }
        }
    }

    /// Whether the upstream's stream completed properly (OpenAI: `data: [DONE]` seen;
    /// Anthropic: a `message_stop` event seen).
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Whether the upstream sent an error event; it has been translated and passed on.
    pub fn upstream_error(&self) -> bool {
        self.upstream_error
    }

    /// The response a Responses client's stream made, once it completed: the whole response
    /// object when translated, its id when a Responses upstream made it (known from its
    /// `response.created`).
    pub fn made_response(&self) -> Option<MadeResponse> {
        match &self.mode {
            Mode::ToResponses(_, state) => state
                .completed()
                .map(|response| MadeResponse::Translated(response.clone())),
            _ if self.to == Wire::Responses && self.complete => {
                self.response_id.clone().map(MadeResponse::Native)
            }
            _ => None,
        }
    }

    /// An SSE error event in the client's shape, for the proxy's own mid-stream errors
    /// (stalled, cut, unfinished). `code` is kept by the OpenAI shapes only; Anthropic's has no
    /// place for it.
    pub fn error_event(&mut self, code: &str, message: &str) -> Vec<u8> {
        let event = match (&mut self.mode, self.to) {
            (Mode::ToResponses(_, state), _) => {
                let mut out = String::new();
                state.error(code, message, &mut out);
                out
            }
            (_, Wire::Responses) => {
                let mut data = error_data(code, message);
                data["type"] = "error".into();
                data["sequence_number"] = self.passed.into();
                format!("event: error\ndata: {data}\n\n")
            }
            (_, Wire::Openai) => openai_event(&json!({"error": {
                "message": message,
                "type": "server_error",
                "param": null,
                "code": code,
            }})),
            (_, Wire::Anthropic) => anthropic_error(message),
        };
        event.into_bytes()
    }
}

/// A response a Responses client's answer made.
#[derive(Debug, Clone, PartialEq)]
pub enum MadeResponse {
    /// Made by translation: the response object as the client got it.
    Translated(Value),
    /// Made by an upstream serving the Responses API: its id there.
    Native(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's bytes as (event name, data) pairs, checking the framing of each event.
    fn events(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
        text.split_terminator("\n\n")
            .map(|event| {
                let (name, data) = match event.strip_prefix("event: ") {
                    Some(rest) => {
                        let (name, data) = rest.split_once('\n').unwrap();
                        (Some(name.to_string()), data)
                    }
                    None => (None, event),
                };
                let data = data.strip_prefix("data: ").unwrap();
                let data = if data == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(data).unwrap()
                };
                (name, data)
            })
            .collect()
    }

    fn named(name: &str, data: Value) -> (Option<String>, Value) {
        (Some(name.to_string()), data)
    }

    /// Feeds `input` event by event, checking that the stream completes only with the last one.
    fn run(translator: &mut StreamTranslator, input: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, event) in input.iter().enumerate() {
            assert!(!translator.complete(), "complete before event {i}");
            out.extend_from_slice(&translator.event(event.as_bytes()));
        }
        assert!(translator.complete());
        assert!(!translator.upstream_error());
        out
    }

    #[test]
    fn openai_stream_becomes_anthropic_events() {
        let chunk = |choices: &str, usage: &str| {
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\
                 \"model\":\"gpt-x\",\"choices\":{choices},\"usage\":{usage}}}\n\n"
            )
        };
        let input = [
            chunk(
                r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}]"#,
                "null",
            ),
            chunk(
                r#"[{"index":0,"delta":{"content":"Let me "},"finish_reason":null}]"#,
                "null",
            ),
            chunk(
                r#"[{"index":0,"delta":{"content":"check."},"finish_reason":null}]"#,
                "null",
            ),
            chunk(
                r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":""}}]},"finish_reason":null}]"#,
                "null",
            ),
            chunk(
                r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]"#,
                "null",
            ),
            chunk(
                r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]},"finish_reason":null}]"#,
                "null",
            ),
            chunk(
                r#"[{"index":0,"delta":{},"finish_reason":"tool_calls"}]"#,
                "null",
            ),
            chunk(
                "[]",
                r#"{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}"#,
            ),
            ": keep-alive\r\ndata: [DONE]\r\n\r\n".to_string(),
        ];
        let input: Vec<&str> = input.iter().map(String::as_str).collect();
        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Anthropic, false, 0);
        let out = run(&mut translator, &input);
        assert_eq!(
            events(&out),
            [
                named(
                    "message_start",
                    json!({"type": "message_start", "message": {
                    "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}})
                ),
                named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}})
                ),
                named(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "Let me "}})
                ),
                named(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "check."}})
                ),
                named(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0})
                ),
                named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 1,
                    "content_block": {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}})
                ),
                named(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})
                ),
                named(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}})
                ),
                named(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 1})
                ),
                named(
                    "message_delta",
                    json!({"type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                    "usage": {"input_tokens": 12, "output_tokens": 7}})
                ),
                named("message_stop", json!({"type": "message_stop"})),
            ]
        );
    }

    #[test]
    fn anthropic_stream_becomes_openai_chunks() {
        let input = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check.\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
            "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\r\ndata: \"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Oslo\\\"}\"}}\r\n\r\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        let mut translator =
            StreamTranslator::new(Wire::Anthropic, Wire::Openai, true, 1_700_000_000);
        let out = run(&mut translator, &input);
        let chunk = |delta: Value, finish: Value| {
            (
                None,
                json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": "claude-x",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
            )
        };
        assert_eq!(
            events(&out),
            [
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Let me check."}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                    "function": {"name": "weather", "arguments": ""}}]}),
                    Value::Null
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Oslo\"}"}}]}),
                    Value::Null
                ),
                chunk(json!({}), json!("tool_calls")),
                (
                    None,
                    json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 1_700_000_000,
                    "model": "claude-x", "choices": [],
                    "usage": {"prompt_tokens": 15, "completion_tokens": 20, "total_tokens": 35}})
                ),
                (None, json!("[DONE]")),
            ]
        );
    }

    #[test]
    fn usage_chunk_only_when_asked_and_message_delta_input_preferred() {
        let mut translator = StreamTranslator::new(Wire::Anthropic, Wire::Openai, false, 0);
        translator.event(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n");
        let out = translator.event(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"input_tokens\":9,\"output_tokens\":4}}\n\n");
        assert_eq!(events(&out)[0].1["choices"][0]["finish_reason"], "length");
        let out = translator.event(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        assert_eq!(events(&out), [(None, json!("[DONE]"))]);

        let mut translator = StreamTranslator::new(Wire::Anthropic, Wire::Openai, true, 0);
        translator.event(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n");
        translator.event(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":9,\"output_tokens\":4}}\n\n");
        let out = translator.event(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        assert_eq!(
            events(&out)[0].1["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13})
        );
    }

    #[test]
    fn upstream_errors_are_translated_and_flagged() {
        let mut translator = StreamTranslator::new(Wire::Anthropic, Wire::Openai, true, 0);
        let out = translator.event(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        assert_eq!(
            events(&out),
            [(
                None,
                json!({"error": {"message": "Overloaded", "type": "overloaded_error",
                "param": null, "code": null}})
            )]
        );
        assert!(translator.upstream_error() && !translator.complete());

        let mut translator = StreamTranslator::new(Wire::Anthropic, Wire::Openai, false, 0);
        let out = translator.event(b"event: error\ndata: upstream fell over\n\n");
        assert_eq!(
            events(&out),
            [(
                None,
                json!({"error": {"message": "the upstream reported an error", "type": "api_error",
                "param": null, "code": null}})
            )]
        );
        assert!(translator.upstream_error());

        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Anthropic, false, 0);
        let out = translator
            .event(b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n");
        assert_eq!(
            events(&out),
            [named(
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})
            )]
        );
        assert!(translator.upstream_error() && !translator.complete());
    }

    #[test]
    fn same_wire_passes_events_through_and_tracks_the_end() {
        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Openai, true, 0);
        for event in [
            &b"data: {\"choices\":[]}\n\n"[..],
            b": ping\n\n",
            b"data: not json\n\n",
        ] {
            assert_eq!(&*translator.event(event), event);
        }
        assert!(!translator.complete() && !translator.upstream_error());
        let error = b"data: {\"error\":{\"message\":\"x\"}}\n\n";
        assert_eq!(&*translator.event(error), error);
        assert!(translator.upstream_error());
        assert_eq!(&*translator.event(b"data: [DONE]\n\n"), b"data: [DONE]\n\n");
        assert!(translator.complete());

        let mut translator = StreamTranslator::new(Wire::Anthropic, Wire::Anthropic, false, 0);
        let error = b"data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n\n";
        assert_eq!(
            &*translator.event(error),
            error,
            "an unnamed event is read from its data"
        );
        assert!(translator.upstream_error() && !translator.complete());
        let stop = b"event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
        assert_eq!(&*translator.event(stop), stop);
        assert!(translator.complete());
    }

    #[test]
    fn non_json_events_are_dropped_across_wires() {
        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Anthropic, false, 0);
        assert!(translator.event(b": keep-alive\n\n").is_empty());
        assert!(translator.event(b"data: garbage\n\n").is_empty());
        let mut translator = StreamTranslator::new(Wire::Anthropic, Wire::Openai, false, 0);
        assert!(translator.event(b"event: ping\ndata: nope\n\n").is_empty());
    }

    #[test]
    fn each_tool_call_and_later_text_open_their_own_block() {
        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Anthropic, false, 0);
        let chunks = [
            &br#"data: {"id":"c","model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#[..],
            br#"data: {"id":"c","model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":""}}]}}]}"#,
            br#"data: {"id":"c","model":"g","choices":[{"index":0,"delta":{"content":"done"},"finish_reason":"stop"}]}"#,
            b"data: [DONE]",
        ];
        let out: Vec<u8> = chunks
            .iter()
            .flat_map(|c| translator.event(c).into_owned())
            .collect();
        let summary: Vec<(Value, Value)> = events(&out)
            .into_iter()
            .map(|(_, data)| (data["type"].clone(), data["index"].clone()))
            .collect();
        let expected = [
            ("message_start", Value::Null),
            ("content_block_start", json!(0)),
            ("content_block_delta", json!(0)),
            ("content_block_stop", json!(0)),
            ("content_block_start", json!(1)),
            ("content_block_stop", json!(1)),
            ("content_block_start", json!(2)),
            ("content_block_delta", json!(2)),
            ("content_block_stop", json!(2)),
            ("message_delta", Value::Null),
            ("message_stop", Value::Null),
        ]
        .map(|(kind, index)| (json!(kind), index));
        assert_eq!(summary, expected);
        assert!(translator.complete());
    }

    #[test]
    fn a_repeated_id_stays_one_call_and_an_empty_first_chunk_is_skipped() {
        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Anthropic, false, 0);
        let chunks = [
            &br#"data: {"id":"","model":"","choices":[],"prompt_filter_results":[]}"#[..],
            br#"data: {"id":"c","model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"x\""}}]}}]}"#,
            br#"data: {"id":"c","model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"arguments":":1}"}}]}}]}"#,
            b"data: [DONE]",
        ];
        let out: Vec<u8> = chunks
            .iter()
            .flat_map(|c| translator.event(c).into_owned())
            .collect();
        let events = events(&out);
        assert_eq!(
            events[0].1["message"]["id"], "c",
            "started by the first real chunk"
        );
        assert_eq!(events[0].1["message"]["model"], "g");
        let starts = events
            .iter()
            .filter(|(_, d)| d["type"] == "content_block_start")
            .count();
        assert_eq!(starts, 1, "one tool_use block");
        let pieces: Vec<&str> = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(pieces, ["{\"x\"", ":1}"]);
    }

    #[test]
    fn done_without_chunks_still_makes_a_whole_message() {
        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Anthropic, false, 0);
        let out = translator.event(b"data: [DONE]\n\n");
        let names: Vec<Option<String>> = events(&out).into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                Some("message_start".into()),
                Some("message_delta".into()),
                Some("message_stop".into())
            ]
        );
        assert!(translator.complete());
    }

    #[test]
    fn own_error_events_in_each_shape() {
        let own = |from, to| {
            StreamTranslator::new(from, to, false, 0).error_event("stalled", "the upstream stalled")
        };
        assert_eq!(
            events(&own(Wire::Openai, Wire::Openai)),
            [(
                None,
                json!({"error": {"message": "the upstream stalled", "type": "server_error",
                "param": null, "code": "stalled"}})
            )]
        );
        assert_eq!(
            events(&own(Wire::Openai, Wire::Anthropic)),
            [named(
                "error",
                json!({"type": "error", "error": {"type": "api_error",
                "message": "the upstream stalled"}})
            )]
        );
        let mut native = StreamTranslator::new(Wire::Responses, Wire::Responses, false, 0);
        native.event(b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_up\"}}\n\n");
        let (name, data) = events(&native.error_event("stalled", "the upstream stalled")).remove(0);
        assert_eq!(name.as_deref(), Some("error"));
        assert_eq!(data["sequence_number"], 1);
        assert_eq!(data["error"]["code"], "stalled");
        assert_eq!(native.made_response(), None, "not complete");
    }

    #[test]
    fn an_event_that_is_not_utf8_is_read_with_its_bad_bytes_replaced() {
        let mut translator = StreamTranslator::new(Wire::Openai, Wire::Anthropic, false, 0);
        let out = translator.event(b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"a\xffb\"}}]}\n\n");
        let text = String::from_utf8(out.into_owned()).unwrap();
        assert!(text.contains("a\u{fffd}b"), "{text}");
    }

    #[test]
    fn a_responses_stream_passes_through_and_names_its_response() {
        let mut native = StreamTranslator::new(Wire::Responses, Wire::Responses, false, 0);
        let created = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_up\"}}\n\n";
        let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n";
        let done = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_up\"}}\n\n";
        for event in [created, delta, done] {
            assert_eq!(native.event(event.as_bytes()), event.as_bytes());
        }
        assert!(native.complete() && !native.upstream_error());
        assert_eq!(
            native.made_response(),
            Some(MadeResponse::Native("resp_up".into()))
        );
        let mut failed = StreamTranslator::new(Wire::Responses, Wire::Responses, false, 0);
        failed.event(b"event: response.failed\ndata: {\"type\":\"response.failed\"}\n\n");
        assert!(failed.upstream_error());
    }

    #[test]
    fn anthropic_events_become_responses_events() {
        let frame = ResponseFrame::new("resp_x".into(), 1, br#"{"input":"hi"}"#);
        let mut translator = StreamTranslator::to_responses(Wire::Anthropic, frame, 1);
        let out = run(
            &mut translator,
            &[
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ],
        );
        let events = events(&out);
        let kinds: Vec<&str> = events
            .iter()
            .map(|(name, _)| name.as_deref().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"response.created"));
        assert!(kinds.contains(&"response.output_text.delta"));
        let (_, last) = events.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hi");
        assert_eq!(last["response"]["usage"]["input_tokens"], 4);
        assert_eq!(last["response"]["usage"]["output_tokens"], 2);
        assert!(translator.complete());
        match translator.made_response() {
            Some(MadeResponse::Translated(response)) => assert_eq!(response["id"], "resp_x"),
            other => panic!("{other:?}"),
        }
    }
}
