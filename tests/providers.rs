//! Provider kinds and translation between the two client APIs, end to end: OpenAI clients
//! served by an Anthropic upstream and Anthropic clients served by an OpenAI one, streaming and
//! not, with tools and a system prompt. Each test checks both the request the mock upstream
//! receives and the answer the client gets, byte for byte where the format allows (`created`,
//! a clock reading, is the one field set aside). Also: errors in the client's shape, requests
//! the other API cannot express, Azure deployment URLs and HTTP/2 without TLS.

use axum::http::Version;
use serde_json::{Value, json};
use switchyard_e2e::{Behaviour, ConfigBuilder, MockUpstream, Proxy, policy_wasm};

const KEY_ENV: (&str, &str) = ("UPSTREAM_KEY", "sk-upstream-secret");

/// A proxy with model `claude` on an Anthropic provider at `anthropic` and `gpt` on an OpenAI
/// provider at `openai`, priced 1 and 4 dollars per million tokens (input, output).
fn proxy(anthropic: &MockUpstream, openai: &MockUpstream) -> Proxy {
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of(
            "anthropic",
            "anthropic",
            &anthropic.url,
            &["api_key_env = \"UPSTREAM_KEY\""],
        )
        .provider("openai", &openai.url, Some("UPSTREAM_KEY"))
        .model("claude", "anthropic", "claude-upstream", 1.0, &[])
        .model("gpt", "openai", "gpt-upstream", 1.0, &[])
        .fallback(&["gpt"])
        .toml();
    Proxy::start(&config, &[KEY_ENV])
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

/// The data of every `data:` line of an SSE body, `created` removed, and the event names.
fn sse(body: &[u8]) -> (Vec<Option<String>>, Vec<Value>) {
    let text = std::str::from_utf8(body).expect("utf-8");
    let mut names = Vec::new();
    let mut data = Vec::new();
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut name = None;
        for line in event.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                let mut value: Value = if d == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(d).expect("JSON data")
                };
                if let Some(o) = value.as_object_mut() {
                    o.remove("created");
                }
                data.push(value);
                names.push(name.clone());
            }
        }
    }
    (names, data)
}

fn without_created(mut v: Value) -> Value {
    v.as_object_mut().expect("object").remove("created");
    v
}

fn anthropic_event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn openai_chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "msg_1", "object": "chat.completion.chunk", "model": "claude-upstream",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

#[tokio::test]
async fn an_openai_client_is_served_by_an_anthropic_upstream() {
    let anthropic = MockUpstream::start("anthropic").await;
    let openai = MockUpstream::start("openai").await;
    let proxy = proxy(&anthropic, &openai);
    anthropic.set(Behaviour::json(
        200,
        &json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-upstream",
                "content": [{"type": "text", "text": "Let me check."},
                            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Lyon"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 50, "output_tokens": 20}}),
    ));
    let body = json!({
        "model": "claude", "max_tokens": 300, "temperature": 0.5,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
                   "description": "Weather of a city", "parameters": weather_schema()}}],
        "tool_choice": "auto"
    });
    let client = reqwest::Client::new();
    let reply = proxy
        .chat(&client, None, &body, &[("x-test-route", "claude")])
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    let received = anthropic.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/messages");
    assert_eq!(received[0].headers["x-api-key"], "sk-upstream-secret");
    assert_eq!(received[0].headers["anthropic-version"], "2023-06-01");
    assert!(!received[0].headers.contains_key("authorization"));
    assert_eq!(
        received[0].body,
        json!({
            "model": "claude-upstream", "max_tokens": 300, "temperature": 0.5,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1",
                    "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                    "content": "18C and sunny"}]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather of a city",
                       "input_schema": weather_schema()}],
            "tool_choice": {"type": "auto"}
        })
    );

    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(
        without_created(reply.json()),
        json!({
            "id": "msg_1", "object": "chat.completion", "model": "claude-upstream",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me check.",
                "refusal": null,
                "tool_calls": [{"id": "toolu_2", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
                "finish_reason": "tool_calls", "logprobs": null}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
        })
    );
    // 50 input tokens at $1/M and 20 output tokens at $4/M.
    assert_eq!(reply.header("x-switchyard-cost-usd"), "0.00013000");
    assert_eq!(reply.header("x-switchyard-provider"), "anthropic");
}

