//! The Responses API end to end: `POST /v1/responses` is decided by the team's policy like a
//! chat request and served by a provider that speaks the Responses API itself (passed through),
//! by a chat-completions-only provider and by an Anthropic provider (translated both ways, whole
//! and streamed). The official OpenAI SDKs hold whole conversations through it: text, a
//! function-tool round trip continued with `previous_response_id`, structured output, reading a
//! response back. Failover crosses between native and translated targets before the first byte;
//! a stream that stalls or breaks ends with an error event the SDK raises.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_e2e::{
    Behaviour, ConfigBuilder, MockUpstream, Proxy, policy_wasm, poll, sdk_node_dir, sdk_python,
    workspace_root,
};

const KEY: &str = "sk-responses-team-01";

/// Each mock's model, and the provider it is served by.
const ROUTES: [(&str, &str); 3] = [
    ("native", "openai"),
    ("chat", "vllm"),
    ("claude", "anthropic"),
];

/// Three mock assistants: `native` (an OpenAI provider with the Responses API), `chat` (an
/// OpenAI-compatible provider with chat completions only) and `claude` (Anthropic).
struct Mocks {
    native: MockUpstream,
    chat: MockUpstream,
    claude: MockUpstream,
}

impl Mocks {
    async fn start() -> Self {
        let mocks = Self {
            native: MockUpstream::start("native").await,
            chat: MockUpstream::start("chat").await,
            claude: MockUpstream::start("claude").await,
        };
        for mock in [&mocks.native, &mocks.chat, &mocks.claude] {
            mock.set(Behaviour::Assistant);
        }
        mocks
    }

    fn get(&self, name: &str) -> &MockUpstream {
        match name {
            "native" => &self.native,
            "chat" => &self.chat,
            _ => &self.claude,
        }
    }

    /// The scripted policy over one model per mock, named as the mock (`x-test-route` routes).
    fn config(&self) -> ConfigBuilder {
        ConfigBuilder::new(&policy_wasm("scripted_policy"))
            .keys_required()
            .team_option(&format!("keys = [{KEY:?}]"))
            .provider_of("openai", "openai", &self.native.url, &["responses = true"])
            .provider("vllm", &self.chat.url, None)
            .provider_of("anthropic", "anthropic", &self.claude.url, &[])
            .model("native", "openai", "gpt-native-up", 1.0, &[])
            .model("chat", "vllm", "gpt-chat-up", 1.0, &[])
            .model("claude", "anthropic", "claude-up", 1.0, &[])
            .fallback(&["chat"])
    }
}

