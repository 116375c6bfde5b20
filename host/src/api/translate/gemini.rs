//! Google's Gemini API (`generateContent`), reached by way of Anthropic Messages: a Messages body
//! becomes a `GenerateContentRequest`, and a Gemini answer, error or stream chunk becomes its
//! Messages counterpart.
//!
//! Gemini names a function's result by the function's name, not by the call's id, so a tool
//! result finds its name in the assistant turn that made the call; calls Gemini makes get ids
//! made here (`toolu_gemini_...`). Thinking blocks of earlier turns are dropped (another model
//! cannot read them). What Gemini cannot express (an image or document by URL, server tools, a
//! request for at most one tool call) is refused with a 400 naming the field of the Messages
//! body. Pure functions over bytes and `serde_json` values; nothing does I/O.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::fields::{
    array, base64_source, custom_tools, invalid, kind, object, parse_object, required_string,
};
use super::sse_event as sse;
use crate::api::ApiError;

const TO_GEMINI: &str = "cannot be sent to a Gemini model";

/// A Messages body rewritten as a Gemini `GenerateContentRequest` (the model is in the URL).
pub fn anthropic_to_gemini(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let request = parse_object(body)?;
    let mut out = Map::new();
    let mut generation = Map::new();
    let mut tool_choice = None;
    for (key, value) in &request {
        if value.is_null() {
            continue;
        }
        let renamed = match key.as_str() {
            "max_tokens" => Some("maxOutputTokens"),
            "temperature" => Some("temperature"),
            "top_p" => Some("topP"),
            "top_k" => Some("topK"),
            "stop_sequences" => Some("stopSequences"),
            _ => None,
        };
        if let Some(name) = renamed {
            generation.insert(name.into(), value.clone());
            continue;
        }
        match key.as_str() {
            "model" | "stream" | "metadata" | "service_tier" => {}
            "system" => {
                out.insert("systemInstruction".into(), json!({"parts": system(value)?}));
            }
            "messages" => {
                out.insert("contents".into(), Value::Array(contents(value)?));
            }
            "tools" => {
                out.insert(
                    "tools".into(),
                    json!([{"functionDeclarations": declarations(value)?}]),
                );
            }
            "tool_choice" => tool_choice = Some(function_calling(value)?),
            "thinking" => {
                if value.get("type").and_then(Value::as_str) == Some("enabled") {
                    let mut thinking = json!({"includeThoughts": true});
                    if let Some(budget) = value.get("budget_tokens").filter(|b| b.is_u64()) {
                        thinking["thinkingBudget"] = budget.clone();
                    }
                    generation.insert("thinkingConfig".into(), thinking);
                }
            }
            _ => return Err(invalid(key, TO_GEMINI)),
        }
    }
    if !out.contains_key("contents") {
        return Err(invalid("messages", "is required"));
    }
    if let Some(choice) = tool_choice.filter(|_| out.contains_key("tools")) {
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": choice}),
        );
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(super::to_bytes(&Value::Object(out)))
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
            other => return Err(invalid(&param, &format!("of type `{other}` {TO_GEMINI}"))),
        }
    }
    Ok(out)
}

fn contents(value: &Value) -> Result<Vec<Value>, ApiError> {
    let list = array(value, "messages")?;
    // The name of each tool call made so far, by id: a function's result names its function.
    let mut calls: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, message) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        object(message, &param)?;
        let role = match required_string(message, "role", &param)? {
            "user" => "user",
            "assistant" => "model",
            _ => {
                return Err(invalid(
                    &format!("{param}.role"),
                    "must be user or assistant",
                ));
            }
        };
        let content_param = format!("{param}.content");
        let parts = match message.get("content") {
            Some(Value::String(text)) => vec![json!({"text": text})],
            Some(Value::Array(blocks)) => {
                let mut parts = Vec::with_capacity(blocks.len());
                for (j, block) in blocks.iter().enumerate() {
                    let param = format!("{content_param}[{j}]");
                    if kind(block, &param)? == "tool_use" {
                        calls.insert(
                            required_string(block, "id", &param)?,
                            required_string(block, "name", &param)?,
                        );
                    }
                    parts.extend(part(block, &param, &calls)?);
                }
                parts
            }
            _ => {
                return Err(invalid(
                    &content_param,
                    "must be a string or an array of content blocks",
                ));
            }
        };
        if !parts.is_empty() {
            out.push(json!({"role": role, "parts": parts}));
        }
    }
    Ok(out)
}

