//! Chat-completions answers as the Responses API's: a whole `chat.completion` as a `response`
//! object, and a stream of `chat.completion.chunk`s as the typed Responses events
//! (`response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`,
//! `response.function_call_arguments.delta`, their `.done` events, and `response.completed`, or
//! `response.incomplete` when the output cap cut the answer short). An Anthropic answer arrives
//! here already as chat completions (`response`, `stream`).
//!
//! A response carries the proxy's own id and the request's settings ([`ResponseFrame`]); its
//! text becomes a `message` item with one `output_text` part, each tool call a `function_call`
//! item, in the order the upstream sent them. Pure functions over `serde_json` values.

use serde_json::{Map, Value, json};

/// The request's settings a response repeats, and its id and creation time.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    pub id: String,
    pub created_at: u64,
    /// The request's fields a response object repeats, with OpenAI's defaults.
    echo: Map<String, Value>,
}

/// The request fields a response object repeats.
const ECHOED: [&str; 13] = [
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "user",
];

/// What a response says for an echoed field the request left out.
fn echo_default(key: &str) -> Value {
    match key {
        "metadata" => json!({}),
        "parallel_tool_calls" | "store" => Value::Bool(true),
        "reasoning" => json!({"effort": null, "summary": null}),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        _ => Value::Null,
    }
}

impl ResponseFrame {
    /// The frame of a response with `id` made at `created_at` (unix seconds) for the Responses
    /// request `body`.
    pub fn new(id: String, created_at: u64, body: &[u8]) -> Self {
        let request: Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
        let echo = ECHOED
            .iter()
            .map(|key| {
                let value = request
                    .get(*key)
                    .filter(|v| !v.is_null())
                    .cloned()
                    .unwrap_or_else(|| echo_default(key));
                ((*key).to_string(), value)
            })
            .collect();
        Self {
            id,
            created_at,
            echo,
        }
    }

    /// The response object: `status`, `model`, `output`, `usage` and why it is incomplete.
    fn response(&self, status: &str, model: &str, output: Vec<Value>, usage: Value) -> Value {
        let incomplete = match status {
            "incomplete" => json!({"reason": "max_output_tokens"}),
            _ => Value::Null,
        };
        let mut response = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete,
            "model": model,
            "output": output,
            "usage": usage,
        });
        let object = response.as_object_mut().expect("an object");
        object.extend(self.echo.clone());
        response
    }

    /// The id of output item `index` of kind `prefix` (`msg`, `fc`).
    fn item_id(&self, prefix: &str, index: usize) -> String {
        let suffix = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{suffix}_{index}")
    }
}

/// A chat `usage` object in the Responses API's terms.
fn usage(chat: Option<&Value>) -> Value {
    let Some(chat) = chat.filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let input = count(&chat["prompt_tokens"]);
    let output = count(&chat["completion_tokens"]);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": count(&chat["prompt_tokens_details"]["cached_tokens"])},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": count(&chat["completion_tokens_details"]["reasoning_tokens"])},
        "total_tokens": input + output,
    })
}

/// The response's status for a chat `finish_reason`.
fn status(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "incomplete",
        _ => "completed",
    }
}

/// What a message's one content part holds: the answer's text, or the model's refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Refusal,
}

impl Part {
    /// The part holding `text`.
    fn json(self, text: &str) -> Value {
        match self {
            Self::Text => json!({"type": "output_text", "text": text, "annotations": []}),
            Self::Refusal => json!({"type": "refusal", "refusal": text}),
        }
    }

    /// The events that stream it (`response.output_text` or `response.refusal`), and the field
    /// that holds the whole of it in the `.done` event.
    fn events(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Text => (
                "response.output_text.delta",
                "response.output_text.done",
                "text",
            ),
            Self::Refusal => ("response.refusal.delta", "response.refusal.done", "refusal"),
        }
    }
}

fn message_item(id: String, part: Part, text: &str, status: &str) -> Value {
    let content: Vec<Value> = if status == "in_progress" {
        Vec::new()
    } else {
        vec![part.json(text)]
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

fn call_item(id: String, call: &Call, status: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments,
    })
}

/// A whole `chat.completion` as a `response` object.
pub fn completion_to_response(completion: &Value, frame: &ResponseFrame) -> Result<Value, String> {
    let choice = completion
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or("the upstream's answer has no `choices`")?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut output = Vec::new();
    let said = [("content", Part::Text), ("refusal", Part::Refusal)]
        .into_iter()
        .find_map(|(key, part)| {
            let text = message.get(key).and_then(Value::as_str)?;
            (!text.is_empty()).then_some((part, text))
        });
    if let Some((part, text)) = said {
        output.push(message_item(
            frame.item_id("msg", 0),
            part,
            text,
            "completed",
        ));
    }
    let calls = message.get("tool_calls").and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        let function = call.get("function").unwrap_or(&Value::Null);
        let call = Call {
            call_id: string_at(call, "id"),
            name: string_at(function, "name"),
            arguments: string_at(function, "arguments"),
        };
        output.push(call_item(
            frame.item_id("fc", output.len()),
            &call,
            "completed",
        ));
    }
    let model = completion["model"].as_str().unwrap_or_default();
    let finish = choice["finish_reason"].as_str();
    Ok(frame.response(
        status(finish),
        model,
        output,
        usage(completion.get("usage")),
    ))
}

