//! Embeddings end to end: `POST /v1/embeddings` is decided by the team's policy over the team's
//! embedding models only, served by OpenAI-compatible and Azure OpenAI upstreams (and the built-in
//! echo provider), priced from the usage the answer reports, with the routing headers of any
//! routed answer. The official OpenAI SDKs work unmodified, as floats and as base64 (what they ask
//! for by default). An Anthropic provider cannot hold embedding models.

use std::process::Command;

use serde_json::{Value, json};
use switchyard_e2e::{
    ConfigBuilder, MockUpstream, Proxy, embedding_of, policy_wasm, sdk_node_dir, sdk_python,
    workspace_root,
};

const KEY: &str = "sk-embeddings-team-01";
const AZURE_KEY: (&str, &str) = ("AZURE_KEY", "azure-secret-key");

/// The cost router for a team with a chat model and two embedding models: `embed-small` on an
/// OpenAI-compatible mock (the cheaper) and `embed-azure` on an Azure OpenAI mock.
fn config(openai: &MockUpstream, azure: &MockUpstream) -> ConfigBuilder {
    let resource = azure.url.trim_end_matches("/v1").to_string();
    ConfigBuilder::new(&policy_wasm("cost_router"))
        .keys_required()
        .team_option(&format!("keys = [{KEY:?}]"))
        .provider("openai", &openai.url, None)
        .provider_of(
            "azure",
            "azure-openai",
            &resource,
            &[
                "api_key_env = \"AZURE_KEY\"",
                "api_version = \"2024-10-21\"",
            ],
        )
        .model("chat-mini", "openai", "gpt-x", 1.0, &["cheap"])
        .embedding_model("embed-small", "openai", "text-embedding-3-small", 0.02)
        .embedding_model("embed-azure", "azure", "emb-deploy", 0.13)
        .fallback(&["chat-mini", "embed-small"])
}