/// One Messages content block as a Gemini part; `None` for a thinking block, which is dropped.
fn part(
    block: &Value,
    param: &str,
    calls: &HashMap<&str, &str>,
) -> Result<Option<Value>, ApiError> {
    Ok(Some(match kind(block, param)? {
        "text" => json!({"text": required_string(block, "text", param)?}),
        "image" | "document" => {
            let (media_type, data) =
                base64_source(block, param, "a Gemini model, which takes no URLs here")?;
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        "tool_use" => {
            let mut part = json!({"functionCall": {
                "name": required_string(block, "name", param)?,
                "args": block.get("input").cloned().unwrap_or_else(|| json!({})),
            }});
            let id = required_string(block, "id", param)?;
            if let Some(signature) = signature_of(id) {
                part["thoughtSignature"] = signature.into();
            }
            part
        }
        "tool_result" => {
            let id = required_string(block, "tool_use_id", param)?;
            let name = calls.get(id).ok_or_else(|| {
                invalid(
                    &format!("{param}.tool_use_id"),
                    "must name a tool call of an earlier assistant turn, for a Gemini model",
                )
            })?;
            let text = tool_result_text(block, param)?;
            let key = if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                "error"
            } else {
                "content"
            };
            json!({"functionResponse": {"name": name, "response": {key: text}}})
        }
        "thinking" | "redacted_thinking" => return Ok(None),
        other => return Err(invalid(param, &format!("of type `{other}` {TO_GEMINI}"))),
    }))
}

/// A tool result's content as one text: Gemini's function response is a JSON object.
fn tool_result_text(block: &Value, param: &str) -> Result<String, ApiError> {
    let content_param = format!("{param}.content");
    match block.get("content") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (k, part) in parts.iter().enumerate() {
                let part_param = format!("{content_param}[{k}]");
                match kind(part, &part_param)? {
                    "text" => text.push_str(required_string(part, "text", &part_param)?),
                    other => {
                        return Err(invalid(
                            &part_param,
                            &format!("of type `{other}` {TO_GEMINI} in a tool result"),
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(
            &content_param,
            "must be a string or an array of content blocks",
        )),
    }
}

/// Messages tools as Gemini function declarations, their schemas as JSON Schema.
fn declarations(value: &Value) -> Result<Vec<Value>, ApiError> {
    let tools = custom_tools(value, TO_GEMINI)?;
    Ok(tools
        .into_iter()
        .map(|tool| {
            let mut declaration = json!({"name": tool.name, "parametersJsonSchema": tool.schema});
            if let Some(description) = tool.description {
                declaration["description"] = description.clone();
            }
            declaration
        })
        .collect())
}

/// A Messages `tool_choice` as Gemini's `functionCallingConfig`.
fn function_calling(choice: &Value) -> Result<Value, ApiError> {
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(invalid("tool_choice.disable_parallel_tool_use", TO_GEMINI));
    }
    Ok(match kind(choice, "tool_choice")? {
        "auto" => json!({"mode": "AUTO"}),
        "any" => json!({"mode": "ANY"}),
        "none" => json!({"mode": "NONE"}),
        "tool" => json!({"mode": "ANY",
            "allowedFunctionNames": [required_string(choice, "name", "tool_choice")?]}),
        other => {
            return Err(invalid(
                "tool_choice.type",
                &format!("`{other}` {TO_GEMINI}"),
            ));
        }
    })
}

/// Anthropic's `stop_reason` for a Gemini `finishReason`; a stop with calls is a tool use.
fn stop_reason(finish: &str, called: bool) -> &'static str {
    match finish {
        "MAX_TOKENS" => "max_tokens",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "refusal"
        }
        _ if called => "tool_use",
        _ => "end_turn",
    }
}

/// Gemini's `usageMetadata` as Anthropic's usage: the prompt's cached part apart, thoughts
/// counted as output.
fn usage(usage: &Value) -> Value {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("cachedContentTokenCount");
    json!({
        "input_tokens": count("promptTokenCount").saturating_sub(cached),
        "cache_read_input_tokens": cached,
        "output_tokens": count("candidatesTokenCount") + count("thoughtsTokenCount"),
    })
}

