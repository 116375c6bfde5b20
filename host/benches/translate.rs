//! What serving a client from a provider of the other API costs: the same request (6 messages
//! with a system prompt, a tool call and its result, one tool declared) parsed and forwarded to
//! a provider of the client's own API as the baseline (the model name rewritten, every other
//! byte copied), then translated OpenAI -> Anthropic and Anthropic -> OpenAI; and one answer and
//! one streamed text event translated back. Read the results as ratios to the baseline, which is
//! measured in the same run.
//!
//! The same request is also translated for AWS Bedrock (OpenAI -> Anthropic -> Converse) and
//! signed with SigV4, and a Converse answer translated back to OpenAI by way of Anthropic.
//!
//! Run with `cargo bench -p switchyard --bench translate`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchyard::api::translate::{self, StreamTranslator};
use switchyard::api::{ClientRequest, Wire};
use switchyard::upstream::bedrock::sign_request;

/// The proxy's own allocator (`main.rs`), so that what a translation allocates costs what it
/// costs in the proxy.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn openai_request() -> Bytes {
    let body = json!({
        "model": "auto", "max_tokens": 500, "temperature": 0.3,
        "messages": [
            {"role": "system", "content": "You are a careful assistant. ".repeat(8)},
            {"role": "user", "content": "What is the weather in Paris? ".repeat(20)},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
            {"role": "assistant", "content": "It is 18C and sunny in Paris. ".repeat(10)},
            {"role": "user", "content": "And what should I wear there tomorrow? ".repeat(20)}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "description": "Weather of a city", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    });
    Bytes::from(body.to_string())
}

fn translate(c: &mut Criterion) {
    let openai = openai_request();
    let anthropic =
        Bytes::from(translate::openai_to_anthropic(&openai, "auto", None).expect("translates"));
    let anthropic_answer = json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude", "content": [{"type": "text", "text": "Wear a light jacket. ".repeat(20)}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 400, "output_tokens": 90}})
    .to_string();
    let converse_answer = json!({"output": {"message": {"role": "assistant",
        "content": [{"text": "Wear a light jacket. ".repeat(20)}]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": 400, "outputTokens": 90, "totalTokens": 490}})
    .to_string();
    let text_event = format!(
        "event: content_block_delta\ndata: {}\n\n",
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": "Wear a light "}})
    );

    let mut group = c.benchmark_group("translate");
    group.bench_function("baseline: parse and forward to the same API", |b| {
        b.iter(|| {
            let req = ClientRequest::parse(Wire::Openai, std::hint::black_box(openai.clone()))
                .expect("parses");
            req.body_for(Wire::Openai, "gpt-4o-mini", None)
                .expect("forwards")
        })
    });
    group.bench_function("parse and translate OpenAI -> Anthropic", |b| {
        b.iter(|| {
            let req = ClientRequest::parse(Wire::Openai, std::hint::black_box(openai.clone()))
                .expect("parses");
            req.body_for(Wire::Anthropic, "claude", None)
                .expect("translates")
        })
    });
    group.bench_function("parse and translate Anthropic -> OpenAI", |b| {
        b.iter(|| {
            let req =
                ClientRequest::parse(Wire::Anthropic, std::hint::black_box(anthropic.clone()))
                    .expect("parses");
            req.body_for(Wire::Openai, "gpt-4o-mini", None)
                .expect("translates")
        })
    });
    group.bench_function("answer Anthropic -> OpenAI", |b| {
        b.iter(|| {
            translate::answer(
                Wire::Anthropic,
                Wire::Openai,
                std::hint::black_box(anthropic_answer.as_bytes()),
            )
            .expect("translates")
        })
    });
    group.bench_function(
        "parse, translate OpenAI -> Converse and sign (SigV4)",
        |b| {
            let credentials = Credentials::new("AKIDBENCH", "secret", None, None, "bench");
            let url = reqwest::Url::parse(
                "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
            )
            .expect("URL");
            b.iter(|| {
                let req = ClientRequest::parse(Wire::Openai, std::hint::black_box(openai.clone()))
                    .expect("parses");
                let body = req
                    .body_for(Wire::Anthropic, "m", None)
                    .expect("translates");
                let body = translate::anthropic_to_converse(&body).expect("translates");
                let mut headers = axum::http::HeaderMap::new();
                headers.insert(
                    "content-type",
                    axum::http::HeaderValue::from_static("application/json"),
                );
                sign_request(
                    &credentials,
                    "us-east-1",
                    SystemTime::now(),
                    &url,
                    &mut headers,
                    &body,
                )
                .expect("signs");
                (body, headers)
            })
        },
    );
    group.bench_function("answer Converse -> Anthropic -> OpenAI", |b| {
        b.iter(|| {
            let answer = translate::converse_answer(
                std::hint::black_box(converse_answer.as_bytes()),
                "m",
                "msg_1",
            )
            .expect("translates");
            translate::answer(Wire::Anthropic, Wire::Openai, &answer).expect("translates")
        })
    });
    group.bench_function("one stream event Anthropic -> OpenAI", |b| {
        let mut translator = StreamTranslator::new(Wire::Anthropic, Wire::Openai, false, 0);
        b.iter(|| translator.event(std::hint::black_box(text_event.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
