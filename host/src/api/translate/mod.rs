//! Translation between the wire formats clients and upstreams speak: OpenAI chat completions,
//! Anthropic Messages and OpenAI's Responses API; and upstream, AWS Bedrock's Converse API and
//! Google's Gemini API, each by way of Messages ([`anthropic_to_converse`],
//! [`anthropic_to_gemini`]).
//!
//! When a client's format differs from its upstream's, the request body goes one way
//! ([`openai_to_anthropic`], [`anthropic_to_openai`], [`from_responses()`]) and the answer comes
//! back the other: a whole answer or an error body ([`answer`], [`response_answer`],
//! [`error_body`]), or a stream one SSE event at a time ([`StreamTranslator`]). The Responses API
//! is translated to and from chat completions, and to Anthropic's by way of them. Whatever cannot be said in the other format is refused with a 400 that
//! names the client's field, never sent half-translated. Everything here is a pure function over
//! bytes and `serde_json` values; nothing does I/O.

mod converse;
mod fields;
mod from_responses;
mod gemini;
mod invoke;
mod response;
mod stream;
mod to_anthropic;
mod to_openai;
mod to_responses;

use serde_json::{Map, Value};

pub use converse::{ConverseEvents, anthropic_to_converse, converse_answer, converse_error};
pub use from_responses::{from_responses, input_items};
pub use gemini::{GeminiEvents, anthropic_to_gemini, gemini_answer, gemini_error};
pub use invoke::{EmbeddingFamily, embeddings_to_invoke, invoke_embeddings_answer};
pub use response::{answer, error_body, error_json, response_answer};
pub use stream::{MadeResponse, StreamTranslator};
pub use to_anthropic::{DEFAULT_MAX_TOKENS, openai_to_anthropic};
pub use to_openai::anthropic_to_openai;
pub use to_responses::ResponseFrame;

/// A wire format, of a client or of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI chat completions.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI's Responses API; its errors take OpenAI's shape.
    Responses,
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The prompt tokens of an Anthropic `usage` object counted as OpenAI counts them: fresh input,
/// cache writes and cache reads together.
fn anthropic_prompt_tokens(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|key| usage.get(key).and_then(Value::as_u64))
    .sum()
}

/// A tool call's `arguments` string as Anthropic's `input` object; an empty string is no
/// arguments. `None` when it is not a JSON object.
fn tool_input(arguments: &str) -> Option<Map<String, Value>> {
    if arguments.trim().is_empty() {
        return Some(Map::new());
    }
    match serde_json::from_str(arguments) {
        Ok(Value::Object(input)) => Some(input),
        _ => None,
    }
}

/// A value's JSON text as bytes.
fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serialises")
}

/// One SSE event named `event` with `data`, appended to `out`.
fn sse_event(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut *out, data).expect("a JSON value serialises");
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_both_ways() {
        let pairs = [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ];
        for (anthropic, openai) in pairs {
            assert_eq!(finish_reason(anthropic), openai);
            assert_eq!(stop_reason(openai), anthropic);
        }
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("pause_turn"), "stop");
        assert_eq!(stop_reason("function_call"), "tool_use");
    }

    #[test]
    fn tool_arguments_must_be_an_object() {
        assert_eq!(tool_input(""), Some(Map::new()));
        assert_eq!(
            tool_input(r#"{"a":1}"#).map(Value::Object),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(tool_input("[1]"), None);
        assert_eq!(tool_input("{"), None);
    }

    #[test]
    fn prompt_tokens_count_the_cache() {
        let usage = serde_json::json!({"input_tokens": 3, "cache_creation_input_tokens": 10,
            "cache_read_input_tokens": 20, "output_tokens": 5});
        assert_eq!(anthropic_prompt_tokens(&usage), 33);
    }
}
