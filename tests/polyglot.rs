//! Policies written in JavaScript and Python, built from source by `cargo xtask plugins`, run end
//! to end through the proxy like any other: `js-tier-router` routes by tier alias, catalog id and
//! request shape, with a same-tier fallback, and refuses unknown names; `python-keyword-router`
//! routes by cues in the last user message, which it reads through the host, and logs the cue
//! through the host. Each runs its own `cases.jsonl` in the canary, and a file written over a
//! running policy's goes live. The proxies share one compile cache, so each component is compiled
//! once per build.

use std::path::Path;
use std::time::Duration;

use switchyard_e2e::{
    Behaviour, ConfigBuilder, MockUpstream, Proxy, Reply, chat, policy_version, policy_wasm,
    shared_compile_cache, workspace_root,
};

/// The limits a policy's decisions run under.
struct Limits {
    memory_mib: u32,
    deadline_ms: u64,
}

/// Suited to the JavaScript policy (measured by `cargo bench -p switchyard --bench polyglot`): its
/// linear memory starts at 9.5 MiB and a decision needed 10 MiB; a decision takes about 0.5 ms, the
/// first on an unused pool slot about 5 ms. The deadline is twice the one its README suggests,
/// for a debug build of the proxy on a machine busy with tests running in parallel.
const JS_LIMITS: Limits = Limits {
    memory_mib: 16,
    deadline_ms: 100,
};
/// Suited to the Python policy, likewise: its linear memory starts at 12.9 MiB and a decision
/// needed 13 MiB; a decision takes about 2 ms, the first on an unused pool slot up to 15 ms.
const PYTHON_LIMITS: Limits = Limits {
    memory_mib: 24,
    deadline_ms: 200,
};
/// How long a proxy may take to load a component that is not in the compile cache yet.
const COMPILE_BOUND: Duration = Duration::from_secs(120);

/// A config running the component at `policy` under `limits`, with the shared compile cache.
fn config(policy: &Path, limits: Limits) -> ConfigBuilder {
    ConfigBuilder::new(policy)
        .top(&format!("cache_dir = {:?}", shared_compile_cache()))
        .policy_option(&format!("memory_mib = {}", limits.memory_mib))
        .deadline_ms(limits.deadline_ms)
}

/// `config` with the canary cases of `plugins/FOLDER/cases.jsonl`.
fn with_cases(config: ConfigBuilder, folder: &str) -> ConfigBuilder {
    let cases = workspace_root()
        .join("plugins")
        .join(folder)
        .join("cases.jsonl");
    config.policy_option(&format!("cases = {cases:?}"))
}

/// Send `body` with request id `id` and return the reply.
async fn send(proxy: &Proxy, id: &str, body: &serde_json::Value) -> Reply {
    let client = reqwest::Client::new();
    proxy
        .chat(&client, None, body, &[("x-request-id", id)])
        .await
}

/// Assert a routed reply: status 200, served by `model` as the policy decided, for a reason
/// that starts with `reason`.
#[track_caller]
fn assert_routed(reply: &Reply, model: &str, reason: &str) {
    assert_eq!(
        (reply.status, reply.header("x-switchyard-model")),
        (200, model),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("x-switchyard-route"), "policy");
    let given = reply.header("x-switchyard-reason");
    assert!(
        given.starts_with(reason),
        "reason {given:?}, expected {reason:?}..."
    );
}

