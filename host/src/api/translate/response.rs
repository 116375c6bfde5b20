//! Whole answers from one wire format to the other: a non-streamed completion, an upstream's
//! error body, and the error bodies the proxy writes itself, each in the shape the client's SDK
//! parses.
//!
//! A successful answer that cannot be read is reported as a `String` for the caller to turn into
//! a 502; an error body is always produced, keeping the upstream's message when there is one.
//! Pure functions over bytes; no I/O beyond reading the clock for OpenAI's `created`.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::to_responses::{ResponseFrame, completion_to_response};
use super::{Wire, anthropic_prompt_tokens, finish_reason, stop_reason, to_bytes, tool_input};

/// A successful non-streamed answer of the upstream's wire `from` rewritten in wire `to`; the
/// input itself when they are the same. `Err` says what was wrong with the upstream's answer.
pub fn answer(from: Wire, to: Wire, body: &[u8]) -> Result<Vec<u8>, String> {
    answer_at(from, to, body, crate::clock::unix_secs())
}

/// [`answer`], with `created` for an OpenAI answer given.
fn answer_at(from: Wire, to: Wire, body: &[u8], created: u64) -> Result<Vec<u8>, String> {
    if from == to {
        return Ok(body.to_vec());
    }
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the upstream's answer is not valid JSON: {e}"))?;
    let translated = match to {
        Wire::Openai => anthropic_to_openai(&answer, created)?,
        Wire::Anthropic => openai_to_anthropic(&answer)?,
        Wire::Responses => return Err("a Responses answer is made by `response_answer`".into()),
    };
    Ok(to_bytes(&translated))
}

/// A successful non-streamed answer of the upstream's wire `from` as the response object
/// `frame` describes; `None` when the upstream speaks the Responses API itself and its answer
/// passes as it is. `Err` says what was wrong with the upstream's answer.
pub fn response_answer(
    from: Wire,
    body: &[u8],
    frame: &ResponseFrame,
) -> Result<Option<Value>, String> {
    let answer: Value = match from {
        Wire::Responses => return Ok(None),
        _ => serde_json::from_slice(body)
            .map_err(|e| format!("the upstream's answer is not valid JSON: {e}"))?,
    };
    let completion = match from {
        Wire::Anthropic => anthropic_to_openai(&answer, frame.created_at)?,
        _ => answer,
    };
    completion_to_response(&completion, frame).map(Some)
}

