//! AWS Bedrock's Converse API, reached by way of Anthropic Messages: a Messages body becomes a
//! Converse body, and a Converse answer, error or stream event becomes its Messages counterpart.
//!
//! Converse and Messages share their shape (a system prompt apart, alternating user and
//! assistant turns of content blocks, tool use and results as blocks), so a client speaking
//! either API reaches Bedrock through the existing OpenAI-Anthropic translation plus this one.
//! What Converse cannot express (an image or document by URL, a server-side tool, a request to
//! make at most one tool call) is refused with a 400 naming the field of the Messages body.
//! Pure functions over bytes and `serde_json` values; nothing does I/O.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::fields::{
    array, base64_source, custom_tools, invalid, kind, object, parse_object, required_string,
};
use super::sse_event as sse;
use crate::api::ApiError;

const TO_CONVERSE: &str = "cannot be sent to a Bedrock model (Converse API)";

/// A Messages body rewritten as a Converse body (the model is in the URL, not the body).
pub fn anthropic_to_converse(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let request = parse_object(body)?;
    let claude = request
        .get("model")
        .and_then(Value::as_str)
        .is_some_and(|model| model.contains("anthropic."));
    let mut out = Map::new();
    let mut inference = Map::new();
    let mut additional = Map::new();
    let mut tools = None;
    let mut choice = None;
    for (key, value) in &request {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "stream" | "service_tier" => {}
            "max_tokens" => {
                inference.insert("maxTokens".into(), value.clone());
            }
            "temperature" => {
                inference.insert("temperature".into(), value.clone());
            }
            "top_p" => {
                inference.insert("topP".into(), value.clone());
            }
            "stop_sequences" => {
                inference.insert("stopSequences".into(), value.clone());
            }
            // Claude's own fields, which Bedrock passes to Anthropic's models alone.
            "top_k" | "thinking" if claude => {
                additional.insert(key.clone(), value.clone());
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").and_then(Value::as_str) {
                    out.insert("requestMetadata".into(), json!({"user_id": user}));
                }
            }
            "system" => {
                out.insert("system".into(), Value::Array(system(value)?));
            }
            "messages" => {
                out.insert("messages".into(), Value::Array(messages(value)?));
            }
            "tools" => tools = Some(tool_specs(value)?),
            "tool_choice" => choice = Some(value),
            _ => return Err(invalid(key, TO_CONVERSE)),
        }
    }
    if !out.contains_key("messages") {
        return Err(invalid("messages", "is required"));
    }
    if let Some(config) = tool_config(tools, choice, &out["messages"])? {
        out.insert("toolConfig".into(), config);
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if !additional.is_empty() {
        out.insert(
            "additionalModelRequestFields".into(),
            Value::Object(additional),
        );
    }
    Ok(super::to_bytes(&Value::Object(out)))
}

/// A cache breakpoint after a block that carries `cache_control`.
fn cache_point(block: &Value, out: &mut Vec<Value>) {
    if block.get("cache_control").is_some_and(|c| !c.is_null()) {
        out.push(json!({"cachePoint": {"type": "default"}}));
    }
}

fn system(value: &Value) -> Result<Vec<Value>, ApiError> {
    if let Value::String(text) = value {
        return Ok(vec![json!({"text": text})]);
    }
    let mut out = Vec::new();
    for (i, block) in array(value, "system")?.iter().enumerate() {
        let param = format!("system[{i}]");
        match kind(block, &param)? {
            "text" => out.push(json!({"text": required_string(block, "text", &param)?})),
            other => return Err(invalid(&param, &format!("of type `{other}` {TO_CONVERSE}"))),
        }
        cache_point(block, &mut out);
    }
    Ok(out)
}