/// POST `body` to `/v1/embeddings` with the team's key.
async fn embed(proxy: &Proxy, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(proxy.url("/v1/embeddings"))
        .bearer_auth(KEY)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Run an SDK script against `proxy`, and read the JSON it prints.
fn run(mut script: Command, proxy: &Proxy) -> Value {
    let out = script
        .args([&proxy.base, KEY])
        .output()
        .expect("run the script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdks_get_embeddings_as_floats_and_as_base64() {
    let openai = MockUpstream::start("openai").await;
    let azure = MockUpstream::start("azure").await;
    let proxy = Proxy::start(&config(&openai, &azure).toml(), &[AZURE_KEY]);
    let mut python = Command::new(sdk_python());
    python.arg(workspace_root().join("tests/sdk/embeddings.py"));
    let mut node = Command::new("node");
    node.env("SDK_DIR", sdk_node_dir())
        .arg(workspace_root().join("tests/sdk/embeddings.mjs"));
    let expected: Vec<Vec<f32>> = (0..2).map(embedding_of).collect();
    for (sdk, script) in [("python", python), ("node", node)] {
        let seen = run(script, &proxy);
        assert_eq!(seen["model_header"], "embed-small", "{sdk}: {seen}");
        assert_eq!(seen["float"], json!(expected), "{sdk}");
        assert_eq!(
            seen["base64"],
            json!(expected),
            "{sdk}: decoded from base64"
        );
        assert_eq!(seen["prompt_tokens"], 7, "{sdk}");
    }
    let received = openai.received();
    assert_eq!(received.len(), 4);
    assert!(received.iter().all(|r| r.path == "/v1/embeddings"));
    assert!(
        received
            .iter()
            .all(|r| r.body["model"] == "text-embedding-3-small")
    );
    let formats: Vec<&Value> = received
        .iter()
        .map(|r| &r.body["encoding_format"])
        .collect();
    assert_eq!(formats, [&json!("float"), &json!("base64")].repeat(2));
    assert!(azure.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_deployment_serves_the_requested_embedding_model_and_it_is_priced() {
    let openai = MockUpstream::start("openai").await;
    let azure = MockUpstream::start("azure").await;
    let proxy = Proxy::start(&config(&openai, &azure).toml(), &[AZURE_KEY]);
    let body = json!({"model": "embed-azure", "input": "one text", "dimensions": 3});
    let reply = embed(&proxy, &body, &[("x-request-id", "azure-embed")]).await;
    assert_eq!(reply.status(), 200);
    let headers = reply.headers().clone();
    for (name, value) in [
        ("x-switchyard-model", "embed-azure"),
        ("x-switchyard-provider", "azure"),
        ("x-switchyard-route", "policy"),
        ("x-switchyard-reason", "requested model embed-azure"),
        ("x-switchyard-team", "test-team"),
        // 7 prompt tokens at $0.13 per million.
        ("x-switchyard-cost-usd", "0.00000091"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }
    let answer: Value = reply.json().await.unwrap();
    assert_eq!(answer["data"][0]["embedding"], json!(embedding_of(0)));
    let received = &azure.received()[0];
    assert_eq!(
        received.path,
        "/openai/deployments/emb-deploy/embeddings?api-version=2024-10-21"
    );
    assert_eq!(received.headers["api-key"], AZURE_KEY.1);
    assert_eq!(
        received.body["dimensions"], 3,
        "fields pass through untouched"
    );
    let line = proxy.log_line(&["request_id=azure-embed ", "switchyard::request"]);
    assert!(
        line.contains("api=\"openai-embeddings\"") && line.contains("input_tokens=7"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_deciding_embeddings_sees_only_embedding_models() {
    let openai = MockUpstream::start("openai").await;
    let azure = MockUpstream::start("azure").await;
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("openai", &openai.url, None)
        .model("chat-mini", "openai", "gpt-x", 1.0, &["cheap"])
        .embedding_model("embed-small", "openai", "text-embedding-3-small", 0.02)
        .fallback(&["chat-mini", "embed-small"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    drop(azure);
    let client = reqwest::Client::new();
    let send = |route: &'static str, id: &'static str| {
        client
            .post(proxy.url("/v1/embeddings"))
            .header("x-test-route", route)
            .header("x-test-dump", "1")
            .header("x-request-id", id)
            .json(&json!({"model": "auto", "input": ["a", "b", "c"]}))
            .send()
    };
    let routed = send("embed-small", "embed-view").await.unwrap();
    assert_eq!(routed.status(), 200);
    assert_eq!(routed.headers()["x-switchyard-route"], "policy");
    let logs = proxy.log_line(&["embed-view", "request: Request"]);
    assert!(logs.contains("chars: 1"), "each input is a message: {logs}");
    let dumped = proxy.logs();
    let models: Vec<&str> = dumped
        .lines()
        .filter(|l| l.contains("embed-view") && l.contains("model: Model"))
        .collect();
    assert_eq!(models.len(), 1, "{models:?}");
    assert!(models[0].contains("id: \\\"embed-small\\\""), "{models:?}");

    // A chat model is not in an embeddings request's catalog: an invalid decision, and the
    // fallback route's embedding models serve it.
    let fell_back = send("chat-mini", "embed-chat").await.unwrap();
    assert_eq!(fell_back.status(), 200);
    assert_eq!(fell_back.headers()["x-switchyard-route"], "fallback");
    assert_eq!(fell_back.headers()["x-switchyard-model"], "embed-small");
    let line = proxy.log_line(&["request_id=embed-chat ", "policy failed"]);
    assert!(
        line.contains("kind=\"invalid-decision\"") && line.contains("chat-mini"),
        "{line}"
    );
}

#[test]
fn an_anthropic_provider_cannot_serve_an_embedding_model() {
    let config = ConfigBuilder::new(&policy_wasm("cost_router"))
        .provider_of("claude", "anthropic", "http://127.0.0.1:9/v1", &[])
        .model("sonnet", "claude", "claude-sonnet", 3.0, &[])
        .embedding_model("embed", "claude", "embed-x", 0.1)
        .fallback(&["sonnet"]);
    let Err(exit) = Proxy::try_start(&config.toml(), &[]) else {
        panic!("the proxy started with an embedding model on an Anthropic provider");
    };
    assert_eq!(exit.code, Some(1));
    assert!(
        exit.stderr.contains("claude") && exit.stderr.contains("serves no embeddings"),
        "{}",
        exit.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_serves_embeddings_offline() {
    let proxy = Proxy::start_file(&workspace_root().join("config/switchyard.toml"));
    let reply = reqwest::Client::new()
        .post(proxy.url("/v1/embeddings"))
        .json(&json!({"model": "auto", "input": ["hello", "world"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["x-switchyard-model"],
        "text-embedding-3-small"
    );
    let answer: Value = reply.json().await.unwrap();
    let vectors = answer["data"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[1]["index"], 1);
    assert_eq!(vectors[0]["embedding"].as_array().unwrap().len(), 8);
}
