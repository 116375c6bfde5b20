//! A Responses API request body for an upstream that does not serve it, or that must be told the
//! whole conversation: as an OpenAI chat-completions body, as an Anthropic Messages body (by way
//! of chat completions), or as a Responses body whose earlier turns, kept by the proxy, are
//! written into its `input`.
//!
//! `instructions` becomes the first (system) message; `input` items become messages (message
//! items with their text and image parts, `function_call` items the assistant's tool calls,
//! `function_call_output` items tool results); function `tools`, `tool_choice`,
//! `parallel_tool_calls`, `max_output_tokens`, `temperature`, `top_p`, `text.format`,
//! `reasoning.effort`, `metadata`, `user` and `stream` have chat counterparts. Reasoning items
//! are dropped (they are the upstream's own notes, which another model cannot read), as are
//! `store`, `include` and `previous_response_id` (the proxy keeps the conversation). What chat
//! completions cannot say (built-in tools such as web or file search, `background`, a prompt
//! template, file inputs, item references, ...) is refused with a 400 naming the client's
//! field. Pure functions over bytes; no I/O.

use serde_json::{Map, Value, json};

use super::fields::{array, boolean, invalid, kind, object, parse_object, string};
use super::{Wire, openai_to_anthropic, to_bytes};
use crate::api::{ApiError, History};

const TO_CHAT: &str = "cannot be translated for a model without the Responses API";

/// A Responses request `body` (continuing `history`, when the proxy keeps the conversation) for
/// an upstream speaking `to`, naming `model`, with the output cap `cap`.
pub fn from_responses(
    body: &[u8],
    history: Option<&History>,
    to: Wire,
    model: &str,
    cap: Option<u32>,
) -> Result<Vec<u8>, ApiError> {
    let mut request = parse_object(body)?;
    if let Some(history) = history {
        let mut items: Vec<Value> = serde_json::from_slice(&history.items).unwrap_or_default();
        items.extend(input_items(request.remove("input").unwrap_or(Value::Null)));
        request.insert("input".into(), Value::Array(items));
        request.remove("previous_response_id");
    }
    match to {
        Wire::Responses => {
            request.insert("model".into(), model.into());
            if let Some(cap) = cap {
                request.insert("max_output_tokens".into(), cap.into());
            }
            Ok(to_bytes(&Value::Object(request)))
        }
        Wire::Openai => Ok(to_bytes(&to_chat(&request, model, cap)?)),
        Wire::Anthropic => {
            let mut chat = to_chat(&request, model, cap)?;
            // Caching and abuse-tracking hints that Anthropic has no place for.
            if let Some(chat) = chat.as_object_mut() {
                chat.remove("prompt_cache_key");
                chat.remove("safety_identifier");
            }
            let chat = to_bytes(&chat);
            openai_to_anthropic(&chat, model, cap).map_err(in_responses_terms)
        }
    }
}

