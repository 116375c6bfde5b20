//! Routing end to end: policy decisions reach the right upstream model, fallback chains move on,
//! policy failures use the static fallback route, and keys stay where they belong.

use std::time::{Duration, Instant};

use switchyard_e2e::{
    Behaviour, ConfigBuilder, MockUpstream, Proxy, RefusedPort, chat, policy_wasm,
};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Two mocks, `a` and `b`, serving models `a` and `b` (upstream names `a-up`, `b-up`); the static
/// fallback route is `b`.
async fn two_mocks(policy: &str) -> (MockUpstream, MockUpstream, ConfigBuilder) {
    let a = MockUpstream::start("mock-a").await;
    let b = MockUpstream::start("mock-b").await;
    let config = ConfigBuilder::new(&policy_wasm(policy))
        .provider("pa", &a.url, None)
        .provider("pb", &b.url, None)
        .model("a", "pa", "a-up", 1.0, &["cheap"])
        .model("b", "pb", "b-up", 1.0, &["cheap"])
        .fallback(&["b"]);
    (a, b, config)
}

async fn post(
    proxy: &Proxy,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client().post(proxy.url("/v1/chat/completions")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("proxy answers")
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_router_sends_short_and_multi_step_requests_to_different_models() {
    let cheap = MockUpstream::start("cheap").await;
    let smart = MockUpstream::start("smart").await;
    let config = ConfigBuilder::new(&policy_wasm("cost_router"))
        .provider("cheap-co", &cheap.url, None)
        .provider("smart-co", &smart.url, None)
        .model("mini", "cheap-co", "mini-2025", 0.15, &["cheap"])
        .model("thinker", "smart-co", "thinker-pro", 3.0, &["reasoning"])
        .fallback(&["mini"]);
    let proxy = Proxy::start(&config.toml(), &[]);

    let short = post(&proxy, &chat("auto", "What is the capital of France?"), &[]).await;
    assert_eq!(short.status(), 200);
    assert_eq!(header(&short, "x-switchyard-model"), "mini");
    assert_eq!(header(&short, "x-switchyard-provider"), "cheap-co");
    assert!(header(&short, "x-switchyard-policy").starts_with("test-policy@"));
    assert!(header(&short, "x-switchyard-reason").starts_with("cheap:"));

    let hard = "Design a zero-downtime migration of our billing database. Think step by step:\n\
                1. inventory the tables\n2. plan dual writes\n3. backfill\n4. cut over";
    let long = post(&proxy, &chat("auto", hard), &[]).await;
    assert_eq!(long.status(), 200);
    assert_eq!(header(&long, "x-switchyard-model"), "thinker");
    assert!(header(&long, "x-switchyard-reason").starts_with("reasoning:"));

    assert_eq!(
        cheap.models_received(),
        ["mini-2025"],
        "upstream model name is rewritten"
    );
    assert_eq!(smart.models_received(), ["thinker-pro"]);
    let answer: serde_json::Value = long.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "answer from smart for thinker-pro"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_streaming_answer_arrives_byte_for_byte() {
    let (a, _b, config) = two_mocks("scripted_policy").await;
    let proxy = Proxy::start(&config.toml(), &[]);
    let request = serde_json::json!({
        "model": "whatever", "temperature": 0.2, "user": "u-1", "max_tokens": 64,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say \"hi\" ☃"}]
    });
    let resp = post(&proxy, &request, &[("x-test-route", "a")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(resp.bytes().await.unwrap(), a.answer_bytes("a-up"));

    let mut expected = request.clone();
    expected["model"] = "a-up".into();
    assert_eq!(
        a.received()[0].body,
        expected,
        "everything but the model is forwarded unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_moves_on_after_a_500() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    a.set(Behaviour::Status(500));
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[("x-test-route", "a,b"), ("x-request-id", "chain-500")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b");
    assert_eq!(header(&resp, "x-switchyard-route"), "policy");
    assert_eq!(resp.bytes().await.unwrap(), b.answer_bytes("b-up"));
    assert_eq!(a.models_received(), ["a-up"]);
    assert_eq!(b.models_received(), ["b-up"]);
    let line = proxy.log_line(&["request_id=chain-500", "status=200"]);
    assert!(line.contains("a: answered 500"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_moves_on_after_a_refused_connection_and_a_429() {
    let b = MockUpstream::start("mock-b").await;
    let c = MockUpstream::start("mock-c").await;
    c.set(Behaviour::Status(429));
    let dead = RefusedPort::new();
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("dead", &dead.url, None)
        .provider("busy", &c.url, None)
        .provider("pb", &b.url, None)
        .model("gone", "dead", "gone-up", 1.0, &[])
        .model("c", "busy", "c-up", 1.0, &[])
        .model("b", "pb", "b-up", 1.0, &[])
        .fallback(&["b"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[("x-test-route", "gone,c,b"), ("x-request-id", "refused")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b");
    assert_eq!(c.models_received(), ["c-up"]);
    let line = proxy.log_line(&["request_id=refused", "status=200"]);
    assert!(
        line.contains("gone: connection failed") && line.contains("c: answered 429"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_moves_on_when_an_attempt_times_out() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    a.set(Behaviour::Hang);
    let proxy = Proxy::start(&config.toml(), &[]);
    let started = Instant::now();
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[
            ("x-test-route", "a,b"),
            ("x-test-timeout-ms", "300"),
            ("x-request-id", "slow"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the attempt had its full timeout"
    );
    assert_eq!(a.models_received(), ["a-up"]);
    assert_eq!(b.models_received(), ["b-up"]);
    let line = proxy.log_line(&["request_id=slow", "status=200"]);
    assert!(line.contains("a: timed out after 300 ms"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_target_fails_the_client_gets_one_openai_error() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    a.set(Behaviour::Status(503));
    b.set(Behaviour::Status(500));
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(&proxy, &chat("x", "hello"), &[("x-test-route", "a,b")]).await;
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "upstream_error");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("a: answered 503") && message.contains("b: answered 500"),
        "{message}"
    );
    assert!(
        !message.contains("127.0.0.1"),
        "no upstream addresses leak: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_client_error_is_passed_through_not_retried() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    a.set(Behaviour::Status(400));
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(&proxy, &chat("x", "hello"), &[("x-test-route", "a,b")]).await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "mock-a says 400");
    assert!(b.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_naming_an_unknown_model_uses_the_static_fallback_and_is_logged() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[
            ("x-test-route", "a,no-such-model"),
            ("x-request-id", "bad-decision"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "b");
    assert_eq!(header(&resp, "x-switchyard-route"), "fallback");
    assert_eq!(
        header(&resp, "x-switchyard-reason"),
        "policy failed (invalid-decision); static fallback route"
    );
    assert!(a.received().is_empty());
    assert_eq!(b.models_received(), ["b-up"]);
    let warning = proxy.log_line(&["bad-decision", "kind=\"invalid-decision\""]);
    assert!(
        warning.contains("`no-such-model` is not in the catalog"),
        "{warning}"
    );
    let line = proxy.log_line(&["request_id=bad-decision", "status=200"]);
    assert!(line.contains("route_by=\"fallback\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_errors_traps_and_loops_use_the_fallback_and_name_the_kind() {
    let (_a, b, config) = two_mocks("scripted_policy").await;
    let proxy = Proxy::start(&config.deadline_ms(20).toml(), &[]);
    let cases = [
        ("x-test-error", "no idea", "error", "no idea"),
        ("x-test-panic", "kaboom", "trap", "kaboom"),
        ("x-test-spin", "1", "timeout", "deadline"),
    ];
    for (i, (name, value, kind, detail)) in cases.into_iter().enumerate() {
        let id = format!("failure-{i}");
        let started = Instant::now();
        let resp = post(
            &proxy,
            &chat("x", "hello"),
            &[(name, value), ("x-request-id", &id)],
        )
        .await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(header(&resp, "x-switchyard-route"), "fallback", "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
        let warning = proxy.log_line(&[&id, &format!("kind=\"{kind}\"")]);
        assert!(warning.contains(detail), "{warning}\n{}", proxy.logs());
    }
    assert_eq!(b.received().len(), 3);
    let after = post(&proxy, &chat("x", "hello"), &[("x-test-route", "b")]).await;
    assert_eq!(
        header(&after, "x-switchyard-route"),
        "policy",
        "the proxy keeps deciding after failures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_rejection_reaches_the_client_in_openai_shape() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[("x-test-reject", "403 model not allowed for you")],
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(header(&resp, "x-switchyard-policy").starts_with("test-policy@"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "model not allowed for you");
    assert_eq!(body["error"]["code"], "policy_rejected");
    assert!(a.received().is_empty() && b.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_key_reaches_the_upstream_and_nothing_else() {
    const SECRET: &str = "sk-e2e-very-secret-4242";
    let (a, _b, config) = two_mocks("scripted_policy").await;
    let config = config
        .provider("keyed", &a.url, Some("KEYED_API_KEY"))
        .model("k", "keyed", "k-up", 1.0, &[])
        .team_option("keys = [\"client-virtual-key\"]");
    let proxy = Proxy::start(&config.toml(), &[("KEYED_API_KEY", SECRET)]);
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[
            ("x-test-route", "k"),
            ("x-test-dump", "1"),
            ("authorization", "Bearer client-virtual-key"),
            ("x-request-id", "keyed"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let headers = format!("{:?}", resp.headers());
    let body = resp.text().await.unwrap();

    let received = &a.received()[0];
    assert_eq!(
        received.headers["authorization"],
        format!("Bearer {SECRET}")
    );
    assert_eq!(received.body["model"], "k-up");

    let dump = proxy.log_line(&["keyed", "request: Request {"]);
    assert!(
        dump.contains("x-test-route"),
        "the policy saw its allow-listed headers: {dump}"
    );
    proxy.log_line(&["keyed", "model: Model {"]);
    proxy.log_line(&["request_id=keyed", "status=200"]);
    let logs = proxy.logs();
    assert!(
        !logs.contains(SECRET),
        "the key is in the logs or the policy's view:\n{logs}"
    );
    assert!(
        !logs.contains("client-virtual-key"),
        "the client's key reached the policy or logs"
    );
    assert!(!body.contains(SECRET) && !headers.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reads_message_text_through_the_host_capped_by_config() {
    let (_a, _b, config) = two_mocks("scripted_policy").await;
    let proxy = Proxy::start(&config.policy_option("max_message_chars = 50").toml(), &[]);
    let text = "héllo ".repeat(40);
    let resp = post(&proxy, &chat("x", &text), &[("x-test-read", "0,100000")]).await;
    assert_eq!(
        header(&resp, "x-switchyard-reason"),
        "read 50 chars: h?llo h?llo h?ll"
    );
    let resp = post(&proxy, &chat("x", &text), &[("x-test-read", "0,7")]).await;
    assert_eq!(
        header(&resp, "x-switchyard-reason"),
        "read 7 chars: h?llo h"
    );
    let resp = post(&proxy, &chat("x", &text), &[("x-test-read", "3,10")]).await;
    assert_eq!(header(&resp, "x-switchyard-reason"), "no such message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_catalog() {
    let (_a, _b, config) = two_mocks("scripted_policy").await;
    let proxy = Proxy::start(&config.toml(), &[]);
    let body: serde_json::Value = client()
        .get(proxy.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(body["data"][0]["owned_by"], "pa");
    let health = client().get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_decision_and_none_is_dropped() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    // The spinning third holds the worker threads until the deadline, yielding at every epoch
    // tick; the deadline leaves a quick decision room for the many ticks a debug build and a
    // busy machine may need.
    let proxy = Proxy::start(&config.deadline_ms(300).toml(), &[]);
    let client = client();
    let requests = (0..60).map(|i| {
        // A third route to `a`, a third to `b`, and a third spin until the deadline and take
        // the static fallback route (`b`).
        let (name, value, model, route_by) = match i % 3 {
            0 => ("x-test-route", "a", "a", "policy"),
            1 => ("x-test-route", "b", "b", "policy"),
            _ => ("x-test-spin", "1", "b", "fallback"),
        };
        let request = client
            .post(proxy.url("/v1/chat/completions"))
            .header(name, value)
            .json(&chat("x", &format!("request {i}")))
            .send();
        async move {
            let resp = request.await.expect("every request is answered");
            assert_eq!(resp.status(), 200, "request {i}");
            assert_eq!(header(&resp, "x-switchyard-model"), model, "request {i}");
            assert_eq!(header(&resp, "x-switchyard-route"), route_by, "request {i}");
        }
    });
    futures_util::future::join_all(requests).await;
    assert_eq!(a.received().len(), 20);
    assert_eq!(b.received().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_s_usage_is_priced_from_the_catalog() {
    // Model `a` costs $1 per million input tokens and $4 per million output tokens; the mock
    // reports 5 and 5.
    let (_a, _b, config) = two_mocks("scripted_policy").await;
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[("x-test-route", "a"), ("x-request-id", "priced")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-cost-usd"), "0.00002500");
    let line = proxy.log_line(&["request_id=priced", "status=200"]);
    assert!(
        line.contains("input_tokens=5 output_tokens=5 cost_usd=2.5e-5"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_failure_is_retried_on_the_same_target() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    let config = config
        .upstream("retries = 1")
        .upstream("retry_budget_percent = 100");
    let once = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    a.set(Behaviour::FailTimes(502, once));
    let proxy = Proxy::start(&config.toml(), &[]);
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[("x-test-route", "a,b"), ("x-request-id", "retried")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "a");
    assert_eq!(a.models_received(), ["a-up", "a-up"]);
    assert!(b.received().is_empty());
    let line = proxy.log_line(&["request_id=retried", "status=200"]);
    assert!(line.contains("a: answered 502, a=200"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_bounds_retries_of_a_failing_upstream() {
    // Half a retry earned per request and none with time: ten requests to an upstream that
    // always fails get five retries, not ten.
    let (a, b, config) = two_mocks("scripted_policy").await;
    let config = config
        .upstream("retries = 1")
        .upstream("retry_budget_percent = 50")
        .upstream("retry_budget_min_per_second = 0")
        .upstream("breaker_failures = 1000");
    a.set(Behaviour::Status(500));
    let proxy = Proxy::start(&config.toml(), &[]);
    for _ in 0..10 {
        let resp = post(&proxy, &chat("x", "hello"), &[("x-test-route", "a,b")]).await;
        assert_eq!(header(&resp, "x-switchyard-model"), "b");
    }
    assert_eq!(a.received().len(), 15);
    assert_eq!(b.received().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_deadline_bounds_the_whole_chain() {
    let (a, b, config) = two_mocks("scripted_policy").await;
    a.set(Behaviour::Hang);
    b.set(Behaviour::Hang);
    let proxy = Proxy::start(&config.upstream("request_timeout_ms = 300").toml(), &[]);
    let started = Instant::now();
    let resp = post(
        &proxy,
        &chat("x", "hello"),
        &[("x-test-route", "a,b"), ("x-request-id", "deadline")],
    )
    .await;
    assert_eq!(resp.status(), 504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(10),
        "the chain stopped at the request's deadline, far before the attempts' own: {took:?}"
    );
    let line = proxy.log_line(&["request_id=deadline", "status=504"]);
    assert!(
        line.contains("a: timed out after")
            && line.contains("b: not tried: the request's time was up"),
        "{line}"
    );
    assert!(b.received().is_empty());
}

#[tokio::test]
async fn a_policy_built_against_the_first_contract_still_runs() {
    let (a, b, config) = two_mocks("first_contract_policy").await;
    let proxy = Proxy::start(&config.toml(), &[]);
    for (text, model, reason) in [
        ("b please", "b", "0.1.0 policy: the model the message names"),
        ("anything", "a", "0.1.0 policy: first model"),
    ] {
        let resp = post(&proxy, &chat("auto", text), &[]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-switchyard-reason"), reason);
        assert_eq!(header(&resp, "x-switchyard-model"), model);
    }
    assert_eq!(
        (a.models_received(), b.models_received()),
        (vec!["a-up".to_string()], vec!["b-up".to_string()])
    );
}