fn messages(value: &Value) -> Result<Vec<Value>, ApiError> {
    let list = array(value, "messages")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, message) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        object(message, &param)?;
        let role = required_string(message, "role", &param)?;
        if !matches!(role, "user" | "assistant") {
            return Err(invalid(
                &format!("{param}.role"),
                "must be user or assistant",
            ));
        }
        let content_param = format!("{param}.content");
        let content = match message.get("content") {
            Some(Value::String(text)) => vec![json!({"text": text})],
            Some(Value::Array(blocks)) => content_blocks(blocks, &content_param)?,
            _ => {
                return Err(invalid(
                    &content_param,
                    "must be a string or an array of content blocks",
                ));
            }
        };
        out.push(json!({"role": role, "content": content}));
    }
    Ok(out)
}

fn content_blocks(blocks: &[Value], param: &str) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{param}[{j}]");
        out.push(content_block(block, &param)?);
        cache_point(block, &mut out);
    }
    Ok(out)
}

/// A document's name as Converse allows it (letters, digits, single spaces, hyphens,
/// parentheses and square brackets), made from its title.
fn document_name(title: &str) -> String {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']');
    let name = title
        .split(|c: char| !allowed(c))
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        "document".into()
    } else {
        name
    }
}

/// One Messages content block as a Converse content block.
fn content_block(block: &Value, param: &str) -> Result<Value, ApiError> {
    Ok(match kind(block, param)? {
        "text" => json!({"text": required_string(block, "text", param)?}),
        "image" => {
            let (media_type, data) =
                base64_source(block, param, "a Bedrock model, which takes no URLs")?;
            let format = media_type
                .strip_prefix("image/")
                .filter(|f| matches!(*f, "png" | "jpeg" | "gif" | "webp"))
                .ok_or_else(|| {
                    invalid(
                        &format!("{param}.source.media_type"),
                        "must be image/png, image/jpeg, image/gif or image/webp for a Bedrock model",
                    )
                })?;
            json!({"image": {"format": format, "source": {"bytes": data}}})
        }
        "document" => {
            let (media_type, data) =
                base64_source(block, param, "a Bedrock model, which takes no URLs")?;
            if media_type != "application/pdf" {
                return Err(invalid(
                    &format!("{param}.source.media_type"),
                    "must be application/pdf for a Bedrock model",
                ));
            }
            let title = block.get("title").and_then(Value::as_str).unwrap_or("");
            json!({"document": {"format": "pdf", "name": document_name(title), "source": {"bytes": data}}})
        }
        "tool_use" => json!({"toolUse": {
            "toolUseId": required_string(block, "id", param)?,
            "name": required_string(block, "name", param)?,
            "input": block.get("input").cloned().unwrap_or_else(|| json!({})),
        }}),
        "tool_result" => tool_result(block, param)?,
        "thinking" => {
            let mut text = json!({"text": required_string(block, "thinking", param)?});
            if let Some(signature) = block.get("signature").filter(|s| s.is_string()) {
                text["signature"] = signature.clone();
            }
            json!({"reasoningContent": {"reasoningText": text}})
        }
        "redacted_thinking" => json!({"reasoningContent": {
            "redactedContent": required_string(block, "data", param)?,
        }}),
        other => return Err(invalid(param, &format!("of type `{other}` {TO_CONVERSE}"))),
    })
}

fn tool_result(block: &Value, param: &str) -> Result<Value, ApiError> {
    let id = required_string(block, "tool_use_id", param)?;
    let content_param = format!("{param}.content");
    let content = match block.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![json!({"text": text})],
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                let part_param = format!("{content_param}[{k}]");
                match kind(part, &part_param)? {
                    "text" | "image" | "document" => out.push(content_block(part, &part_param)?),
                    other => {
                        return Err(invalid(
                            &part_param,
                            &format!("of type `{other}` {TO_CONVERSE}"),
                        ));
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(invalid(
                &content_param,
                "must be a string or an array of content blocks",
            ));
        }
    };
    let mut result = json!({"toolUseId": id, "content": content});
    if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        result["status"] = "error".into();
    }
    Ok(json!({"toolResult": result}))
}