/// `input` as a list of items: a string is one user message.
pub fn input_items(input: Value) -> Vec<Value> {
    match input {
        Value::String(text) => vec![json!({"type": "message", "role": "user", "content": text})],
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// An error about the chat body made from a Responses request, naming the Responses field the
/// chat field came from.
fn in_responses_terms(mut error: ApiError) -> ApiError {
    let Some(param) = error.param.clone() else {
        return error;
    };
    let field = match param.as_str() {
        "response_format" => "text.format",
        "verbosity" => "text.verbosity",
        "reasoning_effort" => "reasoning.effort",
        "max_completion_tokens" => "max_output_tokens",
        p if p.starts_with("messages") => "input",
        _ => return error,
    };
    error.message = error
        .message
        .replacen(&format!("`{param}`"), &format!("`{field}`"), 1);
    error.param = Some(field.to_string());
    error
}

/// The chat-completions body for a Responses request.
fn to_chat(request: &Map<String, Value>, model: &str, cap: Option<u32>) -> Result<Value, ApiError> {
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let mut messages = Vec::new();
    if let Some(instructions) = request.get("instructions").filter(|v| !v.is_null()) {
        let text = string(instructions, "instructions")?;
        messages.push(json!({"role": "system", "content": text}));
    }
    for (key, value) in request {
        if !value.is_null() {
            field_to_chat(key, value, &mut out, &mut messages)?;
        }
    }
    if let Some(cap) = cap {
        out.insert("max_completion_tokens".into(), cap.into());
    }
    if out.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(out))
}

/// One top-level field of a Responses request into the chat body `out` (or its `messages`).
fn field_to_chat(
    key: &str,
    value: &Value,
    out: &mut Map<String, Value>,
    messages: &mut Vec<Value>,
) -> Result<(), ApiError> {
    match key {
        "model"
        | "instructions"
        | "store"
        | "include"
        | "previous_response_id"
        | "max_output_tokens" => {}
        "input" => items_to_messages(&input_items(value.clone()), messages)?,
        "temperature"
        | "top_p"
        | "metadata"
        | "user"
        | "service_tier"
        | "parallel_tool_calls"
        | "safety_identifier"
        | "prompt_cache_key" => {
            out.insert(key.into(), value.clone());
        }
        "stream" => {
            if boolean(value, key)? {
                out.insert("stream".into(), true.into());
            }
        }
        "tools" => {
            let tools = array(value, key)?
                .iter()
                .enumerate()
                .map(|(i, tool)| tool_to_chat(tool, &format!("tools[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            if !tools.is_empty() {
                out.insert("tools".into(), Value::Array(tools));
            }
        }
        "tool_choice" => {
            out.insert(key.into(), tool_choice_to_chat(value)?);
        }
        "text" => text_to_chat(value, out)?,
        "reasoning" => {
            if let Some(effort) = object(value, key)?.get("effort").filter(|e| !e.is_null()) {
                out.insert("reasoning_effort".into(), effort.clone());
            }
        }
        "background" | "truncation" if value == false || value == "disabled" => {}
        "top_logprobs" if value == 0 => {}
        _ => return Err(invalid(key, TO_CHAT)),
    }
    Ok(())
}

/// A function tool in chat's shape; a built-in tool is refused.
fn tool_to_chat(tool: &Value, param: &str) -> Result<Value, ApiError> {
    match kind(tool, param)? {
        "function" => {
            let mut function = Map::new();
            for key in ["name", "description", "parameters", "strict"] {
                if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                    function.insert(key.into(), v.clone());
                }
            }
            if !function.contains_key("name") {
                return Err(invalid(&format!("{param}.name"), "is required"));
            }
            Ok(json!({"type": "function", "function": function}))
        }
        other => Err(invalid(
            &format!("{param}.type"),
            &format!("`{other}`: a built-in tool {TO_CHAT}"),
        )),
    }
}

fn tool_choice_to_chat(value: &Value) -> Result<Value, ApiError> {
    match value {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Ok(value.clone())
        }
        Value::Object(choice) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = choice
                .get("name")
                .ok_or_else(|| invalid("tool_choice.name", "is required"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid("tool_choice", TO_CHAT)),
    }
}

/// `text.format` as chat's `response_format`, `text.verbosity` as `verbosity`.
fn text_to_chat(value: &Value, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let text = object(value, "text")?;
    if let Some(verbosity) = text.get("verbosity").filter(|v| !v.is_null()) {
        out.insert("verbosity".into(), verbosity.clone());
    }
    let Some(format) = text.get("format").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let format = match kind(format, "text.format")? {
        "text" => return Ok(()),
        "json_object" => json!({"type": "json_object"}),
        "json_schema" => {
            let mut schema = Map::new();
            for key in ["name", "description", "schema", "strict"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            json!({"type": "json_schema", "json_schema": schema})
        }
        _ => return Err(invalid("text.format.type", TO_CHAT)),
    };
    out.insert("response_format".into(), format);
    Ok(())
}

/// Input items as chat messages; consecutive tool calls join the assistant message before them.
fn items_to_messages(items: &[Value], messages: &mut Vec<Value>) -> Result<(), ApiError> {
    for (i, item) in items.iter().enumerate() {
        let param = format!("input[{i}]");
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => messages.push(message_to_chat(item, &param)?),
            "function_call" => {
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": item.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": item.get("arguments").cloned().unwrap_or_else(|| "".into()),
                    },
                });
                push_tool_call(messages, call);
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(parts)) => text_parts(parts, &format!("{param}.output"))?,
                    _ => String::new(),
                };
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "content": output,
                }));
            }
            "reasoning" => {}
            other => {
                return Err(invalid(
                    &format!("{param}.type"),
                    &format!("`{other}`: this item {TO_CHAT}"),
                ));
            }
        }
    }
    Ok(())
}

/// Add a tool call to the assistant message at the end, or start one.
fn push_tool_call(messages: &mut Vec<Value>, call: Value) {
    if let Some(last) = messages.last_mut()
        && last["role"] == "assistant"
    {
        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
            Some(calls) => calls.push(call),
            None => last["tool_calls"] = json!([call]),
        }
        return;
    }
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
}

