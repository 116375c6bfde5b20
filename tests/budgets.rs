//! Team budgets end to end: spending is counted from the usage of every answer, streams
//! included; once a team's budget for the window is spent its requests are refused with 429 and
//! `Retry-After` (or downgraded, when its config says so); and its policy can read where the team
//! stands through `host.team-budget`.

use serde_json::json;
use switchyard_e2e::{ConfigBuilder, MockUpstream, Proxy, Reply, chat, policy_wasm};

/// Each answer of the mock reports 5 input and 5 output tokens; at $1 and $4 per million that is
/// $0.000025.
const COST: f64 = 0.000025;

fn proxy(upstream: &MockUpstream, budget: &str) -> Proxy {
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("up", &upstream.url, None)
        .model("big", "up", "big-up", 1.0, &[])
        .model("small", "up", "small-up", 0.0, &[])
        .fallback(&["big"])
        .team_option(&format!("budget = {budget}"))
        .toml();
    Proxy::start(&config, &[])
}

async fn stream(proxy: &Proxy, id: &str, headers: &[(&str, &str)]) -> Reply {
    let mut body = chat("big", "hello");
    body["stream"] = json!(true);
    let mut all = vec![("x-request-id", id), ("x-test-route", "big")];
    all.extend_from_slice(headers);
    proxy.chat(&reqwest::Client::new(), None, &body, &all).await
}

#[tokio::test]
async fn a_streaming_team_is_refused_once_its_budget_is_spent() {
    let upstream = MockUpstream::start("up").await;
    let proxy = proxy(
        &upstream,
        &format!("{{ usd = {}, window = \"1h\" }}", COST * 1.6),
    );

    let first = stream(&proxy, "first", &[("x-test-budget", "1")]).await;
    assert_eq!(first.status, 200);
    let reason = first.header("x-switchyard-reason");
    let (head, resets) = reason.split_once(", resets in ").expect("a reset time");
    assert_eq!(
        head,
        format!("budget: {:.6} left of {:.6}", COST * 1.6, COST * 1.6)
    );
    let resets: u64 = resets.trim_end_matches(" s").parse().expect("seconds");
    assert!((1..=3600).contains(&resets), "{resets}");
    // The stream's cost is counted when it ends, before its log line is written.
    proxy.log_line(&["request_id=first ", "stream_end=\"done\""]);

    let second = stream(&proxy, "second", &[("x-test-budget", "1")]).await;
    assert_eq!(second.status, 200, "0.6 of a request's cost was left");
    assert!(
        second
            .header("x-switchyard-reason")
            .starts_with(&format!("budget: {:.6} left", COST * 0.6)),
        "{}",
        second.header("x-switchyard-reason")
    );
    proxy.log_line(&["request_id=second ", "stream_end=\"done\""]);

    let third = stream(&proxy, "third", &[]).await;
    assert_eq!(
        third.status,
        429,
        "{}",
        String::from_utf8_lossy(&third.body)
    );
    let retry_after: u64 = third.header("retry-after").parse().expect("Retry-After");
    assert!((1..=3600).contains(&retry_after));
    let error = third.json();
    assert_eq!(error["error"]["code"], "budget_exceeded");
    assert_eq!(error["error"]["type"], "insufficient_quota");
    assert_eq!(third.header("x-switchyard-route"), "budget");
    assert_eq!(
        upstream.received().len(),
        2,
        "the third never went upstream"
    );

    // Anthropic clients get the refusal in their own shape.
    let body = json!({"model": "big", "max_tokens": 10, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let reply = proxy
        .messages(&reqwest::Client::new(), None, &body, &[])
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn a_team_over_budget_can_be_downgraded_instead() {
    let upstream = MockUpstream::start("up").await;
    let proxy = proxy(
        &upstream,
        &format!(
            "{{ usd = {COST}, window = \"1d\", over = \"downgrade\", downgrade = [\"small\"] }}"
        ),
    );
    let client = reqwest::Client::new();
    let route = [("x-test-route", "big")];
    let first = proxy.chat(&client, None, &chat("big", "hi"), &route).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-switchyard-model"), "big");
    assert_eq!(first.header("x-switchyard-route"), "policy");

    let second = proxy.chat(&client, None, &chat("big", "hi"), &route).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-switchyard-model"), "small");
    assert_eq!(second.header("x-switchyard-route"), "budget");
    assert!(second.header("x-switchyard-reason").contains("budget"));
    assert_eq!(upstream.models_received(), ["big-up", "small-up"]);
}

#[tokio::test]
async fn spending_survives_a_config_reload() {
    let upstream = MockUpstream::start("up").await;
    let proxy = proxy(&upstream, &format!("{{ usd = {COST}, window = \"1d\" }}"));
    let client = reqwest::Client::new();
    let route = [("x-test-route", "big")];
    assert_eq!(
        proxy
            .chat(&client, None, &chat("big", "hi"), &route)
            .await
            .status,
        200
    );
    proxy.reload();
    proxy.log_line(&["config reloaded"]);
    assert_eq!(
        proxy
            .chat(&client, None, &chat("big", "hi"), &route)
            .await
            .status,
        429
    );
}
