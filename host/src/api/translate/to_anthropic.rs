//! An OpenAI chat-completions request body as an Anthropic Messages body, for the model the
//! route chose.
//!
//! The client's whole body is read as JSON and the upstream's body built field by field. A field
//! that has no counterpart is dropped only when dropping it leaves the answer's content as asked:
//! a default value, a storage or billing hint (`store`, `metadata`, `service_tier`), OpenAI's
//! `seed` (a best-effort determinism hint, which Anthropic does not offer) and a message's
//! participant `name`. Anything else is refused with a 400 whose `param` is the field's path in
//! the client's format. Pure functions over bytes; no I/O.

use serde_json::{Map, Value, json};

use super::fields::{
    array, boolean, invalid, kind, number, object, parse_object, required_string, string, strings,
};
use super::tool_input;
use crate::api::ApiError;

/// The output cap sent to an Anthropic model, which requires one, when the client set none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

const TO_ANTHROPIC: &str = "cannot be translated for an Anthropic model";

/// An OpenAI chat-completions body rewritten as an Anthropic Messages body for `model`.
/// `max_tokens`: the output cap to send (the caller has already combined the client's cap and
/// the policy's); without one, [`DEFAULT_MAX_TOKENS`], because Anthropic requires a cap.
pub fn openai_to_anthropic(
    body: &[u8],
    model: &str,
    max_tokens: Option<u32>,
) -> Result<Vec<u8>, ApiError> {
    let request = parse_object(body)?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert(
        "max_tokens".into(),
        max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    let mut carried = Carried {
        messages: None,
        tool_choice: None,
        parallel_tool_calls: true,
    };
    for (key, value) in &request {
        if !value.is_null() {
            field_to_anthropic(key, value, &mut out, &mut carried)?;
        }
    }
    let Carried {
        messages,
        mut tool_choice,
        parallel_tool_calls,
    } = carried;
    if !parallel_tool_calls && out.contains_key("tools") {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = true.into();
        }
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".into(), choice);
    }
    let messages = messages.ok_or_else(|| invalid("messages", "is required"))?;
    let (system, messages) = messages_to_anthropic(messages)?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(super::to_bytes(&Value::Object(out)))
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// What the top-level fields leave for the end of the translation.
struct Carried<'a> {
    messages: Option<&'a Value>,
    tool_choice: Option<Value>,
    parallel_tool_calls: bool,
}

/// One top-level field of an OpenAI request into `out`, or into `carried` when it is needed
/// later.
fn field_to_anthropic<'a>(
    key: &str,
    value: &'a Value,
    out: &mut Map<String, Value>,
    carried: &mut Carried<'a>,
) -> Result<(), ApiError> {
    match key {
        "messages" => carried.messages = Some(value),
        "model"
        | "max_tokens"
        | "max_completion_tokens"
        | "stream_options"
        | "store"
        | "metadata"
        | "seed"
        | "service_tier" => {}
        "temperature" => {
            let t = number(value, key)?;
            if !(0.0..=1.0).contains(&t) {
                return Err(invalid(
                    key,
                    "must be between 0 and 1 for an Anthropic model",
                ));
            }
            out.insert(key.into(), value.clone());
        }
        "top_p" => {
            number(value, key)?;
            out.insert(key.into(), value.clone());
        }
        "stop" => {
            let stops = match value {
                Value::String(_) => vec![value.clone()],
                _ => strings(value, key)?,
            };
            if !stops.is_empty() {
                out.insert("stop_sequences".into(), Value::Array(stops));
            }
        }
        "stream" => {
            if boolean(value, key)? {
                out.insert("stream".into(), true.into());
            }
        }
        "user" => {
            let user = string(value, key)?;
            out.insert("metadata".into(), json!({"user_id": user}));
        }
        "tools" => {
            out.insert("tools".into(), tools_to_anthropic(value)?);
        }
        "tool_choice" => carried.tool_choice = Some(tool_choice_to_anthropic(value)?),
        "parallel_tool_calls" => carried.parallel_tool_calls = boolean(value, key)?,
        "functions" | "function_call" => {
            return Err(invalid(key, &format!("{TO_ANTHROPIC}: use tools")));
        }
        "n" if value.as_u64() == Some(1) => {}
        "logprobs" if value == false => {}
        "frequency_penalty" | "presence_penalty" if value.as_f64() == Some(0.0) => {}
        "response_format" if *value == json!({"type": "text"}) => {}
        "logit_bias" if value.as_object().is_some_and(Map::is_empty) => {}
        _ => return Err(invalid(key, TO_ANTHROPIC)),
    }
    Ok(())
}

