//! The example policies end to end: the proxy started from `config/examples.toml` routes each
//! demo key's requests through its team's policy, as the answer's headers show.

use serde_json::json;
use switchyard_e2e::{Proxy, Reply, chat, workspace_root};

/// One proxy for every team (four policies compile at start-up). The balancer goes first, while
/// every model is idle and the scores it reports are known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_demo_key_is_routed_by_its_policy() {
    let proxy = Proxy::start_file(&workspace_root().join("config/examples.toml"));
    latency_balancer_duels_within_the_tier(&proxy).await;
    cost_router_serves_requests_without_a_key_and_its_demo_key(&proxy).await;
    task_classifier_routes_by_class_and_logs_it(&proxy).await;
    budget_guard_downgrades_as_the_demo_budget_is_spent(&proxy).await;
}

async fn ask(proxy: &Proxy, key: Option<&str>, body: &serde_json::Value) -> Reply {
    ask_with(proxy, key, body, &[]).await
}

async fn ask_with(
    proxy: &Proxy,
    key: Option<&str>,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> Reply {
    let reply = proxy
        .chat(&reqwest::Client::new(), key, body, headers)
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

/// The routed model and the reason.
fn decision(reply: &Reply) -> (&str, &str) {
    (
        reply.header("x-switchyard-model"),
        reply.header("x-switchyard-reason"),
    )
}

/// The N of a reason starting "budget N% left".
fn budget_left(reason: &str) -> u32 {
    reason
        .strip_prefix("budget ")
        .and_then(|r| r.split_once("% left"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no budget share in {reason:?}"))
}

async fn cost_router_serves_requests_without_a_key_and_its_demo_key(proxy: &Proxy) {
    let reply = ask(proxy, None, &chat("auto", "What is the capital of France?")).await;
    assert_eq!(
        decision(&reply),
        ("gpt-4o-mini", "cheap: simple prompt (~12 tokens)")
    );
    let hard = chat("auto", "Plan the migration, step by step.");
    let reply = ask(proxy, Some("sk-switchyard-demo-cost-router"), &hard).await;
    assert_eq!(
        decision(&reply),
        ("o3", "reasoning: multi-step cue 'step by step'")
    );
}

async fn latency_balancer_duels_within_the_tier(proxy: &Proxy) {
    let key = Some("sk-switchyard-demo-latency-balancer");
    let hinted = [("x-switchyard-hint", "reasoning")];
    let reply = ask_with(proxy, key, &chat("auto", "Hello"), &hinted).await;
    let (model, reason) = decision(&reply);
    assert_eq!(model, "o3", "equal scores go to the cheaper: {reason}");
    assert!(
        reason.starts_with("reasoning, from x-switchyard-hint: o3 (")
            && reason.contains(" ms) over claude-sonnet-4-5 ("),
        "{reason}"
    );
    let reply = ask(proxy, key, &chat("claude-haiku-4-5", "Hello")).await;
    let (model, reason) = decision(&reply);
    assert_eq!(model, "gpt-4o-mini", "{reason}");
    assert!(
        reason.starts_with("cheap, tier of requested claude-haiku-4-5: gpt-4o-mini ("),
        "{reason}"
    );
}

async fn budget_guard_downgrades_as_the_demo_budget_is_spent(proxy: &Proxy) {
    let key = Some("sk-switchyard-demo-budget-guard");
    // About 10,000 prompt tokens at Sonnet's $3 a million: 60% of the $0.05 budget.
    let reply = ask(proxy, key, &chat("claude-sonnet-4-5", &"x".repeat(40_000))).await;
    assert_eq!(
        decision(&reply),
        (
            "claude-sonnet-4-5",
            "budget 100% left; requested claude-sonnet-4-5"
        )
    );

    let reply = ask(proxy, key, &chat("claude-sonnet-4-5", "Hello")).await;
    let (model, reason) = decision(&reply);
    assert_eq!(model, "o3", "{reason}");
    assert!((20..50).contains(&budget_left(reason)), "{reason}");
    assert!(
        reason.ends_with("% left: cheapest reasoning model (requested claude-sonnet-4-5)"),
        "{reason}"
    );

    // About 6,000 prompt tokens at o3's $2 a million: another 24%.
    let reply = ask(proxy, key, &chat("auto", &"y".repeat(24_000))).await;
    assert_eq!(reply.header("x-switchyard-model"), "o3");
    let reply = ask(proxy, key, &chat("auto", "Think step by step.")).await;
    let (model, reason) = decision(&reply);
    assert_eq!(model, "gpt-4o-mini", "{reason}");
    assert!(budget_left(reason) < 20, "{reason}");
    assert!(reason.ends_with("% left: cheapest cheap model"), "{reason}");
}

async fn task_classifier_routes_by_class_and_logs_it(proxy: &Proxy) {
    let key = Some("sk-switchyard-demo-task-classifier");
    let code = chat(
        "auto",
        "Why does this panic?\n```rust\nNone::<u8>.unwrap();\n```",
    );
    let reply = ask(proxy, key, &code).await;
    assert_eq!(decision(&reply), ("gpt-4o-mini", "code: cue '```'"));

    let mut proof = chat("auto", "Prove that 17 is prime.");
    proof["stream"] = json!(true);
    let reply = ask_with(proxy, key, &proof, &[("x-request-id", "proof-1")]).await;
    assert_eq!(decision(&reply), ("o3", "reasoning: cue 'prove'"));
    proxy.log_line(&["task class reasoning", "request_id=\"proof-1\""]);
}
