//! An Anthropic Messages request body as an OpenAI chat-completions body, for the model the route
//! chose.
//!
//! The client's whole body is read as JSON and the upstream's body built field by field. A tool
//! result marked `is_error` keeps that fact as a leading `Error: ` in the OpenAI tool message's
//! text. What OpenAI cannot express (extended thinking, server tools, documents, `top_k`, ...) is
//! refused with a 400 whose `param` is the field's path in the client's format. Pure functions
//! over bytes; no I/O.

use serde_json::{Map, Value, json};

use super::fields::{
    array, boolean, invalid, kind, number, object, parse_object, required_string, string, strings,
};
use crate::api::ApiError;

/// What starts the text of an Anthropic tool result marked `is_error` when it becomes an OpenAI
/// tool message, which has no such flag.
const TOOL_ERROR: &str = "Error: ";

const TO_OPENAI: &str = "cannot be translated for an OpenAI model";

/// An Anthropic Messages body rewritten as an OpenAI chat-completions body for `model`;
/// `max_tokens` is sent as `max_completion_tokens`. A streamed request asks for the final usage
/// chunk (`"stream_options": {"include_usage": true}`).
pub fn anthropic_to_openai(
    body: &[u8],
    model: &str,
    max_tokens: Option<u32>,
) -> Result<Vec<u8>, ApiError> {
    let request = parse_object(body)?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    if let Some(max_tokens) = max_tokens {
        out.insert("max_completion_tokens".into(), max_tokens.into());
    }
    let mut system = None;
    let mut messages = None;
    let mut tools = None;
    let mut tool_choice = None;
    for (key, value) in &request {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "max_tokens" => {}
            "messages" => messages = Some(value),
            "system" => system = Some(system_text(value)?),
            "tools" => tools = Some(tools_to_openai(value)?),
            "tool_choice" => tool_choice = Some(tool_choice_to_openai(value)?),
            "thinking" if value.get("type").is_some_and(|t| t == "disabled") => {}
            _ if option_to_openai(key, value, &mut out)? => {}
            _ => return Err(invalid(key, TO_OPENAI)),
        }
    }
    if let Some(tools) = tools.filter(|t| !t.is_empty()) {
        out.insert("tools".into(), Value::Array(tools));
        if let Some((choice, parallel)) = tool_choice {
            out.insert("tool_choice".into(), choice);
            if !parallel {
                out.insert("parallel_tool_calls".into(), false.into());
            }
        }
    }
    let messages = messages.ok_or_else(|| invalid("messages", "is required"))?;
    let mut translated = Vec::new();
    if let Some(system) = system {
        translated.push(json!({"role": "system", "content": system}));
    }
    messages_to_openai(messages, &mut translated)?;
    out.insert("messages".into(), Value::Array(translated));
    Ok(super::to_bytes(&Value::Object(out)))
}