/// Run an SDK script against `proxy` with `route`, and read the JSON it prints.
fn run(mut script: Command, proxy: &Proxy, route: &str) -> Value {
    let out = script
        .args([proxy.base.as_str(), KEY, route])
        .output()
        .expect("run the script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

fn python(script: &str) -> Command {
    let mut command = Command::new(sdk_python());
    command.arg(workspace_root().join("tests/sdk").join(script));
    command
}

fn node(script: &str) -> Command {
    let mut command = Command::new("node");
    command
        .env("SDK_DIR", sdk_node_dir())
        .arg(workspace_root().join("tests/sdk").join(script));
    command
}

/// What both SDKs see on any provider.
fn assert_conversation(seen: &Value, model: &str, provider: &str, sdk: &str) {
    let hello = format!("Hello from {model}.");
    let at = format!("{sdk} on {model}: {seen}");
    assert_eq!(seen["model_header"], model, "{at}");
    assert_eq!(seen["provider_header"], provider, "{at}");
    assert_eq!(seen["text"], hello.as_str(), "{at}");
    assert_eq!(seen["usage"], json!([11, 7]), "{at}");
    let kinds = seen["stream_kinds"].as_array().unwrap();
    assert_eq!(kinds.first(), Some(&json!("response.created")), "{at}");
    assert_eq!(kinds.last(), Some(&json!("response.completed")), "{at}");
    assert!(kinds.contains(&json!("response.output_text.delta")), "{at}");
    assert_eq!(seen["stream_text"], hello.as_str(), "{at}");
    assert_eq!(seen["stream_final"], hello.as_str(), "{at}");
    assert_eq!(
        seen["call"],
        json!(["get_weather", r#"{"city":"Paris"}"#]),
        "{at}"
    );
    assert_eq!(seen["follow_up"], "It is sunny in Paris.", "{at}");
    let structured = match model {
        "claude" => json!({"status": 400, "param": "text.format"}),
        _ => json!({"parsed": {"city": "Paris", "temperature_c": 21}}),
    };
    assert_eq!(seen["structured"], structured, "{at}");
    assert_eq!(
        seen["retrieved"],
        json!([true, "It is sunny in Paris."]),
        "{at}"
    );
    assert_eq!(seen["unknown"], 404, "{at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_holds_conversations_on_every_provider() {
    let mocks = Mocks::start().await;
    let proxy = Proxy::start(&mocks.config().toml(), &[]);
    for (model, provider) in ROUTES {
        let seen = run(python("responses.py"), &proxy, model);
        assert_conversation(&seen, model, provider, "python");
        assert_eq!(
            seen["helper_text"],
            format!("Hello from {model}."),
            "{seen}"
        );
        assert_eq!(
            seen["streamed_follow_up"],
            json!(["It is rainy in Paris.", "It is rainy in Paris."]),
            "{model}: {seen}"
        );
    }

    // The native provider got the Responses API, the follow-ups naming its own responses.
    let native = mocks.native.received();
    assert!(
        native.iter().all(|r| r.path.starts_with("/v1/responses")),
        "{native:?}"
    );
    let follow_up = native
        .iter()
        .find(|r| r.body["input"][0]["output"] == "sunny")
        .expect("the follow-up");
    assert!(
        follow_up.body["previous_response_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_native_")),
        "passed through: {:?}",
        follow_up.body
    );
    assert_eq!(follow_up.body["model"], "gpt-native-up");
    assert!(
        native
            .iter()
            .any(|r| r.path.starts_with("/v1/responses/resp_native_")),
        "read back there"
    );

    // The others got the whole conversation, translated.
    let chat = mocks.chat.received();
    let follow_up = chat
        .iter()
        .find(|r| r.body["messages"].as_array().is_some_and(|m| m.len() == 3))
        .expect("the follow-up");
    assert_eq!(follow_up.path, "/v1/chat/completions");
    assert_eq!(
        follow_up.body["messages"][0],
        json!({"role": "user", "content": "What is the weather in Paris?"})
    );
    assert_eq!(
        follow_up.body["messages"][1]["tool_calls"][0]["id"],
        "call_chat_1"
    );
    assert_eq!(
        follow_up.body["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_chat_1", "content": "sunny"})
    );
    assert!(follow_up.body.get("previous_response_id").is_none());
    let claude = mocks.claude.received();
    assert!(
        claude.iter().all(|r| r.path == "/v1/messages"),
        "{claude:?}"
    );
    let follow_up = claude
        .iter()
        .find(|r| r.body["messages"].as_array().is_some_and(|m| m.len() == 3))
        .expect("the follow-up");
    assert_eq!(
        follow_up.body["messages"][1]["content"][0]["type"],
        "tool_use"
    );
    assert_eq!(
        follow_up.body["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_claude_1", "content": "sunny"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_node_sdk_holds_conversations_on_every_provider() {
    let mocks = Mocks::start().await;
    let proxy = Proxy::start(&mocks.config().toml(), &[]);
    for (model, provider) in ROUTES {
        let seen = run(node("responses.mjs"), &proxy, model);
        assert_conversation(&seen, model, provider, "node");
    }
    assert!(!mocks.get("native").received().is_empty());
}

/// POST a Responses request with the team's key and these headers.
async fn respond(proxy: &Proxy, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(proxy.url("/v1/responses"))
        .bearer_auth(KEY)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_crosses_between_native_and_translated_targets() {
    let mocks = Mocks::start().await;
    let proxy = Proxy::start(&mocks.config().toml(), &[]);
    let hello = json!({"model": "auto", "input": "Say hello"});

    mocks.native.set(Behaviour::Status(503));
    let reply = respond(&proxy, &hello, &[("x-test-route", "native,claude")]).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-switchyard-model"], "claude");
    let answer: Value = reply.json().await.unwrap();
    assert_eq!(
        answer["output"][0]["content"][0]["text"],
        "Hello from claude."
    );
    assert!(answer["id"].as_str().unwrap().starts_with("resp_"));

    mocks.native.set(Behaviour::Assistant);
    mocks.chat.set(Behaviour::Status(500));
    let streamed = json!({"model": "auto", "input": "Say hello", "stream": true});
    let reply = respond(&proxy, &streamed, &[("x-test-route", "chat,native")]).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-switchyard-model"], "native");
    let text = reply.text().await.unwrap();
    assert!(text.contains("event: response.completed"), "{text}");
    assert!(
        text.contains("resp_native_"),
        "the native stream passes through: {text}"
    );

    // A built-in tool cannot be translated: the translated target is passed over, no attempt
    // made, and the native one serves it; alone, it is a 400 naming the field.
    mocks.chat.set(Behaviour::Assistant);
    mocks.chat.clear();
    let search = json!({"model": "auto", "input": "Find news", "tools": [{"type": "web_search"}]});
    let reply = respond(&proxy, &search, &[("x-test-route", "chat,native")]).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-switchyard-model"], "native");
    assert!(mocks.chat.received().is_empty());
    let reply = respond(&proxy, &search, &[("x-test-route", "chat")]).await;
    assert_eq!(reply.status(), 400);
    let error: Value = reply.json().await.unwrap();
    assert_eq!(error["error"]["param"], "tools[0].type", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web_search"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_are_pinned_kept_per_team_and_honour_store_false() {
    let mocks = Mocks::start().await;
    let config = mocks.config().team(
        "other",
        "test-policy",
        "sk-responses-other-01",
        &["fallback = [\"chat\"]"],
    );
    let proxy = Proxy::start(&config.toml(), &[]);

    // A response the native provider made pins its follow-up there, whatever the route says.
    let first: Value = respond(
        &proxy,
        &json!({"model": "auto", "input": "hi"}),
        &[("x-test-route", "native")],
    )
    .await
    .json()
    .await
    .unwrap();
    let follow = json!({"model": "auto", "input": "again", "previous_response_id": first["id"]});
    let reply = respond(&proxy, &follow, &[("x-test-route", "chat")]).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-switchyard-model"], "native");
    let reason = reply.headers()["x-switchyard-reason"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("provider `openai` holds the previous response"),
        "{reason}"
    );

    // A translated response asked with `store: false` is not kept.
    let unkept: Value = respond(
        &proxy,
        &json!({"model": "auto", "input": "hi", "store": false}),
        &[("x-test-route", "chat")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(unkept["store"], false);
    let follow = json!({"model": "auto", "input": "again", "previous_response_id": unkept["id"]});
    let reply = respond(&proxy, &follow, &[("x-test-route", "chat")]).await;
    assert_eq!(reply.status(), 400);
    let error: Value = reply.json().await.unwrap();
    assert_eq!(error["error"]["param"], "previous_response_id");
    assert_eq!(error["error"]["code"], "previous_response_not_found");

    // Another team can neither continue nor read a team's response.
    let kept: Value = respond(
        &proxy,
        &json!({"model": "auto", "input": "hi"}),
        &[("x-test-route", "chat")],
    )
    .await
    .json()
    .await
    .unwrap();
    let id = kept["id"].as_str().unwrap();
    let client = reqwest::Client::new();
    let read = |key: &'static str| {
        client
            .get(proxy.url(&format!("/v1/responses/{id}")))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(read(KEY).await.unwrap().status(), 200);
    assert_eq!(read("sk-responses-other-01").await.unwrap().status(), 404);
    let follow = json!({"model": "auto", "input": "again", "previous_response_id": id});
    let reply = client
        .post(proxy.url("/v1/responses"))
        .bearer_auth("sk-responses-other-01")
        .json(&follow)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_request_is_priced_logged_and_named_for_the_policy() {
    let mocks = Mocks::start().await;
    let proxy = Proxy::start(&mocks.config().toml(), &[]);
    let body = json!({"model": "auto", "instructions": "Be brief.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}]});
    let reply = respond(
        &proxy,
        &body,
        &[("x-test-route", "claude"), ("x-request-id", "resp-priced")],
    )
    .await;
    assert_eq!(reply.status(), 200);
    // 11 input tokens at $1 and 7 output tokens at $4 per million.
    assert_eq!(reply.headers()["x-switchyard-cost-usd"], "0.00003900");
    let line = proxy.log_line(&["request_id=resp-priced ", "switchyard::request"]);
    assert!(
        line.contains("api=\"openai-responses\"") && line.contains("input_tokens=11"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_cut_streams_end_with_an_error_the_sdk_raises() {
    let mocks = Mocks::start().await;
    let config = mocks.config().upstream("stream_idle_timeout_ms = 500");
    let proxy = Proxy::start(&config.toml(), &[]);

    // Translated: a chat stream that stalls, and one that breaks.
    mocks.chat.set(Behaviour::StallAfterFirst);
    let seen = stream_error(&proxy.base, "chat");
    assert_eq!(seen["code"], "upstream_stream_stalled", "{seen}");
    assert!(
        seen["raised"].as_str().unwrap().contains("stalled"),
        "{seen}"
    );
    let gate = Arc::new(tokio::sync::Notify::new());
    mocks.chat.set(Behaviour::CutAfterFirst(gate.clone()));
    mocks.chat.clear();
    let script = tokio::task::spawn_blocking({
        let base = proxy.base.clone();
        move || stream_error(&base, "chat")
    });
    // The mock cuts the stream once its first event is on its way to the client.
    poll::until(
        "the cut stream's request",
        Duration::from_secs(10),
        async || (!mocks.chat.received().is_empty()).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.notify_one();
    let seen = script.await.unwrap();
    assert_eq!(seen["code"], "upstream_stream_cut", "{seen}");

    // Native: a Responses stream that stalls after its first events, and one that ends without
    // `response.completed`.
    let created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_up\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n";
    mocks
        .native
        .set(Behaviour::SseThenHold(vec![created.into()]));
    let seen = stream_error(&proxy.base, "native");
    assert_eq!(seen["code"], "upstream_stream_stalled", "{seen}");
    assert_eq!(seen["kinds"], json!(["response.created"]), "{seen}");
    mocks.native.set(Behaviour::sse(&[created.to_string()]));
    let seen = stream_error(&proxy.base, "native");
    assert_eq!(seen["code"], "upstream_stream_unfinished", "{seen}");
}

/// Stream a Responses request through the proxy at `base` on `route`, and report the events the
/// Python SDK yielded and the error it raised.
fn stream_error(base: &str, route: &str) -> Value {
    let script = r#"
import json, sys
import openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2], max_retries=0,
                       default_headers={"x-test-route": sys.argv[3]})
kinds = []
try:
    for event in client.responses.create(model="auto", input="Say hello", stream=True):
        kinds.append(event.type)
    print(json.dumps({"raised": None, "kinds": kinds}))
except openai.APIError as e:
    print(json.dumps({"raised": e.message, "code": (e.body or {}).get("code"), "kinds": kinds}))
"#;
    let out = Command::new(sdk_python())
        .args(["-c", script, base, KEY, route])
        .output()
        .expect("run the script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_serves_responses_offline() {
    let proxy = Proxy::start_file(&workspace_root().join("config/switchyard.toml"));
    let client = reqwest::Client::new();
    let post = |body: Value| client.post(proxy.url("/v1/responses")).json(&body).send();
    let first = post(json!({"model": "auto", "instructions": "Be brief.", "input": "hello"}))
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().contains_key("x-switchyard-model"));
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "completed");
    let text = first["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("received 2 message(s)"), "{text}");

    // The follow-up is rebuilt from the kept conversation: the echo sees every turn.
    let follow =
        post(json!({"model": "auto", "input": "and again", "previous_response_id": first["id"]}))
            .await
            .unwrap();
    assert_eq!(follow.status(), 200, "{}", follow.text().await.unwrap());
    let follow: Value = follow.json().await.unwrap();
    let text = follow["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("received 3 message(s)"), "{text}");
    assert_eq!(follow["previous_response_id"], first["id"]);

    let streamed = post(json!({"model": "auto", "input": "hello", "stream": true}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        streamed.starts_with("event: response.created"),
        "{streamed}"
    );
    assert!(
        streamed.contains("event: response.output_text.delta"),
        "{streamed}"
    );
    assert!(
        streamed
            .trim_end()
            .split("\n\n")
            .last()
            .unwrap()
            .contains("response.completed"),
        "{streamed}"
    );

    let id = first["id"].as_str().unwrap();
    let read: Value = client
        .get(proxy.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read, first, "read back as it was answered");
}
