//! The `gemini` provider end to end, against a mock of Google's Gemini API in its real formats:
//! both client APIs, streamed and not, with tools (a function's response named by its call's
//! function); the key sent as `x-goog-api-key` and never logged; failover from an exhausted
//! Gemini target to an Anthropic one before the first byte; a broken stream ending with an
//! error event in the client's shape; the official OpenAI and Anthropic Python SDKs calling a
//! tool, streamed and not.

use serde_json::json;
use switchyard_e2e::{
    Behaviour, ConfigBuilder, GeminiBehaviour, GeminiMock, MockUpstream, Proxy, check_tool_sdks,
    first_tool_call, gemini_text, policy_wasm, sse_data as sse, weather_function,
};

const GEMINI_KEY: &str = "AIzaSyTest-gemini-key-0123456789";
const TEAM_KEY: &str = "sk-team-gemini";
const MODEL: &str = "gemini-2.5-flash";

/// A proxy with `gemini` on the Gemini mock and `claude` on an Anthropic mock.
fn proxy(gemini: &GeminiMock, anthropic: &MockUpstream, key: &str) -> Proxy {
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of(
            "google",
            "gemini",
            &gemini.url,
            &["api_key_env = \"GEMINI_API_KEY\""],
        )
        .provider_of("anthropic", "anthropic", &anthropic.url, &[])
        .model("gemini", "google", MODEL, 0.3, &[])
        .model("claude", "anthropic", "claude-direct", 3.0, &[])
        .fallback(&["gemini"])
        .team_option(&format!("keys = [{TEAM_KEY:?}]"))
        .toml();
    Proxy::start(&config, &[("GEMINI_API_KEY", key)])
}

#[tokio::test]
async fn an_openai_client_is_served_by_gemini_with_tools() {
    let gemini = GeminiMock::start(GEMINI_KEY).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&gemini, &anthropic, GEMINI_KEY);
    let client = reqwest::Client::new();

    let ask = json!({"model": "gemini", "max_tokens": 200,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in Paris?"}],
        "tools": [weather_function()]});
    let reply = proxy
        .chat(&client, None, &ask, &[("x-request-id", "gemini-tools")])
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("x-switchyard-model"), "gemini");
    let answer = reply.json();
    let (call_id, name, arguments) = first_tool_call(&answer);
    assert_eq!(
        (name.as_str(), arguments),
        ("get_weather", json!({"city": "Paris"}))
    );
    assert_eq!(answer["usage"]["prompt_tokens"], 21, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 9);

    let received = gemini.received();
    assert_eq!(
        received[0].path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    let sent = &received[0].body;
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        sent["contents"],
        json!([{"role": "user", "parts": [{"text": "Weather in Paris?"}]}])
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 200);
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );

    // The function's response goes back named by the call's function.
    let follow_up = json!({"model": "gemini", "max_tokens": 200,
        "messages": [{"role": "user", "content": "Weather in Paris?"},
                     {"role": "assistant", "content": null, "tool_calls": [{"id": call_id, "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                     {"role": "tool", "tool_call_id": call_id, "content": "18 C, sunny"}],
        "tools": [weather_function()]});
    let reply = proxy.chat(&client, None, &follow_up, &[]).await;
    assert_eq!(reply.status, 200);
    let answer = reply.json();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        gemini_text(MODEL)
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let sent = &gemini.received()[1].body;
    assert_eq!(
        sent["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]})
    );
    assert_eq!(
        sent["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
            "response": {"content": "18 C, sunny"}}}]})
    );

    proxy.log_line(&["request_id=gemini-tools", "status=200"]);
    assert!(
        !proxy.logs().contains(GEMINI_KEY),
        "the key reached the log"
    );
}