/// Messages tools as Converse tool specs; only custom tools (a name and an input schema).
fn tool_specs(value: &Value) -> Result<Vec<Value>, ApiError> {
    let tools = array(value, "tools")?;
    let mut out = Vec::with_capacity(tools.len());
    for (tool, custom) in tools.iter().zip(custom_tools(value, TO_CONVERSE)?) {
        let mut spec = json!({"name": custom.name, "inputSchema": {"json": custom.schema}});
        if let Some(description) = custom.description {
            spec["description"] = description.clone();
        }
        out.push(json!({"toolSpec": spec}));
        cache_point(tool, &mut out);
    }
    Ok(out)
}

/// Converse's `toolConfig` for the tools and the tool choice. Converse cannot forbid tools it
/// was given, nor ask for at most one call: `none` drops the tools when the conversation holds
/// no tool blocks (Converse requires the config then), and `disable_parallel_tool_use` is
/// refused.
fn tool_config(
    tools: Option<Vec<Value>>,
    choice: Option<&Value>,
    messages: &Value,
) -> Result<Option<Value>, ApiError> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut config = json!({"tools": tools});
    let Some(choice) = choice else {
        return Ok(Some(config));
    };
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(invalid(
            "tool_choice.disable_parallel_tool_use",
            TO_CONVERSE,
        ));
    }
    config["toolChoice"] = match kind(choice, "tool_choice")? {
        "auto" => json!({"auto": {}}),
        "any" => json!({"any": {}}),
        "tool" => json!({"tool": {"name": required_string(choice, "name", "tool_choice")?}}),
        "none" if !has_tool_blocks(messages) => return Ok(None),
        other => {
            return Err(invalid(
                "tool_choice.type",
                &format!("`{other}` {TO_CONVERSE} once the conversation holds tool calls"),
            ));
        }
    };
    Ok(Some(config))
}

fn has_tool_blocks(messages: &Value) -> bool {
    messages.as_array().into_iter().flatten().any(|m| {
        m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
    })
}

/// Anthropic's `stop_reason` for a Converse `stopReason`.
fn stop_reason(converse: &str) -> &'static str {
    match converse {
        "tool_use" => "tool_use",
        "max_tokens" => "max_tokens",
        "stop_sequence" => "stop_sequence",
        "guardrail_intervened" | "content_filtered" => "refusal",
        "model_context_window_exceeded" => "model_context_window_exceeded",
        _ => "end_turn",
    }
}

/// A Converse `usage` object as Anthropic's.
fn usage(usage: &Value) -> Value {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    json!({
        "input_tokens": count("inputTokens"),
        "cache_creation_input_tokens": count("cacheWriteInputTokens"),
        "cache_read_input_tokens": count("cacheReadInputTokens"),
        "output_tokens": count("outputTokens"),
    })
}

/// A Converse answer as a Messages answer from `model`, with the message id `id`.
pub fn converse_answer(body: &[u8], model: &str, id: &str) -> Result<Vec<u8>, String> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| format!("Converse answer is not JSON: {e}"))?;
    let blocks = answer["output"]["message"]["content"]
        .as_array()
        .ok_or("Converse answer has no output.message.content")?;
    let content: Vec<Value> = blocks.iter().filter_map(answer_block).collect();
    let reason = answer["stopReason"].as_str().unwrap_or("end_turn");
    Ok(super::to_bytes(&json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(reason),
        "stop_sequence": null,
        "usage": usage(&answer["usage"]),
    })))
}

/// A Converse content block of an answer as a Messages block; `None` for kinds with no
/// counterpart (a guardrail's trace).
fn answer_block(block: &Value) -> Option<Value> {
    if let Some(text) = block.get("text") {
        return Some(json!({"type": "text", "text": text}));
    }
    if let Some(tool) = block.get("toolUse") {
        return Some(json!({"type": "tool_use", "id": tool["toolUseId"],
            "name": tool["name"], "input": tool["input"]}));
    }
    let reasoning = block.get("reasoningContent")?;
    if let Some(text) = reasoning.get("reasoningText") {
        return Some(json!({"type": "thinking", "thinking": text["text"],
            "signature": text["signature"]}));
    }
    reasoning
        .get("redactedContent")
        .map(|data| json!({"type": "redacted_thinking", "data": data}))
}