/// One message of the Anthropic conversation being built.
struct Turn {
    role: &'static str,
    /// A string or an array of content blocks.
    content: Value,
}

impl Turn {
    /// The Anthropic message; a user turn's tool results come before anything else in it, as
    /// Anthropic wants.
    fn into_message(self) -> Value {
        let content = match self.content {
            Value::Array(blocks) if self.role == "user" => {
                let (mut results, rest): (Vec<Value>, Vec<Value>) =
                    blocks.into_iter().partition(|b| b["type"] == "tool_result");
                results.extend(rest);
                Value::Array(results)
            }
            content => content,
        };
        json!({"role": self.role, "content": content})
    }
}

/// A message's content as blocks; empty text says nothing and Anthropic refuses it.
fn blocks(content: Value) -> Vec<Value> {
    match content {
        Value::String(text) if text.is_empty() => Vec::new(),
        Value::String(text) => vec![text_block(&text)],
        Value::Array(blocks) => blocks,
        _ => Vec::new(),
    }
}

/// Appends a message, merged into the previous one when the role repeats: Anthropic wants the
/// roles to alternate.
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, content: Value) {
    match turns.last_mut() {
        Some(last) if last.role == role => {
            let mut merged = blocks(std::mem::take(&mut last.content));
            merged.extend(blocks(content));
            last.content = Value::Array(merged);
        }
        _ => turns.push(Turn { role, content }),
    }
}

/// OpenAI messages as Anthropic's top-level `system` and its `messages`.
fn messages_to_anthropic(messages: &Value) -> Result<(Option<Value>, Vec<Value>), ApiError> {
    let list = messages
        .as_array()
        .ok_or_else(|| invalid("messages", "must be an array of messages"))?;
    let mut system: Vec<&Value> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        check_message_fields(message, &param)?;
        let content = message.get("content").filter(|c| !c.is_null());
        match required_string(message, "role", &param)? {
            "system" | "developer" => {
                if !turns.is_empty() {
                    return Err(invalid(
                        &param,
                        "cannot be sent to an Anthropic model: system messages must come first",
                    ));
                }
                let content =
                    content.ok_or_else(|| invalid(&format!("{param}.content"), "is required"))?;
                system.push(content);
            }
            "user" => {
                let content = user_content(content, &param)?;
                push_turn(&mut turns, "user", content);
            }
            "assistant" => {
                let content = assistant_content(message, content, &param)?;
                push_turn(&mut turns, "assistant", content);
            }
            "tool" => push_turn(&mut turns, "user", tool_result(message, content, &param)?),
            "function" => {
                return Err(invalid(
                    &format!("{param}.role"),
                    &format!("{TO_ANTHROPIC}: use tools"),
                ));
            }
            _ => {
                return Err(invalid(
                    &format!("{param}.role"),
                    "must be one of system, developer, user, assistant or tool",
                ));
            }
        }
    }
    let messages = turns.into_iter().map(Turn::into_message).collect();
    Ok((system_to_anthropic(&system)?, messages))
}

/// Refuse a message field Anthropic has no counterpart for.
fn check_message_fields(message: &Value, param: &str) -> Result<(), ApiError> {
    for (key, value) in object(message, param)? {
        match key.as_str() {
            "role" | "content" | "name" | "tool_calls" | "tool_call_id" | "refusal"
            | "annotations" => {}
            _ if value.is_null() => {}
            "function_call" => {
                return Err(invalid(
                    &format!("{param}.{key}"),
                    &format!("{TO_ANTHROPIC}: use tool_calls"),
                ));
            }
            _ => return Err(invalid(&format!("{param}.{key}"), TO_ANTHROPIC)),
        }
    }
    Ok(())
}

