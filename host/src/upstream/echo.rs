//! The built-in `echo` provider: OpenAI-format answers made in-process, no network, no key (an
//! Anthropic client gets them translated, like any OpenAI-format provider's).
//!
//! It lets the default config work offline and lets policy authors see routing decisions: the
//! answer names the model it stands for and what it received (message count, estimated tokens),
//! never the prompt text. Streaming answers are real SSE chunks ending in `data: [DONE]`.

use bytes::Bytes;

use crate::api::ChatRequest;

/// The answer text for `model`.
fn text(model: &str, req: &ChatRequest) -> String {
    format!(
        "Echo from {model}: received {} message(s), about {} prompt tokens.",
        req.messages.len(),
        req.estimated_input_tokens()
    )
}

fn completion_id(request_id: &str) -> String {
    format!("chatcmpl-echo-{request_id}")
}

/// The usage object of the answer with `content` to `req`.
fn usage(req: &ChatRequest, content: &str) -> serde_json::Value {
    let completion_tokens = content.split_whitespace().count();
    let prompt_tokens = req.estimated_input_tokens();
    serde_json::json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens as usize + completion_tokens
    })
}

/// A non-streaming `chat.completion` body.
pub fn completion(model: &str, req: &ChatRequest, request_id: &str) -> Bytes {
    let content = text(model, req);
    let body = serde_json::json!({
        "id": completion_id(request_id),
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": usage(req, &content)
    });
    Bytes::from(body.to_string())
}

/// The SSE events of a streamed answer, one `Bytes` per event, ending with `data: [DONE]`; with
/// a usage event before it when the request (as sent upstream) asks for one, as OpenAI's
/// `include_usage` does.
pub fn stream_events(model: &str, req: &ChatRequest, request_id: &str) -> Vec<Bytes> {
    let id = completion_id(request_id);
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let event = serde_json::json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        Bytes::from(format!("data: {event}\n\n"))
    };
    let content = text(model, req);
    let mut events = vec![chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    events.extend(
        content
            .split_inclusive(' ')
            .map(|word| chunk(serde_json::json!({"content": word}), None)),
    );
    events.push(chunk(serde_json::json!({}), Some("stop")));
    if req.wants_stream_usage() || req.asks_stream_usage() {
        let event = serde_json::json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": usage(req, &content)
        });
        events.push(Bytes::from(format!("data: {event}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Wire;

    fn request() -> ChatRequest {
        ChatRequest::parse(
            Wire::Openai,
            Bytes::from_static(
                br#"{"model":"m","messages":[{"role":"user","content":"secret prompt"}]}"#,
            ),
        )
        .unwrap()
    }

    #[test]
    fn completion_names_the_model_and_not_the_prompt() {
        let body: serde_json::Value =
            serde_json::from_slice(&completion("gpt-x", &request(), "r1")).unwrap();
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(content.starts_with("Echo from gpt-x:"), "{content}");
        assert!(!content.contains("secret"));
        assert_eq!(body["model"], "gpt-x");
    }

    #[test]
    fn stream_reassembles_to_the_same_text() {
        let events = stream_events("gpt-x", &request(), "r1");
        assert_eq!(events.last().unwrap(), "data: [DONE]\n\n");
        let text: String = events[..events.len() - 1]
            .iter()
            .map(|e| {
                let json: serde_json::Value = serde_json::from_slice(&e[6..]).unwrap();
                json["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(text, super::text("gpt-x", &request()));
    }
}