#[tokio::test]
async fn an_openai_client_streams_from_an_anthropic_upstream() {
    let anthropic = MockUpstream::start("anthropic").await;
    let openai = MockUpstream::start("openai").await;
    let proxy = proxy(&anthropic, &openai);
    let delta = |index: u32, delta: Value| {
        anthropic_event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    };
    anthropic.set(Behaviour::sse(&[
        anthropic_event("message_start", json!({"type": "message_start", "message": {"id": "msg_1",
            "type": "message", "role": "assistant", "model": "claude-upstream", "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 50, "output_tokens": 1}}})),
        anthropic_event("content_block_start", json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}})),
        anthropic_event("ping", json!({"type": "ping"})),
        delta(0, json!({"type": "text_delta", "text": "Let me "})),
        delta(0, json!({"type": "text_delta", "text": "check."})),
        anthropic_event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        anthropic_event("content_block_start", json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}})),
        delta(1, json!({"type": "input_json_delta", "partial_json": "{\"city\":"})),
        delta(1, json!({"type": "input_json_delta", "partial_json": " \"Lyon\"}"})),
        anthropic_event("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        anthropic_event("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 20}})),
        anthropic_event("message_stop", json!({"type": "message_stop"})),
    ]));
    let body = json!({
        "model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in Lyon?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": weather_schema()}}]
    });
    let client = reqwest::Client::new();
    let reply = proxy
        .chat(&client, None, &body, &[("x-test-route", "claude")])
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("content-type"), "text/event-stream");

    let sent = &anthropic.received()[0].body;
    assert_eq!(
        *sent,
        json!({"model": "claude-upstream", "max_tokens": 4096, "stream": true, "system": "Be brief.",
               "messages": [{"role": "user", "content": "Weather in Lyon?"}],
               "tools": [{"name": "get_weather", "input_schema": weather_schema()}]}),
        "no stream_options upstream (Anthropic always reports usage); a default output cap"
    );

    let (names, data) = sse(&reply.body);
    assert!(
        names.iter().all(Option::is_none),
        "OpenAI events have no names"
    );
    let tool = |d: Value| json!({"tool_calls": [d]});
    let mut usage = openai_chunk(json!({}), None);
    usage["choices"] = json!([]);
    usage["usage"] = json!({"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70});
    assert_eq!(
        data,
        vec![
            openai_chunk(json!({"role": "assistant", "content": ""}), None),
            openai_chunk(json!({"content": "Let me "}), None),
            openai_chunk(json!({"content": "check."}), None),
            openai_chunk(
                tool(json!({"index": 0, "id": "toolu_2", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}})),
                None
            ),
            openai_chunk(
                tool(json!({"index": 0, "function": {"arguments": "{\"city\":"}})),
                None
            ),
            openai_chunk(
                tool(json!({"index": 0, "function": {"arguments": " \"Lyon\"}"}})),
                None
            ),
            openai_chunk(json!({}), Some("tool_calls")),
            usage,
            json!("[DONE]"),
        ]
    );
    let line = proxy.log_line(&["request_id=", "stream_end=\"done\""]);
    assert!(
        line.contains("input_tokens=50") && line.contains("output_tokens=20"),
        "{line}"
    );
}

