//! The mock's `Assistant` behaviour: a tiny agent that answers in the API its path names (chat
//! completions, Anthropic Messages, the Responses API), whole or streamed, so that SDKs can hold
//! a whole conversation through the proxy.
//!
//! It always decides the same way, from the request: after a tool result it answers
//! `It is {result} in Paris.`; when tools are declared it calls the first one with
//! `{"city":"Paris"}`; when structured output is asked for it answers [`WEATHER_JSON`]; otherwise
//! `Hello from {name}.`. Usage is 11 input and 7 output tokens. As a Responses API server it keeps
//! the responses it made: a follow-up naming one it does not hold (`previous_response_id`) gets
//! OpenAI's 400, and `GET /responses/{id}` reads one back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The structured answer to a request for JSON output.
pub const WEATHER_JSON: &str = r#"{"city":"Paris","temperature_c":21}"#;

/// What the assistant says.
enum Say {
    Text(String),
    /// A call of this tool, with these arguments.
    Call(String, String),
}

/// The responses a Responses API mock made, by id.
#[derive(Default)]
pub struct Kept {
    responses: Mutex<HashMap<String, Value>>,
}

/// The assistant's answer to `body` received on `path`.
pub fn answer(name: &str, path: &str, body: &Value, kept: &Kept) -> Response {
    let stream = body["stream"] == true;
    if path.ends_with("/responses") {
        return responses(name, body, stream, kept);
    }
    if path.ends_with("/messages") {
        let say = decide(
            name,
            tools(&body["tools"], false),
            anthropic_tool_result(body),
            false,
        );
        return match stream {
            false => json_answer(message(name, body, &say)),
            true => sse(message_events(name, body, &say)),
        };
    }
    let say = decide(
        name,
        tools(&body["tools"], true),
        chat_tool_result(body),
        body["response_format"]["type"] == "json_schema",
    );
    match stream {
        false => json_answer(completion(name, body, &say)),
        true => sse(chunks(name, body, &say)),
    }
}

/// `GET /responses/{id}`: a response this mock made.
pub fn retrieve(id: &str, kept: &Kept) -> Response {
    match kept.responses.lock().unwrap().get(id) {
        Some(response) => json_answer(response.clone()),
        None => error(
            404,
            "invalid_request_error",
            None,
            &format!("No response with id '{id}'."),
        ),
    }
}

fn decide(name: &str, tools: Vec<String>, result: Option<String>, schema: bool) -> Say {
    match (result, tools.first(), schema) {
        (Some(result), _, _) => Say::Text(format!("It is {result} in Paris.")),
        (None, Some(tool), _) => Say::Call(tool.clone(), r#"{"city":"Paris"}"#.into()),
        (None, None, true) => Say::Text(WEATHER_JSON.into()),
        (None, None, false) => Say::Text(format!("Hello from {name}.")),
    }
}

/// The names of the declared function tools.
fn tools(list: &Value, chat: bool) -> Vec<String> {
    let names = list.as_array().into_iter().flatten().filter_map(|tool| {
        let name = if chat {
            &tool["function"]["name"]
        } else {
            &tool["name"]
        };
        name.as_str().map(str::to_string)
    });
    names.collect()
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn chat_tool_result(body: &Value) -> Option<String> {
    let last = body["messages"].as_array()?.last()?;
    (last["role"] == "tool").then(|| text_of(&last["content"]))
}

fn anthropic_tool_result(body: &Value) -> Option<String> {
    let last = body["messages"].as_array()?.last()?;
    let blocks = last["content"].as_array()?;
    let result = blocks.iter().find(|b| b["type"] == "tool_result")?;
    Some(text_of(&result["content"]))
}

const USAGE_IN: u64 = 11;
const USAGE_OUT: u64 = 7;

fn json_answer(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn sse(events: Vec<String>) -> Response {
    let events = futures_util::stream::iter(
        events
            .into_iter()
            .map(|e| Ok::<_, Infallible>(Bytes::from(e))),
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(events))
        .expect("response")
}

fn error(status: u16, kind: &str, param: Option<&str>, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": null}});
    let status = StatusCode::from_u16(status).expect("status");
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A text in two pieces, as a stream sends it.
fn pieces(text: &str) -> [&str; 2] {
    let mid = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    [&text[..mid], &text[mid..]]
}

fn completion(name: &str, body: &Value, say: &Say) -> Value {
    let (message, finish) = match say {
        Say::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Say::Call(tool, args) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{name}_1"),
                "type": "function", "function": {"name": tool, "arguments": args}}]}),
            "tool_calls",
        ),
    };
    json!({
        "id": format!("chatcmpl-{name}"), "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT},
    })
}