/// Anthropic's sampling, stop, stream and metadata option `key` as OpenAI's, into `out`;
/// `false` for any other key.
fn option_to_openai(
    key: &str,
    value: &Value,
    out: &mut Map<String, Value>,
) -> Result<bool, ApiError> {
    match key {
        "temperature" | "top_p" => {
            number(value, key)?;
            out.insert(key.into(), value.clone());
        }
        "stop_sequences" => {
            let stops = strings(value, key)?;
            if !stops.is_empty() {
                out.insert("stop".into(), Value::Array(stops));
            }
        }
        "stream" => {
            if boolean(value, key)? {
                out.insert("stream".into(), true.into());
                out.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        "metadata" => {
            let metadata = object(value, key)?;
            if let Some(user) = metadata.get("user_id").filter(|u| !u.is_null()) {
                let user = string(user, "metadata.user_id")?;
                out.insert("user".into(), user.into());
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Anthropic's `system` (a string or text blocks) as one string.
fn system_text(system: &Value) -> Result<String, ApiError> {
    match system {
        Value::String(text) => Ok(text.clone()),
        Value::Array(list) => {
            let mut texts = Vec::with_capacity(list.len());
            for (j, block) in list.iter().enumerate() {
                let param = format!("system[{j}]");
                match kind(block, &param)? {
                    "text" => texts.push(required_string(block, "text", &param)?),
                    other => {
                        return Err(invalid(
                            &param,
                            &format!("of type `{other}` cannot be sent to an OpenAI model"),
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(invalid(
            "system",
            "must be a string or an array of text blocks",
        )),
    }
}

/// Anthropic messages appended to `out` as OpenAI messages.
fn messages_to_openai(messages: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let list = messages
        .as_array()
        .ok_or_else(|| invalid("messages", "must be an array of messages"))?;
    for (i, message) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        object(message, &param)?;
        let role = required_string(message, "role", &param)?;
        let content = message
            .get("content")
            .ok_or_else(|| invalid(&format!("{param}.content"), "is required"))?;
        match (role, content) {
            ("user" | "assistant", Value::String(text)) => {
                out.push(json!({"role": role, "content": text}));
            }
            ("user", Value::Array(blocks)) => user_blocks(blocks, &param, out)?,
            ("assistant", Value::Array(blocks)) => out.push(assistant_blocks(blocks, &param)?),
            ("user" | "assistant", _) => {
                return Err(invalid(
                    &format!("{param}.content"),
                    "must be a string or an array of content blocks",
                ));
            }
            _ => {
                return Err(invalid(
                    &format!("{param}.role"),
                    "must be user or assistant",
                ));
            }
        }
    }
    Ok(())
}

/// A user message's blocks: its tool results as `tool` messages first, then the rest as one
/// user message (a string when it is a single text block).
fn user_blocks(
    blocks: &[Value],
    message_param: &str,
    out: &mut Vec<Value>,
) -> Result<(), ApiError> {
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{message_param}.content[{j}]");
        match kind(block, &param)? {
            "text" => {
                let text = required_string(block, "text", &param)?;
                parts.push(json!({"type": "text", "text": text}));
            }
            "image" => {
                let url = image_url(block, &param)?;
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            "tool_result" => {
                let id = required_string(block, "tool_use_id", &param)?;
                let mut content = tool_result_text(block, &param)?;
                // OpenAI's tool messages have no error flag: the model is told in the text.
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    content = format!("{TOOL_ERROR}{content}");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            other => {
                return Err(invalid(
                    &param,
                    &format!("of type `{other}` cannot be sent to an OpenAI model"),
                ));
            }
        }
    }
    match parts.as_slice() {
        [] => {}
        [single] if single["type"] == "text" => {
            out.push(json!({"role": "user", "content": single["text"]}));
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

/// An image block's source as a URL: a data URL for base64 data.
fn image_url(block: &Value, param: &str) -> Result<String, ApiError> {
    let source_param = format!("{param}.source");
    let source = block
        .get("source")
        .ok_or_else(|| invalid(&source_param, "is required"))?;
    match kind(source, &source_param)? {
        "base64" => {
            let media_type = required_string(source, "media_type", &source_param)?;
            let data = required_string(source, "data", &source_param)?;
            Ok(format!("data:{media_type};base64,{data}"))
        }
        "url" => Ok(required_string(source, "url", &source_param)?.to_string()),
        other => Err(invalid(
            &source_param,
            &format!("of type `{other}` cannot be sent to an OpenAI model"),
        )),
    }
}

/// A tool result's content as text: a string, or text blocks joined by newlines.
fn tool_result_text(block: &Value, param: &str) -> Result<String, ApiError> {
    match block.get("content").filter(|c| !c.is_null()) {
        None => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(list)) => {
            let mut texts = Vec::with_capacity(list.len());
            for (k, inner) in list.iter().enumerate() {
                let inner_param = format!("{param}.content[{k}]");
                match kind(inner, &inner_param)? {
                    "text" => texts.push(required_string(inner, "text", &inner_param)?),
                    other => {
                        return Err(invalid(
                            &inner_param,
                            &format!(
                                "of type `{other}` cannot be sent to an OpenAI model in a tool result"
                            ),
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(
            &format!("{param}.content"),
            "must be a string or an array of content blocks",
        )),
    }
}

/// An assistant message's blocks as one OpenAI assistant message: text joined, tool uses as
/// tool calls, thinking dropped.
fn assistant_blocks(blocks: &[Value], message_param: &str) -> Result<Value, ApiError> {
    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("{message_param}.content[{j}]");
        match kind(block, &param)? {
            "text" => {
                text.push_str(required_string(block, "text", &param)?);
                has_text = true;
            }
            "tool_use" => {
                let id = required_string(block, "id", &param)?;
                let name = required_string(block, "name", &param)?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(invalid(
                    &param,
                    &format!("of type `{other}` cannot be sent to an OpenAI model"),
                ));
            }
        }
    }
    let content = if has_text {
        Value::String(text)
    } else {
        Value::Null
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    Ok(message)
}

fn tools_to_openai(tools: &Value) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (i, tool) in array(tools, "tools")?.iter().enumerate() {
        let param = format!("tools[{i}]");
        object(tool, &param)?;
        if let Some(kind) = tool.get("type").filter(|t| !t.is_null() && *t != "custom") {
            return Err(invalid(
                &param,
                &format!("is a server tool ({kind}) that cannot be sent to an OpenAI model"),
            ));
        }
        let mut function = Map::new();
        let name = required_string(tool, "name", &param)?;
        function.insert("name".into(), name.into());
        if let Some(description) = tool.get("description").filter(|d| !d.is_null()) {
            let description = string(description, &format!("{param}.description"))?;
            function.insert("description".into(), description.into());
        }
        let schema = tool
            .get("input_schema")
            .ok_or_else(|| invalid(&format!("{param}.input_schema"), "is required"))?;
        object(schema, &format!("{param}.input_schema"))?;
        function.insert("parameters".into(), schema.clone());
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// Anthropic's `tool_choice` as OpenAI's, and whether parallel tool calls stay allowed.
fn tool_choice_to_openai(choice: &Value) -> Result<(Value, bool), ApiError> {
    let translated = match kind(choice, "tool_choice")? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = required_string(choice, "name", "tool_choice")?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(invalid("tool_choice.type", TO_OPENAI)),
    };
    let disable_parallel = match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => false,
        Some(flag) => boolean(flag, "tool_choice.disable_parallel_tool_use")?,
    };
    Ok((translated, !disable_parallel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_openai(body: Value, max_tokens: Option<u32>) -> Result<Value, ApiError> {
        let out = anthropic_to_openai(body.to_string().as_bytes(), "gpt-x", max_tokens)?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn anthropic_conversation_with_tools_and_images_becomes_openai() {
        let body = json!({
            "model": "claude-x",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Use tools."}],
            "temperature": 0.2,
            "top_p": 0.8,
            "stop_sequences": ["END"],
            "stream": true,
            "metadata": {"user_id": "u-1"},
            "thinking": {"type": "disabled"},
            "tools": [{"name": "weather", "description": "Weather now",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "rain"}, {"type": "text", "text": "cold"}]},
                    {"type": "text", "text": "Thanks"}
                ]},
                {"role": "assistant", "content": "You're welcome."},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "late", "is_error": true}]}
            ]
        });
        assert_eq!(
            to_openai(body, Some(500)).unwrap(),
            json!({
                "model": "gpt-x",
                "max_completion_tokens": 500,
                "temperature": 0.2,
                "top_p": 0.8,
                "stop": ["END"],
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u-1",
                "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "messages": [
                    {"role": "system", "content": "Be brief.\nUse tools."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather here?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
                    ]},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "rain\ncold"},
                    {"role": "user", "content": "Thanks"},
                    {"role": "assistant", "content": "You're welcome."},
                    {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: late"}
                ]
            })
        );
    }

    #[test]
    fn anthropic_tool_choices_and_plain_strings() {
        let body = json!({
            "max_tokens": 10,
            "system": "Be brief.",
            "tools": [{"type": "custom", "name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
            ]
        });
        assert_eq!(
            to_openai(body, None).unwrap(),
            json!({
                "model": "gpt-x",
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ]}
                ]
            })
        );
        for (choice, expected) in [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "none"}), json!("none")),
        ] {
            let body = json!({"tools": [{"name": "f", "input_schema": {}}], "tool_choice": choice,
                "messages": [{"role": "user", "content": "x"}]});
            let out = to_openai(body, None).unwrap();
            assert_eq!(out["tool_choice"], expected);
            assert_eq!(out.get("parallel_tool_calls"), None);
        }
    }

    #[test]
    fn untranslatable_anthropic_requests_name_the_field() {
        let user = json!([{"role": "user", "content": "x"}]);
        let cases = [
            (json!({"messages": user, "top_k": 5}), "top_k"),
            (
                json!({"messages": user, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
                "thinking",
            ),
            (
                json!({"messages": user, "service_tier": "auto"}),
                "service_tier",
            ),
            (json!({"messages": user, "mcp_servers": []}), "mcp_servers"),
            (
                json!({"messages": user, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools[0]",
            ),
            (
                json!({"messages": user, "system": [{"type": "image"}]}),
                "system[0]",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": [
                    {"type": "text", "text": "a"}, {"type": "document", "source": {}}]}]}),
                "messages[1].content[1]",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                    "content": [{"type": "image", "source": {}}]}]}]}),
                "messages[0].content[0].content[0]",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
                "messages[0].content[0].source",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s"}]}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"messages": [{"role": "system", "content": "x"}]}),
                "messages[0].role",
            ),
        ];
        for (body, param) in cases {
            let e = to_openai(body.clone(), None).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
        let e = to_openai(json!({"messages": user, "top_k": 5}), None).unwrap_err();
        assert_eq!(
            e.message,
            "`top_k` cannot be translated for an OpenAI model"
        );
    }
}