#[tokio::test]
async fn an_anthropic_client_is_served_by_an_openai_upstream() {
    let anthropic = MockUpstream::start("anthropic").await;
    let openai = MockUpstream::start("openai").await;
    let proxy = proxy(&anthropic, &openai);
    openai.set(Behaviour::json(
        200,
        &json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-upstream",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Checking Lyon.",
                    "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
                    "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}}),
    ));
    let body = json!({
        "model": "gpt", "max_tokens": 300, "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"},
                {"type": "text", "text": "And Lyon?"}]}
        ],
        "tools": [{"name": "get_weather", "description": "Weather of a city", "input_schema": weather_schema()}],
        "tool_choice": {"type": "any"}
    });
    let client = reqwest::Client::new();
    let reply = proxy
        .messages(&client, None, &body, &[("x-test-route", "gpt")])
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    let received = openai.received();
    assert_eq!(received[0].path, "/v1/chat/completions");
    assert_eq!(
        received[0].headers["authorization"],
        "Bearer sk-upstream-secret"
    );
    assert_eq!(
        received[0].body,
        json!({
            "model": "gpt-upstream", "max_completion_tokens": 300,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "toolu_1",
                    "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C and sunny"},
                {"role": "user", "content": "And Lyon?"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "Weather of a city", "parameters": weather_schema()}}],
            "tool_choice": "required"
        })
    );
    assert_eq!(
        reply.json(),
        json!({
            "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-upstream",
            "content": [{"type": "text", "text": "Checking Lyon."},
                        {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Lyon"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 40, "output_tokens": 10}
        })
    );
    assert_eq!(reply.header("x-switchyard-cost-usd"), "0.00008000");
}

#[tokio::test]
async fn an_anthropic_client_streams_from_an_openai_upstream() {
    let anthropic = MockUpstream::start("anthropic").await;
    let openai = MockUpstream::start("openai").await;
    let proxy = proxy(&anthropic, &openai);
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-upstream", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-upstream", "choices": [],
        "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}});
    openai.set(Behaviour::sse(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Checking "}), Value::Null),
        chunk(json!({"content": "Lyon."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":\"Lyon\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        format!("data: {usage}\n\n"),
        "data: [DONE]\n\n".to_string(),
    ]));
    let body = json!({
        "model": "gpt", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "Weather in Lyon?"}]
    });
    let client = reqwest::Client::new();
    let reply = proxy
        .messages(&client, None, &body, &[("x-test-route", "gpt")])
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("content-type"), "text/event-stream");
    assert_eq!(
        openai.received()[0].body,
        json!({"model": "gpt-upstream", "max_completion_tokens": 100, "stream": true,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "Weather in Lyon?"}]})
    );

    let (names, data) = sse(&reply.body);
    let delta = |index: u32, delta: Value| json!({"type": "content_block_delta", "index": index, "delta": delta});
    let expected = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "chatcmpl-1",
            "type": "message", "role": "assistant", "model": "gpt-upstream", "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            delta(0, json!({"type": "text_delta", "text": "Checking "})),
        ),
        (
            "content_block_delta",
            delta(0, json!({"type": "text_delta", "text": "Lyon."})),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {}}}),
        ),
        (
            "content_block_delta",
            delta(
                1,
                json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Lyon\"}"}),
            ),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
            "stop_sequence": null}, "usage": {"input_tokens": 40, "output_tokens": 10}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let got: Vec<(String, Value)> = names
        .into_iter()
        .map(|n| n.unwrap_or_default())
        .zip(data)
        .collect();
    let expected: Vec<(String, Value)> = expected
        .into_iter()
        .map(|(n, d)| (n.to_string(), d))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn errors_come_back_in_the_clients_shape() {
    let anthropic = MockUpstream::start("anthropic").await;
    let openai = MockUpstream::start("openai").await;
    let proxy = proxy(&anthropic, &openai);
    let client = reqwest::Client::new();

    // An Anthropic upstream's client error, to an OpenAI client.
    anthropic.set(Behaviour::json(
        400,
        &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}),
    ));
    let reply = proxy
        .chat(
            &client,
            None,
            &switchyard_e2e::chat("claude", "hi"),
            &[("x-test-route", "claude")],
        )
        .await;
    assert_eq!(reply.status, 400);
    let error = reply.json();
    assert_eq!(error["error"]["message"], "prompt is too long");
    assert_eq!(error["error"]["type"], "invalid_request_error");

    // An OpenAI upstream's client error, to an Anthropic client.
    openai.set(Behaviour::json(
        404,
        &json!({"error": {"message": "no such model", "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
    ));
    let body =
        json!({"model": "gpt", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let reply = proxy
        .messages(&client, None, &body, &[("x-test-route", "gpt")])
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"type": "error", "error": {"type": "not_found_error", "message": "no such model"}})
    );

    // The proxy's own errors, to an Anthropic client.
    let reply = proxy
        .messages(
            &client,
            None,
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(reply.status, 400);
    let error = reply.json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{error}"
    );
}

#[tokio::test]
async fn what_the_other_api_cannot_express_is_a_400_naming_the_field() {
    let anthropic = MockUpstream::start("anthropic").await;
    let openai = MockUpstream::start("openai").await;
    let proxy = proxy(&anthropic, &openai);
    let client = reqwest::Client::new();
    let mut body = switchyard_e2e::chat("claude", "hi");
    body["n"] = json!(2);
    let reply = proxy
        .chat(&client, None, &body, &[("x-test-route", "claude")])
        .await;
    assert_eq!(
        reply.status,
        400,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["error"]["param"], "n");
    assert!(anthropic.received().is_empty(), "nothing was sent");

    // The same request goes through where it can: a chain with an OpenAI target behind.
    let reply = proxy
        .chat(&client, None, &body, &[("x-test-route", "claude,gpt")])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-switchyard-model"), "gpt");
    assert_eq!(openai.received()[0].body["n"], 2);
}

#[tokio::test]
async fn a_stream_that_stalls_ends_with_an_error_event_in_the_clients_shape() {
    let anthropic = MockUpstream::start("anthropic").await;
    let openai = MockUpstream::start("openai").await;
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("openai", &openai.url, None)
        .model("gpt", "openai", "gpt-upstream", 1.0, &[])
        .fallback(&["gpt"])
        .upstream("stream_idle_timeout_ms = 300")
        .toml();
    drop(anthropic);
    let proxy = Proxy::start(&config, &[]);
    openai.set(Behaviour::StallAfterFirst);
    let body = json!({"model": "gpt", "max_tokens": 10, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let reply = proxy
        .messages(&reqwest::Client::new(), None, &body, &[])
        .await;
    assert_eq!(reply.status, 200);
    let (names, data) = sse(&reply.body);
    assert_eq!(
        names.first().cloned().flatten().as_deref(),
        Some("message_start")
    );
    assert_eq!(names.last().cloned().flatten().as_deref(), Some("error"));
    let last = data.last().unwrap();
    assert_eq!(last["type"], "error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stalled"),
        "{last}"
    );
    assert!(!names.iter().any(|n| n.as_deref() == Some("message_stop")));
}

#[tokio::test]
async fn azure_deployments_get_their_url_and_api_key_header() {
    let azure = MockUpstream::start("azure").await;
    let resource = azure.url.trim_end_matches("/v1").to_string();
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of(
            "azure",
            "azure-openai",
            &resource,
            &[
                "api_key_env = \"UPSTREAM_KEY\"",
                "api_version = \"2024-10-21\"",
            ],
        )
        .model("gpt", "azure", "gpt-deploy", 1.0, &[])
        .fallback(&["gpt"])
        .toml();
    let proxy = Proxy::start(&config, &[KEY_ENV]);
    let reply = proxy
        .chat(
            &reqwest::Client::new(),
            None,
            &switchyard_e2e::chat("gpt", "hi"),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, azure.answer_bytes("gpt-deploy"));
    let received = &azure.received()[0];
    assert_eq!(
        received.path,
        "/openai/deployments/gpt-deploy/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(received.headers["api-key"], "sk-upstream-secret");
    assert!(!received.headers.contains_key("authorization"));
}

#[tokio::test]
async fn upstreams_are_reached_over_http2_when_configured() {
    let upstream = MockUpstream::start("h2").await;
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of("h2", "openai", &upstream.url, &["h2c = true"])
        .provider("h1", &upstream.url, None)
        .model("fast", "h2", "m", 1.0, &[])
        .model("plain", "h1", "m", 1.0, &[])
        .fallback(&["fast"])
        .toml();
    let proxy = Proxy::start(&config, &[]);
    let client = reqwest::Client::new();
    for (model, stream) in [("fast", false), ("fast", true), ("plain", false)] {
        let mut body = switchyard_e2e::chat(model, "hi");
        body["stream"] = json!(stream);
        let reply = proxy
            .chat(&client, None, &body, &[("x-test-route", model)])
            .await;
        assert_eq!(reply.status, 200);
    }
    let versions: Vec<Version> = upstream.received().iter().map(|r| r.version).collect();
    assert_eq!(
        versions,
        [Version::HTTP_2, Version::HTTP_2, Version::HTTP_11]
    );
}