/// A Gemini part of an answer as a Messages block; `calls` counts the calls made so far, for
/// their ids. `None` for parts with no counterpart.
fn answer_block(part: &Value, id: &str, calls: &mut usize) -> Option<Value> {
    if let Some(call) = part.get("functionCall") {
        *calls += 1;
        let mut call_id = call
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("toolu_gemini_{id}_{calls}"), str::to_owned);
        if let Some(signature) = part.get("thoughtSignature").and_then(Value::as_str) {
            call_id = with_signature(&call_id, signature);
        }
        return Some(
            json!({"type": "tool_use", "id": call_id, "name": call["name"],
            "input": call.get("args").cloned().unwrap_or_else(|| json!({}))}),
        );
    }
    let text = part.get("text")?;
    if part.get("thought").and_then(Value::as_bool) == Some(true) {
        let signature = part
            .get("thoughtSignature")
            .cloned()
            .unwrap_or_else(|| "".into());
        return Some(json!({"type": "thinking", "thinking": text, "signature": signature}));
    }
    Some(json!({"type": "text", "text": text}))
}

/// What separates a call's id from the thought signature carried in it.
const SIGNATURE_MARK: &str = "__thought__";

/// A call's id carrying Gemini's thought signature for that call, which Gemini wants back with
/// the call in later turns. Clients keep tool call ids and send them back as they are, so the
/// signature travels in the id, in base64's URL alphabet so that the id stays one that
/// Anthropic's API accepts too.
fn with_signature(id: &str, signature: &str) -> String {
    let url_safe: String = signature
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    format!("{id}{SIGNATURE_MARK}{url_safe}")
}

/// The thought signature a call's id carries (see [`with_signature`]), in base64 again.
fn signature_of(id: &str) -> Option<String> {
    let (_, url_safe) = id.split_once(SIGNATURE_MARK)?;
    let mut signature: String = url_safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    Some(signature)
}

/// A Gemini answer as a Messages answer from `model`, with the message id `id`.
pub fn gemini_answer(body: &[u8], model: &str, id: &str) -> Result<Vec<u8>, String> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| format!("Gemini answer is not JSON: {e}"))?;
    let candidate = &answer["candidates"][0];
    if !candidate.is_object() && answer.get("promptFeedback").is_none() {
        return Err("Gemini answer has no candidates".into());
    }
    let mut calls = 0;
    let content: Vec<Value> = candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| answer_block(part, id, &mut calls))
        .collect();
    let finish = match candidate["finishReason"].as_str() {
        Some(finish) => finish,
        // A prompt refused before any candidate was made.
        None if answer["promptFeedback"]["blockReason"].is_string() => "SAFETY",
        None => "STOP",
    };
    Ok(super::to_bytes(&json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": answer.get("modelVersion").and_then(Value::as_str).unwrap_or(model),
        "content": content,
        "stop_reason": stop_reason(finish, calls > 0),
        "stop_sequence": null,
        "usage": usage(&answer["usageMetadata"]),
    })))
}

/// A Gemini error answer (`{"error": {"code", "message", "status"}}`) as an Anthropic error body.
pub fn gemini_error(status: u16, body: &[u8]) -> Vec<u8> {
    let error = serde_json::from_slice::<Value>(body).ok();
    let error = error.as_ref().map(|e| &e["error"]);
    let message = error
        .and_then(|e| e["message"].as_str())
        .map_or_else(|| format!("Gemini answered {status}"), str::to_owned);
    let kind = match error.and_then(|e| e["status"].as_str()).unwrap_or_default() {
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => "invalid_request_error",
        "PERMISSION_DENIED" => "permission_error",
        "UNAUTHENTICATED" => "authentication_error",
        "NOT_FOUND" => "not_found_error",
        "UNAVAILABLE" => "overloaded_error",
        _ => super::response::anthropic_type(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        ),
    };
    super::to_bytes(&json!({"type": "error", "error": {"type": kind, "message": message}}))
}

/// Translates a Gemini stream (`streamGenerateContent?alt=sse`), one chunk at a time, into
/// Messages SSE events.
///
/// Every chunk is a partial `GenerateContentResponse`. Text and thoughts continue the open block
/// of their kind; each function call is a block of its own. Gemini has no closing event: the
/// chunk with a `finishReason` ends the message, and [`GeminiEvents::finish`] closes it once the
/// stream has ended, with the last usage reported.
#[derive(Debug)]
pub struct GeminiEvents {
    id: String,
    model: String,
    started: bool,
    /// The open block's index and kind (`text` or `thinking`).
    open: Option<(u64, &'static str)>,
    next_index: u64,
    calls: usize,
    finish: Option<String>,
    usage: Value,
}

impl GeminiEvents {
    /// A translator for a stream from `model`, whose message gets the id `id`.
    pub fn new(id: String, model: String) -> Self {
        Self {
            id,
            model,
            started: false,
            open: None,
            next_index: 0,
            calls: 0,
            finish: None,
            usage: Value::Null,
        }
    }