/// An OpenAI tool message as the content of an Anthropic user turn: one `tool_result` block.
fn tool_result(message: &Value, content: Option<&Value>, param: &str) -> Result<Value, ApiError> {
    let id = required_string(message, "tool_call_id", param)?;
    let result = match content {
        None => Value::String(String::new()),
        Some(Value::String(text)) => text.as_str().into(),
        Some(parts) => Value::Array(text_parts(parts, param)?),
    };
    let block = json!({"type": "tool_result", "tool_use_id": id, "content": result});
    Ok(Value::Array(vec![block]))
}

/// The system and developer messages' contents as Anthropic's top-level `system`: a string for
/// one string, else text blocks.
fn system_to_anthropic(contents: &[&Value]) -> Result<Option<Value>, ApiError> {
    Ok(match contents {
        [] => None,
        [Value::String(text)] => Some(Value::String(text.clone())),
        contents => {
            let mut system_blocks = Vec::new();
            for (i, content) in contents.iter().enumerate() {
                match content {
                    Value::String(text) => system_blocks.push(text_block(text)),
                    parts => system_blocks.extend(text_parts(parts, &format!("messages[{i}]"))?),
                }
            }
            Some(Value::Array(system_blocks))
        }
    })
}

/// Text-only content parts (of a system or tool message) as Anthropic text blocks.
fn text_parts(parts: &Value, message_param: &str) -> Result<Vec<Value>, ApiError> {
    let content_param = format!("{message_param}.content");
    let parts = parts
        .as_array()
        .ok_or_else(|| invalid(&content_param, "must be a string or an array of text parts"))?;
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{content_param}[{j}]");
        match kind(part, &param)? {
            "text" => out.push(text_block(required_string(part, "text", &param)?)),
            other => {
                return Err(invalid(
                    &param,
                    &format!("of type `{other}` cannot be sent to an Anthropic model"),
                ));
            }
        }
    }
    Ok(out)
}

/// A user message's content: a string stays a string, parts become blocks.
fn user_content(content: Option<&Value>, message_param: &str) -> Result<Value, ApiError> {
    let content_param = format!("{message_param}.content");
    let parts = match content {
        Some(Value::String(text)) => return Ok(text.as_str().into()),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(
                &content_param,
                "must be a string or an array of content parts",
            ));
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{content_param}[{j}]");
        match kind(part, &param)? {
            "text" => {
                let text = required_string(part, "text", &param)?;
                if !text.is_empty() {
                    out.push(text_block(text));
                }
            }
            "image_url" => {
                let image = part
                    .get("image_url")
                    .ok_or_else(|| invalid(&format!("{param}.image_url"), "is required"))?;
                let (url, url_param) = match image {
                    Value::String(url) => (url.as_str(), format!("{param}.image_url")),
                    _ => (
                        required_string(image, "url", &format!("{param}.image_url"))?,
                        format!("{param}.image_url.url"),
                    ),
                };
                out.push(json!({"type": "image", "source": image_source(url, &url_param)?}));
            }
            other => {
                return Err(invalid(
                    &param,
                    &format!("of type `{other}` cannot be sent to an Anthropic model"),
                ));
            }
        }
    }
    Ok(Value::Array(out))
}

/// An image URL as an Anthropic image `source`: base64 data or a web address.
fn image_source(url: &str, param: &str) -> Result<Value, ApiError> {
    if let Some(data_url) = url.strip_prefix("data:") {
        let (media_type, data) = data_url
            .split_once(";base64,")
            .ok_or_else(|| invalid(param, "must be a base64 data URL or an http(s) URL"))?;
        Ok(json!({"type": "base64", "media_type": media_type, "data": data}))
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(json!({"type": "url", "url": url}))
    } else {
        Err(invalid(
            param,
            "must be a base64 data URL or an http(s) URL",
        ))
    }
}

/// An assistant message's content and tool calls as Anthropic content: a plain string when it
/// is only a string, blocks otherwise.
fn assistant_content(
    message: &Value,
    content: Option<&Value>,
    message_param: &str,
) -> Result<Value, ApiError> {
    let tool_calls = message.get("tool_calls").filter(|c| !c.is_null());
    let refusal = message.get("refusal").filter(|r| !r.is_null());
    let mut out = match content {
        Some(Value::String(text)) if tool_calls.is_none() && refusal.is_none() => {
            return Ok(text.as_str().into());
        }
        Some(Value::String(text)) => blocks(text.as_str().into()),
        None => Vec::new(),
        Some(Value::Array(parts)) => assistant_parts(parts, message_param)?,
        Some(_) => {
            return Err(invalid(
                &format!("{message_param}.content"),
                "must be a string, an array of content parts or null",
            ));
        }
    };
    if let Some(refusal) = refusal {
        out.extend(blocks(
            string(refusal, &format!("{message_param}.refusal"))?.into(),
        ));
    }
    if let Some(calls) = tool_calls {
        let calls_param = format!("{message_param}.tool_calls");
        for (k, call) in array(calls, &calls_param)?.iter().enumerate() {
            out.push(tool_use(call, &format!("{calls_param}[{k}]"))?);
        }
    }
    Ok(Value::Array(out))
}

