//! The built-in `echo` provider: OpenAI-format answers made in-process, no network, no key (an
//! Anthropic client gets them translated, like any OpenAI-format provider's).
//!
//! It lets the default config work offline and lets policy authors see routing decisions: the
//! answer names the model it stands for and what it received (message count, estimated tokens),
//! never the prompt text. Streaming answers are real SSE chunks ending in `data: [DONE]`. An
//! embeddings request gets a small vector per input, made from the model's name and the input's
//! position and size (as floats, or base64 as OpenAI sends them when asked).

use base64::Engine;
use bytes::Bytes;

use crate::api::ClientRequest;

/// Dimensions of an echo embedding when the request names none.
const EMBEDDING_DIMENSIONS: usize = 8;

/// The answer text for `model`.
fn text(model: &str, req: &ClientRequest) -> String {
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
fn usage(req: &ClientRequest, content: &str) -> serde_json::Value {
    let completion_tokens = content.split_whitespace().count();
    let prompt_tokens = req.estimated_input_tokens();
    serde_json::json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens as usize + completion_tokens
    })
}

/// A non-streaming `chat.completion` body.
pub fn completion(model: &str, req: &ClientRequest, request_id: &str) -> Bytes {
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

/// An embeddings `list` body: one embedding per input of `req`.
pub fn embeddings(model: &str, req: &ClientRequest) -> Bytes {
    let dimensions = req
        .field("dimensions")
        .and_then(|raw| serde_json::from_slice::<usize>(raw).ok())
        .unwrap_or(EMBEDDING_DIMENSIONS)
        .clamp(1, 4096);
    let base64 = req.field("encoding_format") == Some(&b"\"base64\""[..]);
    let data: Vec<serde_json::Value> = req
        .messages
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = vector(model, index, input.chars, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::Value::from(vector)
            };
            serde_json::json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = req.estimated_input_tokens();
    let body = serde_json::json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    });
    Bytes::from(body.to_string())
}

/// A unit vector of `dimensions` made from `model`, the input's position and its size.
fn vector(model: &str, index: usize, chars: u32, dimensions: usize) -> Vec<f32> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let raw: Vec<f32> = (0..dimensions)
        .map(|d| {
            let h = hasher.hash_one((model, index, chars, d));
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

/// The SSE events of a streamed answer, one `Bytes` per event, ending with `data: [DONE]`; with
/// a usage event before it when the request (as sent upstream) asks for one, as OpenAI's
/// `include_usage` does.
pub fn stream_events(model: &str, req: &ClientRequest, request_id: &str) -> Vec<Bytes> {
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

    fn request() -> ClientRequest {
        ClientRequest::parse(
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