/// A message item as a chat message: text parts as text, images as image parts.
fn message_to_chat(item: &Value, param: &str) -> Result<Value, ApiError> {
    let role = string(
        item.get("role").unwrap_or(&Value::Null),
        &format!("{param}.role"),
    )?;
    let content = match item.get("content") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(parts)) if role == "assistant" => {
            Value::String(text_parts(parts, &format!("{param}.content"))?)
        }
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .enumerate()
                .map(|(j, part)| part_to_chat(part, &format!("{param}.content[{j}]")))
                .collect::<Result<_, _>>()?,
        ),
        _ => Value::String(String::new()),
    };
    Ok(json!({"role": role, "content": content}))
}

/// The text of content parts, joined; a part without text is refused.
fn text_parts(parts: &[Value], param: &str) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{param}[{j}]");
        match kind(part, &param)? {
            "input_text" | "output_text" | "text" => {
                text.push_str(part["text"].as_str().unwrap_or_default());
            }
            "refusal" => text.push_str(part["refusal"].as_str().unwrap_or_default()),
            other => {
                return Err(invalid(
                    &format!("{param}.type"),
                    &format!("`{other}` {TO_CHAT}"),
                ));
            }
        }
    }
    Ok(text)
}

/// A user-side content part in chat's shape.
fn part_to_chat(part: &Value, param: &str) -> Result<Value, ApiError> {
    match kind(part, param)? {
        "input_text" | "output_text" | "text" => {
            Ok(json!({"type": "text", "text": part["text"].as_str().unwrap_or_default()}))
        }
        "input_image" => {
            let url = part
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&format!("{param}.image_url"), TO_CHAT))?;
            let mut image = json!({"url": url});
            if let Some(detail) = part.get("detail").filter(|d| !d.is_null()) {
                image["detail"] = detail.clone();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        other => Err(invalid(
            &format!("{param}.type"),
            &format!("`{other}` {TO_CHAT}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<Value, ApiError> {
        let bytes = from_responses(body.to_string().as_bytes(), None, Wire::Openai, "gpt", None)?;
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn a_request_becomes_a_chat_body() {
        let out = chat(json!({
            "model": "auto", "instructions": "Be brief.", "stream": true, "store": false,
            "max_output_tokens": 99, "temperature": 0.2, "include": ["reasoning.encrypted_content"],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
            "reasoning": {"effort": "low"},
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": "data:x", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "let me look"}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{\"x\":1}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
            ]
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "model": "gpt", "stream": true, "stream_options": {"include_usage": true},
                "temperature": 0.2, "reasoning_effort": "low",
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": true}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:x", "detail": "low"}}]},
                    {"role": "assistant", "content": "let me look", "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"x\":1}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
                ]
            })
        );
    }

    #[test]
    fn what_chat_cannot_say_is_refused_by_name() {
        let cases = [
            (
                json!({"input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (json!({"input": "x", "background": true}), "background"),
            (json!({"input": "x", "prompt": {"id": "p"}}), "prompt"),
            (
                json!({"input": [{"type": "item_reference", "id": "i"}]}),
                "input[0].type",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
                "input[0].content[0].type",
            ),
            (
                json!({"input": "x", "tool_choice": {"type": "web_search"}}),
                "tool_choice",
            ),
        ];
        for (body, param) in cases {
            let e = chat(body.clone()).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }

    #[test]
    fn anthropic_refusals_name_the_responses_field() {
        let body = json!({"input": "x", "text": {"format": {"type": "json_schema", "name": "w", "schema": {}}}});
        let e = from_responses(
            body.to_string().as_bytes(),
            None,
            Wire::Anthropic,
            "c",
            None,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("text.format"), "{}", e.message);
        assert!(e.message.contains("`text.format`"), "{}", e.message);
        let out = from_responses(
            br#"{"input":"hi","instructions":"sys"}"#,
            None,
            Wire::Anthropic,
            "c",
            Some(9),
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out,
            json!({"model": "c", "max_tokens": 9, "system": "sys", "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn history_is_written_before_the_new_input() {
        let history = History {
            items: bytes::Bytes::from(
                json!([{"type": "message", "role": "user", "content": "a"},
                       {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "b"}]}])
                .to_string(),
            ),
        };
        let body = br#"{"model":"m","input":"c","previous_response_id":"resp_1"}"#;
        let native: Value = serde_json::from_slice(
            &from_responses(body, Some(&history), Wire::Responses, "up", Some(5)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            native,
            json!({"model": "up", "max_output_tokens": 5, "input": [
                {"type": "message", "role": "user", "content": "a"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "b"}]},
                {"type": "message", "role": "user", "content": "c"}
            ]})
        );
        let chat: Value = serde_json::from_slice(
            &from_responses(body, Some(&history), Wire::Openai, "up", None).unwrap(),
        )
        .unwrap();
        assert_eq!(
            chat["messages"],
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}])
        );
    }
}
