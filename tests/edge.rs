//! Edge behaviour end to end: readiness before and after the policies load, draining on
//! SIGTERM, TLS (HTTP/1.1 and HTTP/2) with a certificate made here and replaced on SIGHUP, the
//! request-head limit, per-team rate limits, per-provider concurrency, and the metrics after
//! known traffic, read with a Prometheus parser.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use switchyard_e2e::{
    ADMIN_TOKEN, Behaviour, ConfigBuilder, MockUpstream, Proxy, RefusedPort, chat, metric,
    policy_wasm, poll,
};
use tokio::sync::Notify;

fn config(upstream: &MockUpstream) -> ConfigBuilder {
    ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("up", &upstream.url, None)
        .model("m", "up", "m-up", 1.0, &[])
        .fallback(&["m"])
}

fn streamed(model: &str) -> serde_json::Value {
    let mut body = chat(model, "hello");
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn readyz_says_not_ready_until_the_policies_are_loaded() {
    let upstream = MockUpstream::start("up").await;
    // The policy's cases file is a FIFO: loading waits at the canary until the test writes it.
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&cases)
        .status()
        .unwrap();
    assert!(made.success());
    let config = config(&upstream)
        .policy_option(&format!("cases = {cases:?}"))
        .toml();
    let proxy = Proxy::start_accepting(&config, &[]);
    let client = reqwest::Client::new();

    let ready = client.get(proxy.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().starts_with("starting"));
    let alive = client.get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200, "alive while loading");
    let early = proxy.chat(&client, None, &chat("m", "hi"), &[]).await;
    assert_eq!(early.status, 503);
    assert_eq!(early.header("retry-after"), "1");
    assert_eq!(early.json()["error"]["code"], "not_ready");
    assert!(upstream.received().is_empty());

    let written = tokio::task::spawn_blocking(move || {
        let mut fifo = std::fs::OpenOptions::new().write(true).open(cases)?;
        let case =
            json!({"name": "first", "request": chat("auto", "hi"), "expect": {"model": "m"}});
        writeln!(fifo, "{case}")
    });
    written.await.unwrap().expect("the cases were read");

    poll::until("readiness", Duration::from_secs(120), async || {
        let status = client
            .get(proxy.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 200 || status == 503, "{status}");
        (status == 200).then_some(())
    })
    .await;
    proxy.log_line(&["switchyard listening on http://"]);
    let served = proxy.chat(&client, None, &chat("m", "hi"), &[]).await;
    assert_eq!(served.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_stream_finish_and_refuses_new_connections() {
    let upstream = MockUpstream::start("up").await;
    let gate = Arc::new(Notify::new());
    upstream.set(Behaviour::GatedStream(gate.clone()));
    let mut proxy = Proxy::start(
        &config(&upstream)
            .section("[server]\ndrain_timeout_ms = 20000")
            .toml(),
        &[],
    );
    let addr = proxy.base.trim_start_matches("http://").to_string();
    let client = reqwest::Client::new();
    let response = client
        .post(proxy.url("/v1/chat/completions"))
        .json(&streamed("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream();
    let first = events.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "the first event arrived");

    proxy.terminate();
    poll::until(
        "refusing connections",
        Duration::from_secs(10),
        async || {
            let refused = tokio::net::TcpStream::connect(&addr)
                .await
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            refused.then_some(())
        },
    )
    .await;

    gate.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = events.next().await {
        rest.extend_from_slice(&chunk.expect("the stream finishes cleanly"));
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert_eq!(proxy.wait_exit(Duration::from_secs(20)), Some(0));
    proxy.log_line(&["stopped"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_still_running_at_the_drain_deadline_gets_an_error_event_and_is_logged_drained() {
    let upstream = MockUpstream::start("up").await;
    upstream.set(Behaviour::GatedStream(Arc::new(Notify::new())));
    let mut proxy = Proxy::start(
        &config(&upstream)
            .section("[server]\ndrain_timeout_ms = 300")
            .toml(),
        &[],
    );
    let response = reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .header("x-request-id", "drained")
        .json(&streamed("m"))
        .send()
        .await
        .unwrap();
    let mut events = response.bytes_stream();
    let first = events.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "the first event arrived");

    proxy.terminate();
    let mut rest = Vec::new();
    while let Some(chunk) = events.next().await {
        rest.extend_from_slice(&chunk.expect("the stream ends cleanly, with an error event"));
    }
    let rest = String::from_utf8(rest).unwrap();
    let event: serde_json::Value =
        serde_json::from_str(rest.trim().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["error"]["code"], "proxy_draining", "{rest}");
    assert_eq!(proxy.wait_exit(Duration::from_secs(20)), Some(0));
    let line = proxy.log_line(&["request_id=drained ", "switchyard::request"]);
    assert!(line.contains("stream_end=\"drained\""), "{line}");
}

/// A self-signed certificate for 127.0.0.1, as (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a certificate");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

fn trusting(cert: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
}

#[tokio::test]
async fn tls_serves_http1_and_http2_and_takes_a_new_certificate_on_sighup() {
    let upstream = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = certificate();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let proxy = Proxy::start(
        &config(&upstream)
            .section(&format!(
                "[server.tls]\ncert_path = {cert_path:?}\nkey_path = {key_path:?}"
            ))
            .toml(),
        &[],
    );
    assert!(
        proxy.base.starts_with("https://127.0.0.1:"),
        "{}",
        proxy.base
    );

    let h2 = trusting(&cert).build().unwrap();
    let reply = h2
        .post(proxy.url("/v1/chat/completions"))
        .json(&chat("m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.version(), reqwest::Version::HTTP_2, "ALPN chose h2");
    assert_eq!(reply.bytes().await.unwrap(), upstream.answer_bytes("m-up"));

    let h1 = trusting(&cert).http1_only().build().unwrap();
    let reply = h1.get(proxy.url("/readyz")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.version(), reqwest::Version::HTTP_11);

    let (new_cert, new_key) = certificate();
    std::fs::write(&cert_path, &new_cert).unwrap();
    std::fs::write(&key_path, &new_key).unwrap();
    proxy.reload();
    proxy.log_line(&["TLS certificate reloaded"]);
    let fresh = trusting(&new_cert).build().unwrap();
    assert_eq!(
        fresh
            .get(proxy.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let stale = trusting(&cert).build().unwrap();
    let refused = stale.get(proxy.url("/readyz")).send().await;
    assert!(refused.is_err(), "the old certificate is gone");
}

#[tokio::test]
async fn a_request_head_past_the_limit_gets_431() {
    let upstream = MockUpstream::start("up").await;
    let proxy = Proxy::start(
        &config(&upstream)
            .section("[server]\nmax_header_bytes = 16384")
            .toml(),
        &[],
    );
    let client = reqwest::Client::new();
    let big = "x".repeat(20_000);
    let reply = proxy
        .chat(&client, None, &chat("m", "hi"), &[("x-padding", &big)])
        .await;
    assert_eq!(reply.status, 431);
    let small = "x".repeat(4_000);
    let reply = proxy
        .chat(
            &reqwest::Client::new(),
            None,
            &chat("m", "hi"),
            &[("x-padding", &small)],
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_team_over_its_request_rate_gets_429_with_retry_after() {
    let upstream = MockUpstream::start("up").await;
    let proxy = Proxy::start(
        &config(&upstream)
            .team_option("rate_limit = { requests_per_minute = 2 }")
            .toml(),
        &[],
    );
    let client = reqwest::Client::new();
    // A request the policy refuses gives back what it took.
    let rejected = proxy
        .chat(
            &client,
            None,
            &chat("m", "hi"),
            &[("x-test-reject", "400 no")],
        )
        .await;
    assert_eq!(rejected.status, 400);
    for _ in 0..2 {
        assert_eq!(
            proxy
                .chat(&client, None, &chat("m", "hi"), &[])
                .await
                .status,
            200
        );
    }
    let limited = proxy
        .chat(
            &client,
            None,
            &chat("m", "hi"),
            &[("x-request-id", "limited")],
        )
        .await;
    assert_eq!(limited.status, 429);
    let wait: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let error = limited.json();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error["error"]["type"], "requests");
    assert_eq!(limited.header("x-switchyard-route"), "rate-limit");
    assert_eq!(upstream.received().len(), 2);
    // Its log line says why it was refused.
    let line = proxy.log_line(&["request_id=limited ", "switchyard::request"]);
    assert!(
        line.contains("route_by=\"rate-limit\"")
            && line.contains("reason=\"over its requests_per_minute\""),
        "{line}"
    );
}

#[tokio::test]
async fn a_team_over_its_token_rate_waits_off_what_its_answers_used() {
    let upstream = MockUpstream::start("up").await;
    // Each answer reports 10 tokens; each request is estimated at 5 (a 2-character prompt).
    let proxy = Proxy::start(
        &config(&upstream)
            .team_option("rate_limit = { tokens_per_minute = 12 }")
            .toml(),
        &[],
    );
    let client = reqwest::Client::new();
    assert_eq!(
        proxy
            .chat(&client, None, &chat("m", "hi"), &[])
            .await
            .status,
        200
    );
    // 12 - 10 used: 2 left, still above zero.
    assert_eq!(
        proxy
            .chat(&client, None, &chat("m", "hi"), &[])
            .await
            .status,
        200
    );
    // 2 - 10: in debt.
    let limited = proxy.chat(&client, None, &chat("m", "hi"), &[]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"]["type"], "tokens");
    let wait: u64 = limited.header("retry-after").parse().unwrap();
    assert!(
        (30..=60).contains(&wait),
        "8 tokens of debt at 12 a minute: {wait}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_at_its_concurrency_limit_is_skipped_for_the_next_target() {
    let busy = MockUpstream::start("busy").await;
    let spare = MockUpstream::start("spare").await;
    let gate = Arc::new(Notify::new());
    busy.set(Behaviour::GatedStream(gate.clone()));
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of("busy", "openai", &busy.url, &["max_concurrency = 1"])
        .provider("spare", &spare.url, None)
        .model("a", "busy", "a-up", 1.0, &[])
        .model("b", "spare", "b-up", 1.0, &[])
        .fallback(&["b"])
        .toml();
    let proxy = Proxy::start(&config, &[]);
    let client = reqwest::Client::new();
    let holding = client
        .post(proxy.url("/v1/chat/completions"))
        .header("x-test-route", "a")
        .json(&streamed("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(holding.status(), 200);
    let mut events = holding.bytes_stream();
    events.next().await.unwrap().unwrap();

    let second = proxy
        .chat(&client, None, &chat("a", "hi"), &[("x-test-route", "a,b")])
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-switchyard-model"), "b");
    let only_a = proxy
        .chat(&client, None, &chat("a", "hi"), &[("x-test-route", "a")])
        .await;
    assert_eq!(only_a.status, 503);
    assert_eq!(only_a.header("retry-after"), "1");
    assert!(
        only_a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("most requests in flight")
    );

    gate.notify_one();
    while events.next().await.is_some() {}
    busy.set(Behaviour::Answer);
    let third = proxy
        .chat(&client, None, &chat("a", "hi"), &[("x-test-route", "a")])
        .await;
    assert_eq!(
        third.status, 200,
        "the slot came back when the stream ended"
    );
    assert_eq!(busy.received().len(), 2);
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let upstream = MockUpstream::start("up").await;
    let dead = RefusedPort::new();
    let proxy = Proxy::start(
        &config(&upstream)
            .provider("dead", &dead.url, None)
            .model("gone", "dead", "gone-up", 1.0, &[])
            .upstream("breaker_failures = 1")
            .admin()
            .section("[server]\nmetrics = true")
            .toml(),
        &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let client = reqwest::Client::new();
    for _ in 0..2 {
        assert_eq!(
            proxy
                .chat(&client, None, &chat("m", "hi"), &[])
                .await
                .status,
            200
        );
    }
    let failed_over = proxy
        .chat(
            &client,
            None,
            &chat("m", "hi"),
            &[("x-test-route", "gone,m")],
        )
        .await;
    assert_eq!(failed_over.header("x-switchyard-model"), "m");
    let stream = proxy
        .chat(
            &client,
            None,
            &streamed("m"),
            &[("x-request-id", "the-stream")],
        )
        .await;
    assert_eq!(stream.status, 200);
    let rejected = proxy
        .chat(
            &client,
            None,
            &chat("m", "hi"),
            &[("x-test-reject", "400 no")],
        )
        .await;
    assert_eq!(rejected.status, 400);
    // Metrics of a stream are recorded when it ends, with its log line.
    proxy.log_line(&["request_id=the-stream ", "stream_end=\"done\""]);

    let exposition = client
        .get(proxy.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let policy = proxy.log_line(&["request_id=the-stream "]);
    let policy = policy
        .split("policy=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the policy version in the log line");
    let team = ("team", "test-team");
    let served = [
        team,
        ("policy", policy),
        ("model", "m"),
        ("provider", "up"),
        ("status", "200"),
        ("route", "policy"),
    ];
    assert_eq!(
        metric(&exposition, "switchyard_requests_total", &served),
        4.0
    );
    let refused = [
        team,
        ("policy", policy),
        ("model", "-"),
        ("provider", "-"),
        ("status", "400"),
        ("route", "rejected"),
    ];
    assert_eq!(
        metric(&exposition, "switchyard_requests_total", &refused),
        1.0
    );
    let by_model = [team, ("model", "m")];
    assert_eq!(
        metric(
            &exposition,
            "switchyard_request_duration_seconds",
            &by_model
        ),
        4.0
    );
    assert_eq!(
        metric(
            &exposition,
            "switchyard_time_to_first_token_seconds",
            &by_model
        ),
        1.0
    );
    assert_eq!(
        metric(
            &exposition,
            "switchyard_upstream_attempts_total",
            &[("model", "m"), ("result", "200")]
        ),
        4.0
    );
    for (kind, tokens) in [("input", 20.0), ("output", 20.0)] {
        assert_eq!(
            metric(
                &exposition,
                "switchyard_tokens_total",
                &[team, ("model", "m"), ("kind", kind)]
            ),
            tokens
        );
    }
    // 4 answers of 5 input tokens at $1/M and 5 output tokens at $4/M: $0.0001.
    assert_eq!(
        metric(&exposition, "switchyard_cost_nanodollars_total", &by_model),
        100_000.0
    );
    assert_eq!(
        metric(
            &exposition,
            "switchyard_policy_decision_seconds",
            &[("policy", policy)]
        ),
        5.0
    );
    assert_eq!(
        metric(&exposition, "switchyard_breaker_open", &[("model", "m")]),
        0.0
    );
    assert_eq!(
        metric(&exposition, "switchyard_breaker_open", &[("model", "gone")]),
        1.0,
        "one refused connection opens a breaker of one failure"
    );
    assert_eq!(
        metric(
            &exposition,
            "switchyard_upstream_attempts_total",
            &[("model", "gone"), ("result", "connect")]
        ),
        1.0
    );

    let admin = client
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin.status(),
        401,
        "the admin listener's copy needs the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_go_to_an_otlp_collector_with_a_span_per_decision_and_attempt() {
    let upstream = MockUpstream::start("up").await;
    // The mock records any POST: here it stands for a collector receiving OTLP/HTTP JSON.
    let collector = MockUpstream::start("collector").await;
    let endpoint = collector.url.trim_end_matches("/v1").to_string();
    let mut proxy = Proxy::start(
        &config(&upstream).toml(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    let reply = proxy
        .chat(
            &reqwest::Client::new(),
            None,
            &chat("m", "hi"),
            &[("x-request-id", "traced-1")],
        )
        .await;
    assert_eq!(reply.status, 200);
    // Spans are batched; stopping the proxy sends what is left.
    proxy.terminate();
    assert_eq!(proxy.wait_exit(Duration::from_secs(20)), Some(0));

    let exports = collector.received();
    assert!(!exports.is_empty(), "nothing was exported");
    assert!(exports.iter().all(|e| e.path == "/v1/traces"));
    let spans: Vec<serde_json::Value> = exports
        .iter()
        .flat_map(|e| {
            e.body["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let attribute = |span: &serde_json::Value, key: &str| {
        span["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
    };
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` span in {spans:#?}"))
    };
    let request = named("request");
    assert_eq!(
        attribute(request, "request_id"),
        Some(json!({"stringValue": "traced-1"}))
    );
    let decide = named("policy.decide");
    let attempt = named("upstream.attempt");
    for child in [decide, attempt] {
        assert_eq!(child["traceId"], request["traceId"]);
        assert_eq!(child["parentSpanId"], request["spanId"]);
    }
    assert_eq!(
        attribute(attempt, "model"),
        Some(json!({"stringValue": "m"}))
    );
    assert_eq!(
        attribute(decide, "outcome"),
        Some(json!({"stringValue": "route"}))
    );
}