fn text_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn count(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn anthropic_to_openai(message: &Value, created: u64) -> Result<Value, String> {
    let blocks = message
        .get("content")
        .and_then(Value::as_array)
        .ok_or("the upstream's answer has no `content` array")?;
    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match text_of(block, "type") {
            "text" => {
                text.push_str(text_of(block, "text"));
                has_text = true;
            }
            "tool_use" => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": text_of(block, "id"),
                    "type": "function",
                    "function": {"name": text_of(block, "name"), "arguments": input.to_string()},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(format!(
                    "the upstream's answer has a `{other}` block, which has no OpenAI form"
                ));
            }
        }
    }
    let mut reply = json!({
        "role": "assistant",
        "content": if has_text { Value::String(text) } else { Value::Null },
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        reply["tool_calls"] = Value::Array(tool_calls);
    }
    let usage = message.get("usage").unwrap_or(&Value::Null);
    let prompt = anthropic_prompt_tokens(usage);
    let completion = count(usage, "output_tokens");
    Ok(json!({
        "id": text_of(message, "id"),
        "object": "chat.completion",
        "created": created,
        "model": text_of(message, "model"),
        "choices": [{
            "index": 0,
            "message": reply,
            "finish_reason": finish_reason(text_of(message, "stop_reason")),
            "logprobs": null,
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }))
}

fn openai_to_anthropic(completion: &Value) -> Result<Value, String> {
    let choice = completion
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or("the upstream's answer has no choices")?;
    let reply = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    for key in ["content", "refusal"] {
        let text = text_of(reply, key);
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
    }
    let calls = reply.get("tool_calls").and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = text_of(function, "name");
        let input = tool_input(text_of(function, "arguments")).ok_or_else(|| {
            format!("the arguments of the upstream's call to `{name}` are not a JSON object")
        })?;
        content.push(
            json!({"type": "tool_use", "id": text_of(call, "id"), "name": name, "input": input}),
        );
    }
    let usage = completion.get("usage").unwrap_or(&Value::Null);
    Ok(json!({
        "id": text_of(completion, "id"),
        "type": "message",
        "role": "assistant",
        "model": text_of(completion, "model"),
        "content": content,
        "stop_reason": stop_reason(text_of(choice, "finish_reason")),
        "stop_sequence": null,
        "usage": {
            "input_tokens": count(usage, "prompt_tokens"),
            "output_tokens": count(usage, "completion_tokens"),
        },
    }))
}

/// An upstream error answer (any non-2xx body, possibly not JSON at all) in wire `to`'s error
/// shape, keeping the upstream's message when it can be read, else a message naming the status.
pub fn error_body(to: Wire, status: StatusCode, upstream_body: &[u8]) -> Vec<u8> {
    let parsed: Value = serde_json::from_slice(upstream_body).unwrap_or(Value::Null);
    // OpenAI and Anthropic both nest the details under `error`; some servers send them bare.
    let details = match parsed.get("error") {
        Some(Value::String(message)) => json!({"message": message}),
        Some(error) => error.clone(),
        None => parsed,
    };
    let field = |key: &str| {
        details
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let message = field("message").map_or_else(
        || format!("the upstream answered with status {status}"),
        str::to_string,
    );
    let kind = field("type").unwrap_or_else(|| openai_type(status));
    error_json(to, status, kind, field("code"), field("param"), &message).into_bytes()
}

/// OpenAI's error `type` for a status, when the upstream named none.
fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's error `type` for a status.
pub(super) fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// A client-facing error body in `wire`'s shape from its parts. OpenAI:
/// `{"error": {"message", "type", "param", "code"}}`; Anthropic:
/// `{"type": "error", "error": {"type", "message"}}`, the type following from the status (529 is
/// `overloaded_error`, other 5xx `api_error`).
pub fn error_json(
    wire: Wire,
    status: StatusCode,
    openai_type: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> String {
    let body = match wire {
        Wire::Openai | Wire::Responses => {
            let mut error = Map::new();
            error.insert("message".into(), message.into());
            error.insert("type".into(), openai_type.into());
            error.insert("param".into(), param.into());
            error.insert("code".into(), code.into());
            json!({"error": error})
        }
        Wire::Anthropic => json!({
            "type": "error",
            "error": {"type": anthropic_type(status), "message": message},
        }),
    };
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(from: Wire, to: Wire, body: Value) -> Result<Value, String> {
        let out = answer_at(from, to, body.to_string().as_bytes(), 1_700_000_000)?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn anthropic_message_becomes_a_chat_completion() {
        let message = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 5,
                "cache_read_input_tokens": 100, "output_tokens": 20}
        });
        assert_eq!(
            translate(Wire::Anthropic, Wire::Openai, message).unwrap(),
            json!({
                "id": "msg_1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "claude-x",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Let me check.",
                        "refusal": null,
                        "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]
                    },
                    "finish_reason": "tool_calls",
                    "logprobs": null
                }],
                "usage": {"prompt_tokens": 115, "completion_tokens": 20, "total_tokens": 135}
            })
        );
    }

    #[test]
    fn stop_reasons_reach_openai_clients() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ] {
            let message = json!({"id": "m", "model": "c", "content": [], "stop_reason": stop,
                "usage": {"input_tokens": 1, "output_tokens": 0}});
            let out = translate(Wire::Anthropic, Wire::Openai, message).unwrap();
            assert_eq!(out["choices"][0]["finish_reason"], finish);
            assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        }
    }

    #[test]
    fn chat_completion_becomes_an_anthropic_message() {
        let completion = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                "role": "assistant", "content": "Let me check.", "refusal": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]
            }}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
        });
        assert_eq!(
            translate(Wire::Openai, Wire::Anthropic, completion).unwrap(),
            json!({
                "id": "chatcmpl-1",
                "type": "message",
                "role": "assistant",
                "model": "gpt-x",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 7}
            })
        );
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
        ] {
            let completion = json!({"id": "c", "model": "g", "choices": [{"finish_reason": finish,
                "message": {"role": "assistant", "content": ""}}]});
            let out = translate(Wire::Openai, Wire::Anthropic, completion).unwrap();
            assert_eq!(out["stop_reason"], stop);
            assert_eq!(out["content"], json!([]));
            assert_eq!(out["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
        }
    }

    #[test]
    fn unreadable_answers_are_errors_and_same_wire_is_identity() {
        let body = br#"{"not": "checked"}"#;
        assert_eq!(answer(Wire::Openai, Wire::Openai, body).unwrap(), body);
        assert_eq!(
            answer(Wire::Anthropic, Wire::Anthropic, body).unwrap(),
            body
        );
        assert!(answer(Wire::Openai, Wire::Anthropic, b"<html>").is_err());
        assert!(
            translate(
                Wire::Openai,
                Wire::Anthropic,
                json!({"id": "c", "choices": []})
            )
            .is_err()
        );
        assert!(translate(Wire::Anthropic, Wire::Openai, json!({"id": "m"})).is_err());
        let bad_arguments = json!({"choices": [{"finish_reason": "tool_calls", "message": {
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "nope"}}]}}]});
        assert!(translate(Wire::Openai, Wire::Anthropic, bad_arguments).is_err());
    }

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn upstream_errors_keep_their_message_in_the_clients_shape() {
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            parsed(&error_body(
                Wire::Openai,
                StatusCode::from_u16(529).unwrap(),
                anthropic
            )),
            json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": null}})
        );
        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            parsed(&error_body(
                Wire::Anthropic,
                StatusCode::TOO_MANY_REQUESTS,
                openai
            )),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
        );
        assert_eq!(
            parsed(&error_body(
                Wire::Openai,
                StatusCode::TOO_MANY_REQUESTS,
                openai
            )),
            json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null,
                "code": "rate_limit_exceeded"}})
        );
        assert_eq!(
            parsed(&error_body(
                Wire::Anthropic,
                StatusCode::BAD_GATEWAY,
                b"<html>bad gateway</html>"
            )),
            json!({"type": "error", "error": {"type": "api_error",
                "message": "the upstream answered with status 502 Bad Gateway"}})
        );
        assert_eq!(
            parsed(&error_body(
                Wire::Openai,
                StatusCode::SERVICE_UNAVAILABLE,
                b""
            )),
            json!({"error": {"message": "the upstream answered with status 503 Service Unavailable",
                "type": "server_error", "param": null, "code": null}})
        );
        assert_eq!(
            parsed(&error_body(
                Wire::Openai,
                StatusCode::NOT_FOUND,
                br#"{"error":"no such model"}"#
            )),
            json!({"error": {"message": "no such model", "type": "not_found_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn error_json_in_both_shapes() {
        assert_eq!(
            parsed(
                error_json(
                    Wire::Openai,
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    None,
                    Some("messages[0]"),
                    "bad"
                )
                .as_bytes()
            ),
            json!({"error": {"message": "bad", "type": "invalid_request_error",
                "param": "messages[0]", "code": null}})
        );
        let anthropic_types = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "api_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in anthropic_types {
            let status = StatusCode::from_u16(status).unwrap();
            let body = error_json(
                Wire::Anthropic,
                status,
                "server_error",
                Some("c"),
                None,
                "m",
            );
            assert_eq!(
                parsed(body.as_bytes()),
                json!({"type": "error", "error": {"type": kind, "message": "m"}}),
                "{status}"
            );
        }
    }
}