/// An assistant message's content parts (text and refusals) as Anthropic text blocks.
fn assistant_parts(parts: &[Value], message_param: &str) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{message_param}.content[{j}]");
        let text = match kind(part, &param)? {
            "text" => required_string(part, "text", &param)?,
            "refusal" => required_string(part, "refusal", &param)?,
            other => {
                return Err(invalid(
                    &param,
                    &format!("of type `{other}` cannot be sent to an Anthropic model"),
                ));
            }
        };
        out.extend(blocks(text.into()));
    }
    Ok(out)
}

/// An assistant message's tool call `call` (at `param`) as an Anthropic `tool_use` block.
fn tool_use(call: &Value, param: &str) -> Result<Value, ApiError> {
    if let Some(kind) = call.get("type").filter(|t| *t != "function") {
        return Err(invalid(
            param,
            &format!("of type {kind} cannot be sent to an Anthropic model"),
        ));
    }
    let id = required_string(call, "id", param)?;
    let function_param = format!("{param}.function");
    let function = call
        .get("function")
        .ok_or_else(|| invalid(&function_param, "is required"))?;
    let name = required_string(function, "name", &function_param)?;
    let arguments = required_string(function, "arguments", &function_param)?;
    let input = tool_input(arguments).ok_or_else(|| {
        invalid(
            &format!("{function_param}.arguments"),
            "must be a JSON object",
        )
    })?;
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn tools_to_anthropic(tools: &Value) -> Result<Value, ApiError> {
    let mut out = Vec::new();
    for (i, tool) in array(tools, "tools")?.iter().enumerate() {
        let param = format!("tools[{i}]");
        let tool_kind = kind(tool, &param)?;
        if tool_kind != "function" {
            return Err(invalid(
                &param,
                &format!("of type `{tool_kind}` cannot be sent to an Anthropic model"),
            ));
        }
        let function_param = format!("{param}.function");
        let function = tool
            .get("function")
            .ok_or_else(|| invalid(&function_param, "is required"))?;
        let mut translated = Map::new();
        let name = required_string(function, "name", &function_param)?;
        translated.insert("name".into(), name.into());
        if let Some(description) = function.get("description").filter(|d| !d.is_null()) {
            let description = string(description, &format!("{function_param}.description"))?;
            translated.insert("description".into(), description.into());
        }
        let schema = match function.get("parameters").filter(|p| !p.is_null()) {
            Some(parameters) => {
                object(parameters, &format!("{function_param}.parameters"))?;
                parameters.clone()
            }
            None => json!({"type": "object", "properties": {}}),
        };
        translated.insert("input_schema".into(), schema);
        out.push(Value::Object(translated));
    }
    Ok(Value::Array(out))
}

fn tool_choice_to_anthropic(choice: &Value) -> Result<Value, ApiError> {
    match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            _ => Err(invalid("tool_choice", TO_ANTHROPIC)),
        },
        _ if kind(choice, "tool_choice")? == "function" => {
            let function = choice
                .get("function")
                .ok_or_else(|| invalid("tool_choice.function", "is required"))?;
            let name = required_string(function, "name", "tool_choice.function")?;
            Ok(json!({"type": "tool", "name": name}))
        }
        _ => Err(invalid("tool_choice", TO_ANTHROPIC)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_anthropic(body: Value, max_tokens: Option<u32>) -> Result<Value, ApiError> {
        let out = openai_to_anthropic(body.to_string().as_bytes(), "claude-x", max_tokens)?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn openai_conversation_with_tools_and_images_becomes_anthropic() {
        let body = json!({
            "model": "auto",
            "max_tokens": 300,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u-1",
            "n": 1,
            "seed": 7,
            "parallel_tool_calls": false,
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Weather now",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "time"}}
            ],
            "tool_choice": "required",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
                ]},
                {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": "Thanks"},
                {"role": "assistant", "content": "You're welcome."}
            ]
        });
        assert_eq!(
            to_anthropic(body, Some(200)).unwrap(),
            json!({
                "model": "claude-x",
                "max_tokens": 200,
                "temperature": 0.5,
                "top_p": 0.9,
                "stop_sequences": ["END"],
                "stream": true,
                "metadata": {"user_id": "u-1"},
                "tools": [
                    {"name": "weather", "description": "Weather now",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "time", "input_schema": {"type": "object", "properties": {}}}
                ],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather here?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
                        {"type": "tool_use", "id": "call_2", "name": "time", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "rain"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                        {"type": "text", "text": "Thanks"}
                    ]},
                    {"role": "assistant", "content": "You're welcome."}
                ]
            })
        );
    }

    #[test]
    fn openai_defaults_and_system_blocks() {
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "One."},
                {"role": "developer", "content": [{"type": "text", "text": "Two."}]},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}], "tool_calls": []}
            ],
            "logprobs": false,
            "frequency_penalty": 0,
            "response_format": {"type": "text"},
            "stream": false,
            "temperature": null
        });
        assert_eq!(
            to_anthropic(body, None).unwrap(),
            json!({
                "model": "claude-x",
                "max_tokens": DEFAULT_MAX_TOKENS,
                "system": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "again"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}
                ]
            })
        );
    }

    #[test]
    fn parallel_tool_calls_off_without_a_choice_is_auto() {
        let body = json!({
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "parallel_tool_calls": false,
            "stop": ["a", "b"],
            "messages": [{"role": "user", "content": "x"}]
        });
        let out = to_anthropic(body, Some(5)).unwrap();
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));
        let body = json!({
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "messages": [{"role": "user", "content": "x"}]
        });
        assert_eq!(
            to_anthropic(body, Some(5)).unwrap()["tool_choice"],
            json!({"type": "tool", "name": "f"})
        );
    }

    #[test]
    fn untranslatable_openai_requests_name_the_field() {
        let user = json!([{"role": "user", "content": "x"}]);
        let cases = [
            (json!({"messages": user, "n": 2}), "n"),
            (json!({"messages": user, "logprobs": true}), "logprobs"),
            (json!({"messages": user, "top_logprobs": 2}), "top_logprobs"),
            (
                json!({"messages": user, "presence_penalty": 0.5}),
                "presence_penalty",
            ),
            (
                json!({"messages": user, "response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (
                json!({"messages": user, "logit_bias": {"1": 2}}),
                "logit_bias",
            ),
            (
                json!({"messages": user, "reasoning_effort": "low"}),
                "reasoning_effort",
            ),
            (json!({"messages": user, "audio": {}}), "audio"),
            (json!({"messages": user, "temperature": 1.5}), "temperature"),
            (json!({"messages": user, "functions": []}), "functions"),
            (
                json!({"messages": user, "tools": [{"type": "custom", "custom": {}}]}),
                "tools[0]",
            ),
            (
                json!({"messages": user, "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (json!({"model": "m"}), "messages"),
            (
                json!({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "late"}]}),
                "messages[1]",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "input_audio", "input_audio": {}}]}]}),
                "messages[0].content[1]",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
                "messages[0].content[0].image_url.url",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null,
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
                "messages[1].tool_calls[0].function.arguments",
            ),
            (
                json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": "x", "function_call": {"name": "f"}}]}),
                "messages[0].function_call",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
        ];
        for (body, param) in cases {
            let e = to_anthropic(body.clone(), None).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
        let e = to_anthropic(json!({"messages": user, "n": 3}), None).unwrap_err();
        assert_eq!(e.message, "`n` cannot be translated for an Anthropic model");
        let e = to_anthropic(
            json!({"messages": [{"role": "user", "content": "x"}, {"role": "developer", "content": "y"}]}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "`messages[1]` cannot be sent to an Anthropic model: system messages must come first"
        );
        let e = openai_to_anthropic(b"not json", "m", None).unwrap_err();
        assert_eq!(e.param, None);
    }
}