fn chunks(name: &str, body: &Value, say: &Say) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({"id": format!("chatcmpl-{name}"), "object": "chat.completion.chunk", "created": 1,
            "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let finish = match say {
        Say::Text(text) => {
            events.extend(pieces(text).map(|p| chunk(json!({"content": p}), Value::Null)));
            "stop"
        }
        Say::Call(tool, args) => {
            let start = json!({"tool_calls": [{"index": 0, "id": format!("call_{name}_1"), "type": "function",
                "function": {"name": tool, "arguments": ""}}]});
            events.push(chunk(start, Value::Null));
            for piece in pieces(args) {
                let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
                events.push(chunk(delta, Value::Null));
            }
            "tool_calls"
        }
    };
    events.push(chunk(json!({}), finish.into()));
    if body["stream_options"]["include_usage"] == true {
        let usage = json!({"id": format!("chatcmpl-{name}"), "object": "chat.completion.chunk", "created": 1,
            "model": body["model"], "choices": [],
            "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT}});
        events.push(format!("data: {usage}\n\n"));
    }
    events.push("data: [DONE]\n\n".into());
    events
}

fn message(name: &str, body: &Value, say: &Say) -> Value {
    let (block, stop) = match say {
        Say::Text(text) => (json!({"type": "text", "text": text}), "end_turn"),
        Say::Call(tool, args) => (
            json!({"type": "tool_use", "id": format!("toolu_{name}_1"), "name": tool,
                "input": serde_json::from_str::<Value>(args).unwrap()}),
            "tool_use",
        ),
    };
    json!({
        "id": format!("msg_{name}"), "type": "message", "role": "assistant", "model": body["model"],
        "content": [block], "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
    })
}

fn message_events(name: &str, body: &Value, say: &Say) -> Vec<String> {
    let event = |kind: &str, data: Value| format!("event: {kind}\ndata: {data}\n\n");
    let start = json!({"type": "message_start", "message": {"id": format!("msg_{name}"), "type": "message",
        "role": "assistant", "model": body["model"], "content": [], "stop_reason": null,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}});
    let mut events = vec![event("message_start", start)];
    let (block, deltas, stop): (Value, Vec<Value>, &str) = match say {
        Say::Text(text) => (
            json!({"type": "text", "text": ""}),
            pieces(text)
                .iter()
                .map(|p| json!({"type": "text_delta", "text": p}))
                .collect(),
            "end_turn",
        ),
        Say::Call(tool, args) => (
            json!({"type": "tool_use", "id": format!("toolu_{name}_1"), "name": tool, "input": {}}),
            pieces(args)
                .iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect(),
            "tool_use",
        ),
    };
    events.push(event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": block}),
    ));
    for delta in deltas {
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event("message_delta", json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": USAGE_OUT}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}

/// The Responses API: the conversation is this request's input after the kept response it
/// continues.
fn responses(name: &str, body: &Value, stream: bool, kept: &Kept) -> Response {
    let previous = body["previous_response_id"].as_str();
    if let Some(id) = previous
        && !kept.responses.lock().unwrap().contains_key(id)
    {
        let message = format!("Previous response with id '{id}' not found.");
        return error(
            400,
            "invalid_request_error",
            Some("previous_response_id"),
            &message,
        );
    }
    let input = match &body["input"] {
        Value::String(text) => vec![json!({"type": "message", "role": "user", "content": text})],
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    };
    let result = input
        .last()
        .filter(|item| item["type"] == "function_call_output")
        .map(|item| text_of(&item["output"]));
    let schema = body["text"]["format"]["type"] == "json_schema";
    let say = decide(name, tools(&body["tools"], false), result, schema);
    let mut kept_now = kept.responses.lock().unwrap();
    let id = format!("resp_{name}_{}", kept_now.len() + 1);
    let item = match &say {
        Say::Text(text) => {
            json!({"id": format!("msg_{id}"), "type": "message", "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]})
        }
        Say::Call(tool, args) => {
            json!({"id": format!("fc_{id}"), "type": "function_call", "status": "completed",
            "call_id": format!("call_{name}_1"), "name": tool, "arguments": args})
        }
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response", "created_at": 1, "status": status, "error": null,
            "incomplete_details": null, "model": body["model"], "output": output, "usage": usage,
            "previous_response_id": previous, "tools": body["tools"], "parallel_tool_calls": true,
            "tool_choice": "auto", "text": body["text"]})
    };
    let usage = json!({"input_tokens": USAGE_IN, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": USAGE_OUT, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": USAGE_IN + USAGE_OUT});
    let done = response("completed", json!([item]), usage);
    kept_now.insert(id.clone(), done.clone());
    drop(kept_now);
    if !stream {
        return json_answer(done);
    }
    let mut sequence = 0;
    let mut event = |kind: &str, mut data: Value| {
        data["type"] = kind.into();
        data["sequence_number"] = sequence.into();
        sequence += 1;
        format!("event: {kind}\ndata: {data}\n\n")
    };
    let started = response("in_progress", json!([]), Value::Null);
    let mut events = vec![
        event("response.created", json!({"response": started})),
        event("response.in_progress", json!({"response": started})),
    ];
    let item_id = item["id"].clone();
    let mut open = item.clone();
    open["status"] = "in_progress".into();
    match &say {
        Say::Text(text) => {
            open["content"] = json!([]);
            events.push(event(
                "response.output_item.added",
                json!({"output_index": 0, "item": open}),
            ));
            let at = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
            let mut added = at.clone();
            added["part"] = json!({"type": "output_text", "text": "", "annotations": []});
            events.push(event("response.content_part.added", added));
            for piece in pieces(text) {
                let mut delta = at.clone();
                delta["delta"] = piece.into();
                events.push(event("response.output_text.delta", delta));
            }
            let mut done_text = at.clone();
            done_text["text"] = text.as_str().into();
            events.push(event("response.output_text.done", done_text));
            let mut part = at;
            part["part"] = item["content"][0].clone();
            events.push(event("response.content_part.done", part));
        }
        Say::Call(_, args) => {
            open["arguments"] = "".into();
            events.push(event(
                "response.output_item.added",
                json!({"output_index": 0, "item": open}),
            ));
            for piece in pieces(args) {
                let delta = json!({"item_id": item_id, "output_index": 0, "delta": piece});
                events.push(event("response.function_call_arguments.delta", delta));
            }
            let finished = json!({"item_id": item_id, "output_index": 0, "arguments": args});
            events.push(event("response.function_call_arguments.done", finished));
        }
    }
    events.push(event(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    ));
    events.push(event("response.completed", json!({"response": done})));
    sse(events)
}