/// Anthropic's error `type` for a Bedrock error (its `x-amzn-ErrorType`, or an event stream's
/// exception type) and HTTP status.
fn error_kind(error_type: &str, status: u16) -> &'static str {
    let name = error_type.split(':').next().unwrap_or_default();
    match name.to_ascii_lowercase().as_str() {
        "throttlingexception" | "toomanyrequestsexception" => "rate_limit_error",
        "serviceunavailableexception" | "modelnotreadyexception" => "overloaded_error",
        "validationexception" => "invalid_request_error",
        "accessdeniedexception"
        | "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "expiredtokenexception" => "permission_error",
        "resourcenotfoundexception" => "not_found_error",
        _ => match status {
            503 => "overloaded_error",
            status => super::response::anthropic_type(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            ),
        },
    }
}

/// A Bedrock error answer (`{"message": ...}` with its type in the `x-amzn-ErrorType` header)
/// as an Anthropic error body.
pub fn converse_error(status: u16, error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("Bedrock answered {status}"));
    let kind = error_kind(error_type.unwrap_or_default(), status);
    super::to_bytes(&json!({"type": "error", "error": {"type": kind, "message": message}}))
}

/// Translates a ConverseStream, one event at a time, into Messages SSE events.
///
/// Converse opens no text block and sends its usage after the stop, so the translator opens a
/// block at its first delta and closes the message (`message_delta` with the stop reason and
/// usage, then `message_stop`) at the `metadata` event.
#[derive(Debug)]
pub struct ConverseEvents {
    id: String,
    model: String,
    /// Indexes of the open blocks.
    open: Vec<u64>,
    stop_reason: Option<&'static str>,
}

impl ConverseEvents {
    /// A translator for a stream from `model`, whose message gets the id `id`.
    pub fn new(id: String, model: String) -> Self {
        Self {
            id,
            model,
            open: Vec::new(),
            stop_reason: None,
        }
    }

