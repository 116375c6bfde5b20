//! The official OpenAI and Anthropic SDKs (Python and Node) work against the proxy by changing
//! only the base URL and the key (the default config's `sk-switchyard-demo`); the default config
//! serves both from its OpenAI-format `echo` provider, so the Anthropic SDKs read translated
//! answers and streams. `cargo xtask test` installs them, pinned, into `target/sdk-venv` and
//! `target/sdk-node`.

use std::process::Command;

use switchyard_e2e::{
    Behaviour, ConfigBuilder, MockUpstream, Proxy, policy_wasm, sdk_node_dir, sdk_python,
    workspace_root,
};

/// The models of the default config, as `GET /v1/models` lists them.
const DEFAULT_MODELS: [&str; 5] = [
    "gpt-4o-mini",
    "claude-haiku-4-5",
    "o3",
    "claude-sonnet-4-5",
    "text-embedding-3-small",
];

#[test]
fn the_openai_python_sdk_works_by_changing_only_base_url_and_key() {
    let mut python = Command::new(sdk_python());
    python.arg(workspace_root().join("tests/sdk/openai_client.py"));
    check_sdk_run(python);
}

#[test]
fn the_openai_node_sdk_works_by_changing_only_base_url_and_key() {
    let mut node = Command::new("node");
    node.env("SDK_DIR", sdk_node_dir())
        .arg(workspace_root().join("tests/sdk/openai_client.mjs"));
    check_sdk_run(node);
}

/// Run an OpenAI SDK script and check what it saw.
fn check_sdk_run(script: Command) {
    let seen = run_sdk_script(script);
    assert_eq!(seen["retrieved"], "o3");
    assert_eq!(seen["missing"], "model_not_found", "{seen}");

    assert_eq!(seen["model_header"], "gpt-4o-mini");
    assert!(
        seen["content"]
            .as_str()
            .unwrap()
            .starts_with("Echo from gpt-4o-mini:"),
        "{seen}"
    );
    assert!(seen["total_tokens"].as_u64().unwrap() > 0);
    assert!(
        seen["stream_text"]
            .as_str()
            .unwrap()
            .starts_with("Echo from o3:"),
        "{seen}"
    );
    assert_eq!(seen["models"], serde_json::json!(DEFAULT_MODELS));
}

#[test]
fn the_anthropic_python_sdk_works_by_changing_only_base_url_and_key() {
    let mut python = Command::new(sdk_python());
    python.arg(workspace_root().join("tests/sdk/anthropic_client.py"));
    check_anthropic_sdk_run(python);
}

#[test]
fn the_anthropic_node_sdk_works_by_changing_only_base_url_and_key() {
    let mut node = Command::new("node");
    node.env("SDK_DIR", sdk_node_dir())
        .arg(workspace_root().join("tests/sdk/anthropic_client.mjs"));
    check_anthropic_sdk_run(node);
}

/// Run an Anthropic SDK script and check what it saw.
fn check_anthropic_sdk_run(script: Command) {
    let seen = run_sdk_script(script);
    // The default config's models are all on the echo provider, which cannot count: the host's
    // estimate (about four characters a token).
    assert_eq!(seen["count_source"], "estimate", "{seen}");
    assert_eq!(seen["counted"], 15, "{seen}");

    assert_eq!(seen["model_header"], "gpt-4o-mini");
    assert!(
        seen["content"]
            .as_str()
            .unwrap()
            .starts_with("Echo from gpt-4o-mini: received 2 message(s)"),
        "the system prompt counts as a message: {seen}"
    );
    assert_eq!(seen["stop_reason"], "end_turn");
    assert!(seen["total_tokens"].as_u64().unwrap() > 0);
    assert!(
        seen["stream_text"]
            .as_str()
            .unwrap()
            .starts_with("Echo from o3:"),
        "{seen}"
    );
    assert_eq!(seen["stream_stop_reason"], "end_turn");
    assert!(seen["stream_output_tokens"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["models"], serde_json::json!(DEFAULT_MODELS));
}

/// Run an SDK script against a proxy on the default config, and read the JSON it prints of what
/// it saw.
fn run_sdk_script(mut script: Command) -> serde_json::Value {
    let proxy = Proxy::start_file(&workspace_root().join("config/switchyard.toml"));
    let out = script
        .arg(&proxy.base)
        .output()
        .expect("run the SDK script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_upstream_is_rate_limited_the_sdks_raise_their_rate_limit_error() {
    let a = MockUpstream::start("mock-a").await;
    let b = MockUpstream::start("mock-b").await;
    a.set(Behaviour::RetryAfter(429, 30));
    b.set(Behaviour::RetryAfter(429, 12));
    for sdk in ["openai", "anthropic"] {
        // A proxy of its own each: the first 429s open both breakers.
        let config = ConfigBuilder::new(&policy_wasm("cost_router"))
            .keys_required()
            .team_option("keys = [\"sk-rate-limited-01\"]")
            .provider("pa", &a.url, None)
            .provider("pb", &b.url, None)
            .model("a", "pa", "a-up", 1.0, &["cheap"])
            .model("b", "pb", "b-up", 2.0, &["cheap"])
            .fallback(&["b"]);
        let proxy = Proxy::start(&config.toml(), &[]);
        let out = Command::new(sdk_python())
            .arg(workspace_root().join("tests/sdk/rate_limited.py"))
            .args([sdk, proxy.base.as_str()])
            .output()
            .expect("run the SDK script");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the SDK script failed:\n{stderr}");
        let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            seen,
            serde_json::json!({"error": "RateLimitError", "status": 429, "retry_after": "30"}),
            "{sdk}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_counts_tokens_where_the_models_provider_can() {
    let anthropic = MockUpstream::start("anthropic").await;
    anthropic.set(Behaviour::json(
        200,
        &serde_json::json!({"input_tokens": 42}),
    ));
    let openai = MockUpstream::start("openai").await;
    let config = ConfigBuilder::new(&policy_wasm("cost_router"))
        .keys_required()
        .team_option("keys = [\"sk-count-tokens-01\"]")
        .provider_of(
            "claude",
            "anthropic",
            &anthropic.url,
            &["api_key_env = \"UPSTREAM_KEY\""],
        )
        .provider("gpt", &openai.url, None)
        .model("sonnet", "claude", "claude-sonnet-up", 3.0, &[])
        .model("mini", "gpt", "gpt-up", 0.5, &["cheap"])
        .fallback(&["mini"]);
    let proxy = Proxy::start(&config.toml(), &[("UPSTREAM_KEY", "sk-upstream-secret")]);
    let count = |model: &str| {
        let out = Command::new(sdk_python())
            .arg(workspace_root().join("tests/sdk/count_tokens.py"))
            .args([proxy.base.as_str(), "sk-count-tokens-01", model])
            .output()
            .expect("run the SDK script");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the SDK script failed:\n{stderr}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // An Anthropic model: the provider counts.
    assert_eq!(
        count("sonnet"),
        serde_json::json!({"input_tokens": 42, "source": "upstream", "model": "sonnet"})
    );
    let received = &anthropic.received()[0];
    assert_eq!(received.path, "/v1/messages/count_tokens");
    assert_eq!(received.body["model"], "claude-sonnet-up");
    assert_eq!(received.headers["x-api-key"], "sk-upstream-secret");
    // Another provider's model, or `auto`: the host's estimate.
    for model in ["mini", "auto"] {
        let seen = count(model);
        assert_eq!(seen["source"], "estimate", "{model}: {seen}");
        assert_eq!(seen["input_tokens"], 23, "{model}: {seen}");
    }
    assert!(openai.received().is_empty());
}