/// A request body asking `model`, with one user message of `text` and further fields.
fn ask(model: &str, text: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = chat(model, text);
    body.as_object_mut()
        .expect("an object")
        .extend(extra.as_object().expect("an object").clone());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_policy_routes_by_tier_alias_and_catalog_id() {
    // `tiny` is the cheapest `cheap` model but has a small context window; `mini` is served by
    // the same mock, `lite` by another, so a fallback from `mini` to `lite` can be seen.
    let cheap = MockUpstream::start("cheap").await;
    let spare = MockUpstream::start("spare").await;
    let smart = MockUpstream::start("smart").await;
    let config = config(&policy_wasm("js_tier_router"), JS_LIMITS);
    let config = with_cases(config, "js-tier-router")
        .provider("cheap-co", &cheap.url, None)
        .provider("spare-co", &spare.url, None)
        .provider("smart-co", &smart.url, None)
        .model("mini", "cheap-co", "mini-up", 0.15, &["cheap", "fast"])
        .model("lite", "spare-co", "lite-up", 0.3, &["cheap"])
        .model("thinker", "smart-co", "thinker-up", 3.0, &["reasoning", "tools"])
        .model("big-thinker", "smart-co", "big-up", 10.0, &["reasoning"])
        .section(
            "[[models]]\nid = \"tiny\"\nprovider = \"cheap-co\"\nupstream_model = \"tiny-up\"\n\
             input_cost_per_mtok = 0.05\noutput_cost_per_mtok = 0.2\ncontext_window = 1000\ntags = [\"cheap\"]\n",
        )
        .fallback(&["mini"]);
    let proxy = Proxy::start(&config.toml(), &[]);

    let short = send(
        &proxy,
        "js-auto",
        &chat("auto", "What is the capital of France?"),
    )
    .await;
    assert_routed(&short, "tiny", "cheap: auto, short prompt (~");
    assert!(
        short
            .header("x-switchyard-policy")
            .starts_with("test-policy@")
    );
    let no_model = serde_json::json!({"messages": [{"role": "user", "content": "Hi"}]});
    let reply = send(&proxy, "js-none", &no_model).await;
    assert_routed(&reply, "tiny", "cheap: auto, short prompt (~");

    // The output cap counts against the context window: `tiny` cannot hold it.
    let capped = ask("fast", "Hi", serde_json::json!({"max_tokens": 2000}));
    assert_routed(
        &send(&proxy, "js-fast", &capped).await,
        "mini",
        "cheap: alias 'fast'",
    );
    let reply = send(&proxy, "js-smart", &chat("Smart", "Hi")).await;
    assert_routed(&reply, "thinker", "reasoning: alias 'smart'");

    let tools = ask(
        "auto",
        "Weather in Paris?",
        serde_json::json!({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}),
    );
    let reply = send(&proxy, "js-tools", &tools).await;
    assert_routed(
        &reply,
        "thinker",
        "reasoning: auto, the request declares tools",
    );
    let long = chat("auto", &"Please review these design notes. ".repeat(300));
    let reply = send(&proxy, "js-long", &long).await;
    assert_routed(&reply, "thinker", "reasoning: auto, long prompt (~");

    let named = send(&proxy, "js-named", &chat("big-thinker", "Hi")).await;
    assert_routed(&named, "big-thinker", "requested model big-thinker");

    // The route carries the next-cheapest model of the tier: `mini` fails, `lite` answers.
    cheap.set(Behaviour::Status(500));
    let reply = send(&proxy, "js-fallback", &capped).await;
    assert_routed(&reply, "lite", "cheap: alias 'fast'");
    assert_eq!(
        cheap.models_received(),
        ["tiny-up", "tiny-up", "mini-up", "mini-up"]
    );
    assert_eq!(spare.models_received(), ["lite-up"]);
    assert_eq!(
        smart.models_received(),
        ["thinker-up", "thinker-up", "thinker-up", "big-up"]
    );

    let unknown = send(&proxy, "js-unknown", &chat("gpt-9-ultra", "Hi")).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.json(),
        serde_json::json!({"error": {
            "message": "unknown model 'gpt-9-ultra': use one of auto, fast, cheap, smart, reasoning, tiny, mini, lite, thinker, big-thinker",
            "type": "invalid_request_error",
            "param": null,
            "code": "policy_rejected",
        }})
    );
    let too_big = ask("cheap", "Hi", serde_json::json!({"max_tokens": 200_000}));
    let reply = send(&proxy, "js-too-big", &too_big).await;
    assert_eq!(reply.status, 400);
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.ends_with(
            "tokens with its output cap) is larger than every 'cheap' model's context window"
        ),
        "{message}"
    );
    assert_eq!(
        spare.models_received().len(),
        1,
        "refusals reach no upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_policy_routes_by_the_cue_it_reads_and_logs_it() {
    let cheap = MockUpstream::start("cheap").await;
    let coder = MockUpstream::start("coder").await;
    let smart = MockUpstream::start("smart").await;
    let config = config(&policy_wasm("python_keyword_router"), PYTHON_LIMITS);
    let config = with_cases(config, "python-keyword-router")
        .provider("cheap-co", &cheap.url, None)
        .provider("code-co", &coder.url, None)
        .provider("smart-co", &smart.url, None)
        .model("mini", "cheap-co", "mini-up", 0.15, &["cheap"])
        .model("coder", "code-co", "coder-up", 1.0, &["code", "tools"])
        .model(
            "thinker",
            "smart-co",
            "thinker-up",
            3.0,
            &["reasoning", "tools"],
        )
        .fallback(&["mini"]);
    let proxy = Proxy::start(&config.toml(), &[]);

    let code = "Why does this not build?\n```rust\nfn main() { let x: u8 = 256; }\n```";
    let reply = send(&proxy, "py-code", &chat("auto", code)).await;
    assert_routed(&reply, "coder", "code cue '```' -> code");
    let reply = send(
        &proxy,
        "py-summary",
        &chat("auto", "Summarize the minutes below."),
    )
    .await;
    assert_routed(&reply, "mini", "summary cue 'summarize' -> cheap");
    let proof = "Prove that there are infinitely many primes.";
    let reply = send(&proxy, "py-proof", &chat("auto", proof)).await;
    assert_routed(&reply, "thinker", "reasoning cue 'prove' -> reasoning");
    let plain = "Improve this sentence: me and him went.";
    let reply = send(&proxy, "py-plain", &chat("auto", plain)).await;
    assert_routed(&reply, "mini", "no cue -> cheap");
    // Only the last user message is read: the earlier code cue does not count.
    let conversation = serde_json::json!({"model": "auto", "messages": [
        {"role": "user", "content": "def f(): pass"},
        {"role": "assistant", "content": "That function does nothing."},
        {"role": "user", "content": "Then plan a better one."}]});
    let reply = send(&proxy, "py-last", &conversation).await;
    assert_routed(&reply, "thinker", "reasoning cue 'plan' -> reasoning");

    assert_eq!(coder.models_received(), ["coder-up"]);
    assert_eq!(cheap.models_received(), ["mini-up", "mini-up"]);
    assert_eq!(smart.models_received(), ["thinker-up", "thinker-up"]);
    for (id, found) in [
        ("py-code", "found the code cue: ```"),
        ("py-summary", "found the summary cue: summarize"),
        ("py-proof", "found the reasoning cue: prove"),
        ("py-plain", "found no cue"),
        ("py-last", "found the reasoning cue: plan"),
    ] {
        let line = proxy.log_line(&["switchyard::policy_log", &format!("request_id=\"{id}\"")]);
        assert!(line.contains(found), "{line}");
        assert!(line.contains("policy=\"test-policy\""), "{line}");
        assert_eq!(
            proxy.count_log_lines(&["switchyard::policy_log", &format!("request_id=\"{id}\"")]),
            1,
            "one log line per decision"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_version_written_over_a_javascript_one_goes_live() {
    let js = std::fs::read(policy_wasm("js_tier_router")).unwrap();
    let python = std::fs::read(policy_wasm("python_keyword_router")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.wasm");
    std::fs::write(&file, &js).unwrap();
    let upstream = MockUpstream::start("upstream").await;
    // No cases file: each version's own cases expect its own reasons.
    let config = config(&file, PYTHON_LIMITS)
        .provider("up", &upstream.url, None)
        .model("mini", "up", "mini-up", 0.15, &["cheap"])
        .model("thinker", "up", "thinker-up", 3.0, &["reasoning", "tools"])
        .fallback(&["mini"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    let before = send(&proxy, "before", &chat("fast", "Hi")).await;
    assert_eq!(
        before.header("x-switchyard-policy"),
        policy_version("test-policy", &js)
    );
    assert_routed(&before, "mini", "cheap: alias 'fast'");

    // Written whole beside the watched file, then moved over it.
    switchyard_e2e::replace_file(&file, &python);
    let version = policy_version("test-policy", &python);
    proxy.log_line_within(&["policy version live", &version], COMPILE_BOUND);

    let after = send(&proxy, "after", &chat("fast", "Explain step by step.")).await;
    assert_eq!(after.header("x-switchyard-policy"), version);
    assert_routed(
        &after,
        "thinker",
        "reasoning cue 'step by step' -> reasoning",
    );
}