    /// The SSE events for one SSE event's `data` (a chunk's JSON): nothing for none, an `error`
    /// event for an error Gemini sent in the stream (which ends it there), else the chunk's
    /// events. An error for data that is not JSON.
    pub fn chunk(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_slice(data)
            .map_err(|e| format!("a Gemini stream chunk is not JSON: {e}"))?;
        let mut out = Vec::new();
        if chunk.get("error").is_some() {
            self.finish = None;
            let error: Value = serde_json::from_slice(&gemini_error(500, data))
                .map_err(|e| format!("a Gemini error is not JSON: {e}"))?;
            sse(&mut out, "error", &error);
            return Ok(out);
        }
        if !self.started {
            self.started = true;
            // The model that answered, as the whole answer names it.
            let model = chunk.get("modelVersion").unwrap_or(&Value::Null);
            let model = model.as_str().unwrap_or(&self.model);
            sse(
                &mut out,
                "message_start",
                &json!({"type": "message_start",
                "message": {"id": self.id, "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": null,
                    "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            );
        }
        let candidate = &chunk["candidates"][0];
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            self.part(&mut out, part);
        }
        if let Some(finish) = candidate["finishReason"].as_str() {
            self.finish = Some(finish.to_string());
        } else if chunk["promptFeedback"]["blockReason"].is_string() {
            self.finish = Some("SAFETY".into());
        }
        if chunk["usageMetadata"].is_object() {
            self.usage = chunk["usageMetadata"].clone();
        }
        Ok(out)
    }

    /// The closing events, once the stream has ended: none when no chunk said the answer was
    /// finished, so that the stream reads as unfinished.
    pub fn finish(&mut self) -> Vec<u8> {
        let Some(finish) = self.finish.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.close(&mut out);
        sse(
            &mut out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(&finish, self.calls > 0), "stop_sequence": null},
            "usage": usage(&self.usage)}),
        );
        sse(&mut out, "message_stop", &json!({"type": "message_stop"}));
        out
    }