fn string_at(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A function call being streamed.
struct Call {
    call_id: String,
    name: String,
    arguments: String,
}

/// The output item open in the stream being written.
enum Open {
    /// A message, its one part and its text so far.
    Text(Part, String),
    /// A function call, with the chat index of its tool call.
    Call(Call, u64),
}

/// State for chat chunks in, Responses events out.
pub struct ToResponses {
    frame: ResponseFrame,
    sequence: u64,
    started: bool,
    model: String,
    /// Finished output items.
    output: Vec<Value>,
    open: Option<Open>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    /// The final response object, once the stream completed.
    completed: Option<Value>,
}

impl ToResponses {
    pub fn new(frame: ResponseFrame) -> Self {
        Self {
            frame,
            sequence: 0,
            started: false,
            model: String::new(),
            output: Vec::new(),
            open: None,
            finish_reason: None,
            usage: None,
            completed: None,
        }
    }

    /// The final response object, once `response.completed` (or `.incomplete`) was written.
    pub fn completed(&self) -> Option<&Value> {
        self.completed.as_ref()
    }

    fn emit(&mut self, kind: &str, mut data: Value, out: &mut String) {
        data["type"] = kind.into();
        data["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        out.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
    }

    /// One chat chunk.
    pub fn chunk(&mut self, chunk: &Value, out: &mut String) {
        if let Some(model) = chunk.get("model").and_then(Value::as_str)
            && self.model.is_empty()
        {
            self.model = model.to_string();
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        let Some(choice) = choice else {
            return;
        };
        self.start(out);
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        for (key, part) in [("content", Part::Text), ("refusal", Part::Refusal)] {
            if let Some(text) = delta.get(key).and_then(Value::as_str)
                && !text.is_empty()
            {
                self.text(part, text, out);
            }
        }
        let calls = delta.get("tool_calls").and_then(Value::as_array);
        for call in calls.into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
    }

    /// `response.created` and `response.in_progress`, before anything else.
    fn start(&mut self, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self
            .frame
            .response("in_progress", &self.model, Vec::new(), Value::Null);
        self.emit("response.created", json!({"response": response}), out);
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    fn item_id(&self) -> String {
        let prefix = match self.open {
            Some(Open::Call(..)) => "fc",
            _ => "msg",
        };
        self.frame.item_id(prefix, self.output.len())
    }

    fn text(&mut self, part: Part, text: &str, out: &mut String) {
        if !matches!(self.open, Some(Open::Text(open, _)) if open == part) {
            self.close(out);
            self.open = Some(Open::Text(part, String::new()));
            let (id, index) = (self.item_id(), self.output.len());
            let item = message_item(id.clone(), part, "", "in_progress");
            self.emit(
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
                out,
            );
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": part.json("")}),
                out,
            );
        }
        if let Some(Open::Text(_, all)) = &mut self.open {
            all.push_str(text);
        }
        let (id, index) = (self.item_id(), self.output.len());
        let mut delta =
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text});
        if part == Part::Text {
            delta["logprobs"] = json!([]);
        }
        self.emit(part.events().0, delta, out);
    }

    fn tool_call(&mut self, call: &Value, out: &mut String) {
        let chat_index = call["index"].as_u64().unwrap_or(0);
        let function = call.get("function").unwrap_or(&Value::Null);
        let id = call.get("id").and_then(Value::as_str);
        let continues = match &self.open {
            Some(Open::Call(open, i)) => *i == chat_index && id.is_none_or(|id| id == open.call_id),
            _ => false,
        };
        if !continues {
            self.close(out);
            let started = Call {
                call_id: id.unwrap_or_default().to_string(),
                name: string_at(function, "name"),
                arguments: String::new(),
            };
            let index = self.output.len();
            let item = call_item(self.frame.item_id("fc", index), &started, "in_progress");
            self.open = Some(Open::Call(started, chat_index));
            self.emit(
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
                out,
            );
        }
        let piece = function["arguments"].as_str().unwrap_or_default();
        if piece.is_empty() {
            return;
        }
        if let Some(Open::Call(open, _)) = &mut self.open {
            open.arguments.push_str(piece);
        }
        let (id, index) = (self.item_id(), self.output.len());
        self.emit(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": piece}),
            out,
        );
    }

    /// Close the open item: its `.done` events, and it joins the output.
    fn close(&mut self, out: &mut String) {
        let (id, index) = (self.item_id(), self.output.len());
        let item = match self.open.take() {
            None => return,
            Some(Open::Text(part, text)) => {
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                let (_, done_event, field) = part.events();
                let mut done = at.clone();
                done[field] = text.clone().into();
                if part == Part::Text {
                    done["logprobs"] = json!([]);
                }
                self.emit(done_event, done, out);
                let mut content = at;
                content["part"] = part.json(&text);
                self.emit("response.content_part.done", content, out);
                message_item(id, part, &text, "completed")
            }
            Some(Open::Call(call, _)) => {
                let done = json!({"item_id": id, "output_index": index,
                    "name": call.name, "arguments": call.arguments});
                self.emit("response.function_call_arguments.done", done, out);
                call_item(id, &call, "completed")
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
        self.output.push(item);
    }

    /// The chat stream's end (`data: [DONE]`): the open item closes and the response completes.
    pub fn done(&mut self, out: &mut String) {
        self.start(out);
        self.close(out);
        let status = status(self.finish_reason.as_deref());
        let response = self.frame.response(
            status,
            &self.model,
            std::mem::take(&mut self.output),
            usage(self.usage.as_ref()),
        );
        let kind = match status {
            "incomplete" => "response.incomplete",
            _ => "response.completed",
        };
        self.emit(kind, json!({"response": response}), out);
        self.completed = Some(response);
    }

    /// An error event, from the upstream or the proxy: the SDKs raise it.
    pub fn error(&mut self, code: &str, message: &str, out: &mut String) {
        let data = error_data(code, message);
        self.emit("error", data, out);
    }
}

/// An `error` event's data: the Responses API's fields, and the `error` object the OpenAI SDKs
/// raise an exception for.
pub fn error_data(code: &str, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "param": null,
        "error": {"type": "server_error", "code": code, "message": message, "param": null},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> ResponseFrame {
        ResponseFrame::new(
            "resp_abc".into(),
            7,
            br#"{"model":"auto","input":"x","instructions":"Be brief.","store":false}"#,
        )
    }

    #[test]
    fn a_completion_becomes_a_response() {
        let completion = json!({
            "id": "chatcmpl-1", "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}}
        });
        let r = completion_to_response(&completion, &frame()).unwrap();
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(
            (r["status"].as_str(), r["model"].as_str()),
            (Some("completed"), Some("gpt-x"))
        );
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["store"], false);
        assert_eq!(r["tool_choice"], "auto");
        assert_eq!(
            r["output"],
            json!([
                {"id": "msg_abc_0", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
                {"id": "fc_abc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
                 "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
            ])
        );
        assert_eq!(r["usage"]["input_tokens"], 12);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(r["usage"]["total_tokens"], 16);
        let cut = json!({"model": "m", "choices": [{"finish_reason": "length", "message": {"content": "abc"}}]});
        let r = completion_to_response(&cut, &frame()).unwrap();
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert!(completion_to_response(&json!({"x": 1}), &frame()).is_err());
    }

    fn events(out: &str) -> Vec<Value> {
        out.split_terminator("\n\n")
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(name.strip_prefix("event: "), data["type"].as_str());
                data
            })
            .collect()
    }

    #[test]
    fn chunks_become_typed_events_in_order() {
        let mut state = ToResponses::new(frame());
        let mut out = String::new();
        let chunks = [
            json!({"model": "gpt-x", "choices": [{"delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"delta": {"content": "Hel"}}]}),
            json!({"choices": [{"delta": {"content": "lo"}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        ];
        for chunk in &chunks {
            state.chunk(chunk, &mut out);
        }
        state.done(&mut out);
        let events = events(&out);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let numbers: Vec<u64> = events
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..14).collect::<Vec<_>>());
        assert_eq!(events[6]["text"], "Hello");
        assert_eq!(events[9]["output_index"], 1);
        assert_eq!(events[11]["arguments"], "{}");
        let done = &events[13]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["call_id"], "call_1");
        assert_eq!(done["usage"]["output_tokens"], 2);
        assert_eq!(state.completed(), Some(done));
    }

    #[test]
    fn a_refusal_is_a_refusal_part() {
        let completion = json!({"model": "m", "choices": [{"finish_reason": "stop",
            "message": {"role": "assistant", "content": "", "refusal": "I cannot help with that."}}]});
        let r = completion_to_response(&completion, &frame()).unwrap();
        assert_eq!(
            r["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I cannot help with that."}])
        );
        let mut state = ToResponses::new(frame());
        let mut out = String::new();
        state.chunk(
            &json!({"model": "m", "choices": [{"delta": {"refusal": "No."}}]}),
            &mut out,
        );
        state.done(&mut out);
        let events = events(&out);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(
            kinds.contains(&"response.refusal.delta") && kinds.contains(&"response.refusal.done"),
            "{kinds:?}"
        );
        assert_eq!(
            events.last().unwrap()["response"]["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "No."}])
        );
    }

    #[test]
    fn an_error_event_carries_what_the_sdks_raise() {
        let mut state = ToResponses::new(frame());
        let mut out = String::new();
        state.error("upstream_stream_cut", "broke", &mut out);
        let event = &events(&out)[0];
        assert_eq!(event["code"], "upstream_stream_cut");
        assert_eq!(event["error"]["message"], "broke");
    }
}