#[tokio::test]
async fn both_client_apis_stream_from_gemini() {
    let gemini = GeminiMock::start(GEMINI_KEY).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&gemini, &anthropic, GEMINI_KEY);
    let client = reqwest::Client::new();

    let ask = json!({"model": "gemini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.chat(&client, None, &ask, &[]).await;
    assert_eq!(reply.status, 200);
    let (_, data) = sse(&reply.body);
    let text: String = data
        .iter()
        .filter_map(|d| d["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, gemini_text(MODEL));
    assert_eq!(data.last(), Some(&json!("[DONE]")));
    let usage = data
        .iter()
        .find(|d| d["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 9);
    assert_eq!(
        gemini.received()[0].path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );

    let ask = json!({"model": "gemini", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.messages(&client, None, &ask, &[]).await;
    assert_eq!(reply.status, 200);
    let (names, data) = sse(&reply.body);
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let text: String = data
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, gemini_text(MODEL));

    let ask = json!({"model": "gemini", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.messages(&client, None, &ask, &[]).await;
    assert_eq!(reply.status, 200);
    let answer = reply.json();
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": gemini_text(MODEL)}])
    );
    assert_eq!(answer["usage"]["input_tokens"], 17);
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 4);
}

#[tokio::test]
async fn an_exhausted_or_refused_gemini_target_fails_over_and_errors_keep_their_shape() {
    let gemini = GeminiMock::start(GEMINI_KEY).await;
    let anthropic = MockUpstream::start("anthropic").await;
    anthropic.set(Behaviour::Assistant);
    let client = reqwest::Client::new();
    let proxy_ok = proxy(&gemini, &anthropic, GEMINI_KEY);

    gemini.set(GeminiBehaviour::Exhausted);
    for stream in [false, true] {
        let mut ask = switchyard_e2e::chat("gemini", "hello");
        ask["stream"] = stream.into();
        let reply = proxy_ok
            .chat(
                &client,
                None,
                &ask,
                &[
                    ("x-test-route", "gemini,claude"),
                    ("x-request-id", "exhausted"),
                ],
            )
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.header("x-switchyard-model"), "claude");
    }
    let line = proxy_ok.log_line(&["request_id=exhausted", "status=200"]);
    assert!(line.contains("gemini: answered 429"), "{line}");

    // A wrong key is Google's 400, which is the client's answer (in its own shape): retrying
    // elsewhere would not mend the proxy's config.
    gemini.set(GeminiBehaviour::Answer);
    let wrong = proxy(&gemini, &anthropic, "not-the-key");
    let reply = wrong
        .messages(
            &client,
            None,
            &json!({"model": "gemini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(reply.status, 400);
    let error = reply.json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(
        error["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    let reply = wrong
        .chat(&client, None, &switchyard_e2e::chat("gemini", "hi"), &[])
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
}

#[tokio::test]
async fn a_broken_gemini_stream_ends_with_an_error_event_in_the_clients_shape() {
    let gemini = GeminiMock::start(GEMINI_KEY).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&gemini, &anthropic, GEMINI_KEY);
    gemini.set(GeminiBehaviour::BreakStream);
    let client = reqwest::Client::new();

    let ask = json!({"model": "gemini", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy
        .chat(&client, None, &ask, &[("x-request-id", "broken")])
        .await;
    assert_eq!(reply.status, 200);
    let (_, data) = sse(&reply.body);
    assert!(
        data.iter()
            .any(|d| d["choices"][0]["delta"]["content"].is_string()),
        "the first text arrived: {data:?}"
    );
    assert!(data.last().expect("events")["error"]["message"].is_string());
    assert!(!data.contains(&json!("[DONE]")));
    proxy.log_line(&["request_id=broken", "stream_end=\"cut\""]);

    let ask = json!({"model": "gemini", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.messages(&client, None, &ask, &[]).await;
    let (names, _) = sse(&reply.body);
    assert_eq!(names.last().map(String::as_str), Some("error"));
    assert!(!names.iter().any(|n| n == "message_stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_call_tools_on_gemini_streamed_and_not() {
    let gemini = GeminiMock::start(GEMINI_KEY).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&gemini, &anthropic, GEMINI_KEY);

    tokio::task::block_in_place(|| {
        check_tool_sdks(&proxy.base, "gemini", TEAM_KEY, &gemini_text(MODEL))
    });
    assert_eq!(gemini.received().len(), 8);
}