    /// The SSE events for one event of type `event_type` with its JSON `payload`; an error for
    /// a payload that is not the JSON its type promises.
    pub fn event(&mut self, event_type: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        let payload: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("the `{event_type}` event is not JSON: {e}"))?;
        let mut out = Vec::new();
        let index = payload["contentBlockIndex"].as_u64().unwrap_or(0);
        match event_type {
            "messageStart" => sse(
                &mut out,
                "message_start",
                &json!({
                    "type": "message_start",
                    "message": {"id": self.id, "type": "message", "role": "assistant",
                        "model": self.model, "content": [], "stop_reason": null,
                        "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}},
                }),
            ),
            "contentBlockStart" => {
                let tool = &payload["start"]["toolUse"];
                let block = json!({"type": "tool_use", "id": tool["toolUseId"],
                    "name": tool["name"], "input": {}});
                self.start(&mut out, index, block);
            }
            "contentBlockDelta" => self.delta(&mut out, index, &payload["delta"]),
            "contentBlockStop" => self.stop(&mut out, index),
            "messageStop" => {
                self.stop_reason = Some(stop_reason(payload["stopReason"].as_str().unwrap_or("")));
            }
            "metadata" => {
                for index in std::mem::take(&mut self.open) {
                    sse(&mut out, "content_block_stop", &stop_event(index));
                }
                let reason = self.stop_reason.unwrap_or("end_turn");
                sse(
                    &mut out,
                    "message_delta",
                    &json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": reason, "stop_sequence": null},
                        "usage": usage(&payload["usage"]),
                    }),
                );
                sse(&mut out, "message_stop", &json!({"type": "message_stop"}));
            }
            _ => {}
        }
        Ok(out)
    }

    /// An error event for an exception the stream carried (`exception_type`, as named in the
    /// frame's `:exception-type` header) with its JSON payload.
    pub fn exception(&self, exception_type: &str, payload: &[u8]) -> Vec<u8> {
        let error = converse_error(0, Some(exception_type), payload);
        let mut out = Vec::with_capacity(error.len() + 24);
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(&error);
        out.extend_from_slice(b"\n\n");
        out
    }

    /// A block's stop, when it was opened: Converse stops text blocks it never started, and a
    /// block that got no delta was never opened here.
    fn stop(&mut self, out: &mut Vec<u8>, index: u64) {
        if let Some(at) = self.open.iter().position(|i| *i == index) {
            self.open.remove(at);
            sse(out, "content_block_stop", &stop_event(index));
        }
    }

    fn start(&mut self, out: &mut Vec<u8>, index: u64, block: Value) {
        self.open.push(index);
        sse(
            out,
            "content_block_start",
            &json!({"type": "content_block_start",
            "index": index, "content_block": block}),
        );
    }

    fn delta(&mut self, out: &mut Vec<u8>, index: u64, delta: &Value) {
        let (opened, delta) = if let Some(text) = delta.get("text") {
            (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": text}),
            )
        } else if let Some(tool) = delta.get("toolUse") {
            (
                json!({"type": "tool_use", "input": {}}),
                json!({"type": "input_json_delta", "partial_json": tool["input"]}),
            )
        } else if let Some(reasoning) = delta.get("reasoningContent") {
            let opened = json!({"type": "thinking", "thinking": ""});
            if let Some(text) = reasoning.get("text") {
                (opened, json!({"type": "thinking_delta", "thinking": text}))
            } else if let Some(signature) = reasoning.get("signature") {
                (
                    opened,
                    json!({"type": "signature_delta", "signature": signature}),
                )
            } else {
                return;
            }
        } else {
            return;
        };
        if !self.open.contains(&index) {
            self.start(out, index, opened);
        }
        sse(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta",
            "index": index, "delta": delta}),
        );
    }
}