    fn part(&mut self, out: &mut Vec<u8>, part: &Value) {
        let Some(block) = answer_block(part, &self.id, &mut self.calls) else {
            return;
        };
        match block["type"].as_str() {
            Some("tool_use") => {
                self.close(out);
                let index = self.start(
                    out,
                    json!({"type": "tool_use", "id": block["id"],
                    "name": block["name"], "input": {}}),
                );
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta",
                    "index": index, "delta": {"type": "input_json_delta",
                    "partial_json": block["input"].to_string()}}),
                );
                self.close_index(out, index);
            }
            Some("thinking") => {
                let index = self.continue_block(
                    out,
                    "thinking",
                    json!({"type": "thinking", "thinking": ""}),
                );
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta",
                    "index": index, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}),
                );
            }
            _ => {
                let index = self.continue_block(out, "text", json!({"type": "text", "text": ""}));
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta",
                    "index": index, "delta": {"type": "text_delta", "text": block["text"]}}),
                );
            }
        }
    }

    /// The open block's index when it is of `kind`, else a new block's (the open one closed).
    fn continue_block(&mut self, out: &mut Vec<u8>, kind: &'static str, opened: Value) -> u64 {
        match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                self.close(out);
                let index = self.start(out, opened);
                self.open = Some((index, kind));
                index
            }
        }
    }

    fn start(&mut self, out: &mut Vec<u8>, block: Value) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        sse(
            out,
            "content_block_start",
            &json!({"type": "content_block_start",
            "index": index, "content_block": block}),
        );
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            self.close_index(out, index);
        }
    }

    fn close_index(&self, out: &mut Vec<u8>, index: u64) {
        sse(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemini(body: Value) -> Result<Value, ApiError> {
        anthropic_to_gemini(body.to_string().as_bytes())
            .map(|b| serde_json::from_slice(&b).expect("JSON"))
    }

    #[test]
    fn a_messages_body_becomes_a_generate_content_request() {
        let out = gemini(json!({
            "model": "gemini", "max_tokens": 100, "temperature": 0.5, "top_k": 5,
            "system": "be brief",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "look", "input": {"q": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a cat"}]}],
            "tools": [{"name": "look", "description": "looks", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "look"}
        }))
        .expect("translates");
        assert_eq!(
            out,
            json!({
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "look"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "look", "args": {"q": 1}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "look",
                        "response": {"content": "a cat"}}}]}],
                "tools": [{"functionDeclarations": [{"name": "look", "description": "looks",
                    "parametersJsonSchema": {"type": "object"}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["look"]}},
                "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5, "topK": 5}
            })
        );
    }

    #[test]
    fn what_gemini_cannot_say_is_refused_by_field() {
        let orphan = json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}]});
        assert_eq!(
            gemini(orphan).expect_err("refused").param.as_deref(),
            Some("messages[0].content[0].tool_use_id")
        );
        let url_image = json!({"max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]});
        assert_eq!(
            gemini(url_image).expect_err("refused").param.as_deref(),
            Some("messages[0].content[0].source")
        );
        let unknown = json!({"max_tokens": 1, "messages": [], "container": "c"});
        assert_eq!(
            gemini(unknown).expect_err("refused").param.as_deref(),
            Some("container")
        );
    }

    #[test]
    fn an_answer_becomes_a_message() {
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me look."},
                {"functionCall": {"name": "look", "args": {"q": "cat"}}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 30, "cachedContentTokenCount": 10,
                "candidatesTokenCount": 12, "thoughtsTokenCount": 3, "totalTokenCount": 45},
            "modelVersion": "gemini-2.5-flash"
        });
        let out =
            gemini_answer(answer.to_string().as_bytes(), "gemini", "msg_1").expect("translates");
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            out,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "gemini-2.5-flash",
                "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_gemini_msg_1_1", "name": "look", "input": {"q": "cat"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 20, "cache_read_input_tokens": 10, "output_tokens": 15}})
        );
        assert!(gemini_answer(b"{}", "m", "i").is_err());
    }

    #[test]
    fn a_calls_thought_signature_travels_in_its_id_and_goes_back() {
        let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "look", "args": {}}, "thoughtSignature": "ab+/cd=="}]},
            "finishReason": "STOP"}]});
        let out = gemini_answer(answer.to_string().as_bytes(), "g", "m1").expect("translates");
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        let id = out["content"][0]["id"].as_str().expect("an id");
        assert_eq!(id, "toolu_gemini_m1_1__thought__ab-_cd");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        let again = gemini(json!({"max_tokens": 1, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "look", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "x"}]}]}))
        .expect("translates");
        assert_eq!(
            again["contents"][1]["parts"][0],
            json!({"functionCall": {"name": "look", "args": {}}, "thoughtSignature": "ab+/cd=="})
        );
    }

    #[test]
    fn errors_keep_their_message_and_kind() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        let out: Value = serde_json::from_slice(&gemini_error(429, body)).expect("JSON");
        assert_eq!(out["error"]["type"], "rate_limit_error");
        assert_eq!(out["error"]["message"], "Resource has been exhausted");
    }

    #[test]
    fn a_stream_becomes_messages_events() {
        let mut translator = GeminiEvents::new("msg_s".into(), "m".into());
        let mut out = Vec::new();
        for chunk in [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "look", "args": {"q": 1}}}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3}}),
        ] {
            out.extend(
                translator
                    .chunk(chunk.to_string().as_bytes())
                    .expect("chunk"),
            );
        }
        out.extend(translator.finish());
        let out = String::from_utf8(out).expect("UTF-8");
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
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(out.contains(r#""stop_reason":"tool_use""#), "{out}");
        assert!(out.contains(r#""partial_json":"{\"q\":1}""#), "{out}");
        let mut failing = GeminiEvents::new("m".into(), "m".into());
        let error = failing
            .chunk(br#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#)
            .expect("an error event");
        let error = String::from_utf8(error).expect("UTF-8");
        assert!(error.starts_with("event: error\n"), "{error}");
        assert!(error.contains("overloaded_error"), "{error}");
        assert!(failing.finish().is_empty());
        let mut unfinished = GeminiEvents::new("m".into(), "m".into());
        unfinished
            .chunk(br#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#)
            .expect("chunk");
        assert!(unfinished.finish().is_empty());
    }
}
