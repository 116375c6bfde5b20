//! Live health end to end: a model that keeps failing has its circuit breaker opened, attempts
//! skip it, its policy sees it as unhealthy, and it comes back after a successful probe; a
//! `Retry-After` takes a model out at once for as long as asked.

use std::time::{Duration, Instant};

use switchyard_e2e::{
    Behaviour, ConfigBuilder, MockUpstream, Proxy, Reply, chat, policy_wasm, poll,
};

/// Breaker cooldown in these tests.
const COOLDOWN: Duration = Duration::from_millis(500);

/// Mocks `a` and `b` behind models `a` and `b`; the breaker opens after 3 failures.
async fn setup() -> (MockUpstream, MockUpstream, Proxy) {
    let a = MockUpstream::start("mock-a").await;
    let b = MockUpstream::start("mock-b").await;
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .upstream("breaker_failures = 3")
        .upstream(&format!("breaker_cooldown_ms = {}", COOLDOWN.as_millis()))
        .provider("pa", &a.url, None)
        .provider("pb", &b.url, None)
        .model("a", "pa", "a-up", 1.0, &[])
        .model("b", "pb", "b-up", 1.0, &[])
        .fallback(&["b"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    (a, b, proxy)
}

async fn send(proxy: &Proxy, headers: &[(&str, &str)]) -> Reply {
    proxy
        .chat(&reqwest::Client::new(), None, &chat("x", "hello"), headers)
        .await
}

/// The health of model `id` as the policy saw it in request `request_id` (dumped by the scripted
/// policy, which then routes to `b`), e.g. `healthy: false, latency_ms: ...`.
async fn health_seen(proxy: &Proxy, id: &str, request_id: &str) -> String {
    let headers = [
        ("x-test-dump", "1"),
        ("x-test-route", "b"),
        ("x-request-id", request_id),
    ];
    let reply = send(proxy, &headers).await;
    assert_eq!(reply.status, 200);
    let line = proxy.log_line(&[request_id, &format!("model: Model {{ id: \\\"{id}\\\"")]);
    let at = line
        .find("health: ModelHealth { ")
        .expect("health in the dump");
    line[at + "health: ModelHealth { ".len()..]
        .split(" }")
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_is_taken_out_shown_unhealthy_and_probed_back() {
    let (a, b, proxy) = setup().await;
    let chain = [("x-test-route", "a,b")];
    assert!(
        health_seen(&proxy, "a", "before")
            .await
            .starts_with("healthy: true")
    );

    a.set(Behaviour::Status(500));
    for _ in 0..3 {
        let reply = send(&proxy, &chain).await;
        assert_eq!(reply.header("x-switchyard-model"), "b");
    }
    let opened = Instant::now();
    assert_eq!(a.received().len(), 3);
    let seen = health_seen(&proxy, "a", "open").await;
    assert!(
        seen.starts_with("healthy: false") && seen.contains("error-rate: 1.0"),
        "{seen}"
    );

    // While open, attempts skip `a`: nothing more reaches it.
    while opened.elapsed() < COOLDOWN / 2 {
        let reply = send(&proxy, &chain).await;
        assert_eq!(
            (reply.status, reply.header("x-switchyard-model")),
            (200, "b")
        );
    }
    assert_eq!(a.received().len(), 3, "attempts skipped the open breaker");
    let only_a = send(&proxy, &[("x-test-route", "a"), ("x-request-id", "only-a")]).await;
    assert_eq!(only_a.status, 503, "a route of open breakers only");
    assert!(
        only_a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a: skipped: its circuit breaker is open")
    );

    // `a` recovers; after the cooldown one probe goes through and closes the breaker.
    a.set(Behaviour::Answer);
    poll::until("a probe of `a`", COOLDOWN * 10, async || {
        let reply = send(&proxy, &chain).await;
        (reply.header("x-switchyard-model") == "a").then_some(())
    })
    .await;
    assert!(opened.elapsed() >= COOLDOWN, "probed before the cooldown");
    assert_eq!(a.received().len(), 4);
    let seen = health_seen(&proxy, "a", "closed").await;
    assert!(seen.starts_with("healthy: true"), "{seen}");
    assert!(b.received().len() > 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_takes_a_model_out_at_once() {
    let (a, _b, proxy) = setup().await;
    a.set(Behaviour::RetryAfter(429, 30));
    let chain = [("x-test-route", "a,b")];
    let first = send(&proxy, &[chain[0], ("x-request-id", "limited")]).await;
    assert_eq!(first.header("x-switchyard-model"), "b");
    let line = proxy.log_line(&["request_id=limited", "attempts="]);
    assert!(
        line.contains("a: answered 429 (retry after 30 s)"),
        "{line}"
    );
    for _ in 0..5 {
        assert_eq!(send(&proxy, &chain).await.header("x-switchyard-model"), "b");
    }
    assert_eq!(a.received().len(), 1, "one 429 was enough");
    let seen = health_seen(&proxy, "a", "limited-view").await;
    assert!(seen.starts_with("healthy: false"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_see_the_time_to_first_token_of_streams() {
    let (_a, _b, proxy) = setup().await;
    let asked = [("x-test-first-token", "a"), ("x-test-route", "b")];
    let before = send(&proxy, &asked).await;
    assert_eq!(
        before.header("x-switchyard-reason"),
        "first token of a: not measured"
    );
    let mut body = chat("a", "hello");
    body["stream"] = serde_json::json!(true);
    let streamed = proxy
        .chat(
            &reqwest::Client::new(),
            None,
            &body,
            &[("x-test-route", "a")],
        )
        .await;
    assert_eq!(streamed.status, 200);
    let after = send(&proxy, &asked).await;
    let reason = after.header("x-switchyard-reason");
    let ms: f32 = reason
        .strip_prefix("first token of a: ")
        .and_then(|r| r.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("a measured time: {reason}"));
    assert!(ms > 0.0 && ms < 10_000.0, "{ms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_route_says_429_then_when_a_target_can_next_be_tried() {
    let (a, b, proxy) = setup().await;
    a.set(Behaviour::RetryAfter(429, 30));
    b.set(Behaviour::RetryAfter(429, 12));
    let chain = [("x-test-route", "a,b")];
    // Every target answered 429: the client is told so, with the longest wait any asked for,
    // and how the request was routed.
    let limited = send(&proxy, &chain).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.header("retry-after"), "30");
    assert_eq!(limited.json()["error"]["code"], "upstream_rate_limited");
    assert_eq!(
        (
            limited.header("x-switchyard-team"),
            limited.header("x-switchyard-route"),
            limited.header("x-switchyard-reason"),
        ),
        ("test-team", "policy", "scripted")
    );
    assert!(
        limited
            .header("x-switchyard-policy")
            .starts_with("test-policy@")
    );

    // Both breakers are now open for as long as their upstream asked: 503, with the time until
    // the first of them (b, after 12 s) can be tried again.
    let skipped = send(&proxy, &chain).await;
    assert_eq!(skipped.status, 503, "{skipped:?}");
    let after: u64 = skipped.header("retry-after").parse().unwrap();
    assert!((11..=12).contains(&after), "Retry-After: {after}");
    assert_eq!(skipped.header("x-switchyard-route"), "policy");
    assert_eq!((a.received().len(), b.received().len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_route_still_says_how_it_was_routed() {
    let (a, b, proxy) = setup().await;
    a.set(Behaviour::Status(500));
    b.set(Behaviour::Status(502));
    let failed = send(
        &proxy,
        &[("x-test-route", "a,b"), ("x-request-id", "failed")],
    )
    .await;
    assert_eq!(failed.status, 502, "{failed:?}");
    assert_eq!(failed.header("retry-after"), "");
    assert_eq!(
        (
            failed.header("x-switchyard-team"),
            failed.header("x-switchyard-route"),
            failed.header("x-switchyard-reason"),
            failed.header("x-request-id"),
        ),
        ("test-team", "policy", "scripted", "failed")
    );
}