fn stop_event(index: u64) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converse(body: Value) -> Result<Value, ApiError> {
        anthropic_to_converse(body.to_string().as_bytes())
            .map(|b| serde_json::from_slice(&b).expect("JSON"))
    }

    #[test]
    fn a_messages_body_becomes_converse() {
        let out = converse(json!({
            "model": "claude", "max_tokens": 100, "temperature": 0.5, "stop_sequences": ["END"],
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "look", "input": {"q": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "a cat", "is_error": false}]}],
            "tools": [{"name": "look", "description": "looks", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "metadata": {"user_id": "u1"}
        }))
        .expect("translates");
        assert_eq!(
            out,
            json!({
                "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
                "messages": [
                    {"role": "user", "content": [{"text": "what is this?"},
                        {"image": {"format": "png", "source": {"bytes": "iVBO"}}}]},
                    {"role": "assistant", "content": [
                        {"toolUse": {"toolUseId": "t1", "name": "look", "input": {"q": 1}}}]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "a cat"}]}}]}],
                "toolConfig": {"tools": [{"toolSpec": {"name": "look", "description": "looks",
                    "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"any": {}}},
                "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["END"]},
                "requestMetadata": {"user_id": "u1"}
            })
        );
    }

    #[test]
    fn what_converse_cannot_say_is_refused_by_field() {
        let url_image = json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]});
        let error = converse(url_image).expect_err("refused");
        assert_eq!(
            error.param.as_deref(),
            Some("messages[0].content[0].source")
        );
        let one_call = json!({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "t", "input_schema": {}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}});
        let error = converse(one_call).expect_err("refused");
        assert_eq!(
            error.param.as_deref(),
            Some("tool_choice.disable_parallel_tool_use")
        );
        let server_tool = json!({"max_tokens": 1, "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
        assert_eq!(
            converse(server_tool).expect_err("refused").param.as_deref(),
            Some("tools[0]")
        );
        let unknown = json!({"max_tokens": 1, "messages": [], "container": "c"});
        assert_eq!(
            converse(unknown).expect_err("refused").param.as_deref(),
            Some("container")
        );
    }

    #[test]
    fn claudes_own_fields_go_to_claude_alone() {
        let body = |model: &str| {
            json!({"model": model, "max_tokens": 1, "top_k": 5,
            "messages": [{"role": "user", "content": "hi"}]})
        };
        let out = converse(body("anthropic.claude-v2")).expect("translates");
        assert_eq!(out["additionalModelRequestFields"], json!({"top_k": 5}));
        let error = converse(body("amazon.nova-lite-v1:0")).expect_err("refused");
        assert_eq!(error.param.as_deref(), Some("top_k"));
        assert_eq!(
            document_name("Q3 report.pdf (final)"),
            "Q3 report pdf (final)"
        );
        assert_eq!(document_name("..."), "document");
    }

    #[test]
    fn tool_choice_none_drops_the_tools_of_a_conversation_without_tool_blocks() {
        let body = json!({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "t", "input_schema": {}}], "tool_choice": {"type": "none"}});
        assert!(
            converse(body)
                .expect("translates")
                .get("toolConfig")
                .is_none()
        );
    }

    #[test]
    fn an_answer_becomes_a_message() {
        let answer = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Let me look."},
                {"toolUse": {"toolUseId": "t9", "name": "look", "input": {"q": "cat"}}}]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42, "cacheReadInputTokens": 5},
            "metrics": {"latencyMs": 80}
        });
        let out = converse_answer(answer.to_string().as_bytes(), "anthropic.claude", "msg_1")
            .expect("translates");
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            out,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "anthropic.claude",
                "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "t9", "name": "look", "input": {"q": "cat"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 30, "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 5, "output_tokens": 12}})
        );
        assert!(converse_answer(b"{}", "m", "i").is_err());
    }

    #[test]
    fn errors_keep_their_message_and_kind() {
        let out = converse_error(
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(out["error"]["type"], "rate_limit_error");
        assert_eq!(
            out["error"]["message"],
            "Too many requests, please wait before trying again."
        );
        let out: Value =
            serde_json::from_slice(&converse_error(500, None, b"<html>")).expect("JSON");
        assert_eq!(out["error"]["type"], "api_error");
        assert_eq!(out["error"]["message"], "Bedrock answered 500");
    }

    fn events(translator: &mut ConverseEvents, list: &[(&str, Value)]) -> String {
        let mut out = Vec::new();
        for (kind, payload) in list {
            out.extend(
                translator
                    .event(kind, payload.to_string().as_bytes())
                    .expect("event"),
            );
        }
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn a_stream_becomes_messages_events() {
        let mut translator = ConverseEvents::new("msg_s".into(), "m".into());
        let out = events(
            &mut translator,
            &[
                ("messageStart", json!({"role": "assistant", "p": "abc"})),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 0})),
                (
                    "contentBlockStart",
                    json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "look"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"q\":"}}}),
                ),
                ("contentBlockStop", json!({"contentBlockIndex": 1})),
                ("messageStop", json!({"stopReason": "tool_use"})),
                (
                    "metadata",
                    json!({"usage": {"inputTokens": 7, "outputTokens": 3}, "metrics": {"latencyMs": 1}}),
                ),
            ],
        );
        let names: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(
            out.contains(r#""delta":{"text":"Hi","type":"text_delta"}"#),
            "{out}"
        );
        assert!(out.contains(r#""partial_json":"{\"q\":""#), "{out}");
        assert!(out.contains(r#""stop_reason":"tool_use""#), "{out}");
        assert!(out.contains(r#""input_tokens":7"#), "{out}");
        let error = String::from_utf8(
            translator.exception("throttlingException", br#"{"message":"slow down"}"#),
        )
        .expect("UTF-8");
        assert!(error.starts_with("event: error\ndata: "), "{error}");
        assert!(error.contains(r#""type":"rate_limit_error""#), "{error}");
    }
}
