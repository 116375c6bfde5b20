//! Streaming end to end: SSE events pass through as they arrive, intact and in order.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use switchyard_e2e::{Behaviour, ConfigBuilder, MockUpstream, Proxy, poll, workspace_root};
use tokio::sync::Notify;

const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pass_through_as_they_arrive_and_end_with_done() {
    let mock = MockUpstream::start("streamer").await;
    let gate = Arc::new(Notify::new());
    mock.set(Behaviour::GatedStream(gate.clone()));
    let config = ConfigBuilder::scripted(&mock.url, "s");
    let proxy = Proxy::start(&config.toml(), &[]);

    let resp = reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .json(&serde_json::json!({"model": "s", "stream": true, "messages": [{"role": "user", "content": "count"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-switchyard-model"], "s");
    let expected = mock.stream_events("s-up");

    // The mock holds every event after the first until the gate opens: the first event must
    // reach the client while the upstream is still waiting, or the proxy is buffering.
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    while got.len() < expected[0].len() {
        let chunk = tokio::time::timeout(PATIENCE, body.next())
            .await
            .expect("the first event arrives before the upstream finishes")
            .expect("stream open")
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, expected[0]);

    gate.notify_one();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, body.next())
        .await
        .expect("stream ends")
    {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        got,
        expected.concat(),
        "every event, in order, byte for byte"
    );
    assert!(got.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(mock.received()[0].body["stream"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_serves_offline_and_routes_two_requests_to_two_models() {
    let proxy = Proxy::start_file(&workspace_root().join("config/switchyard.toml"));
    let client = reqwest::Client::new();
    let ask = |body: serde_json::Value| {
        client
            .post(proxy.url("/v1/chat/completions"))
            .json(&body)
            .send()
    };

    let short = ask(serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}))
        .await
        .unwrap();
    assert_eq!(short.status(), 200);
    let short_model = short.headers()["x-switchyard-model"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: serde_json::Value = short.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("Echo from {short_model}:")),
        "{text}"
    );

    let hard = "Prove step by step that the square root of 2 is irrational, then derive a bound.";
    let long = ask(serde_json::json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": hard}]}))
        .await
        .unwrap();
    assert_eq!(long.status(), 200);
    let long_model = long.headers()["x-switchyard-model"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(short_model, long_model);
    let sse = long.text().await.unwrap();
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    let streamed: String = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        streamed.starts_with(&format!("Echo from {long_model}:")),
        "{streamed}"
    );
}

/// A proxy in front of one streaming mock, with a short stream idle timeout.
async fn streamer() -> (MockUpstream, Proxy) {
    let mock = MockUpstream::start("streamer").await;
    let config = ConfigBuilder::scripted(&mock.url, "s").upstream("stream_idle_timeout_ms = 300");
    let proxy = Proxy::start(&config.toml(), &[]);
    (mock, proxy)
}

async fn stream_request(proxy: &Proxy, request_id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .header("x-request-id", request_id)
        .json(&serde_json::json!({"model": "s", "stream": true, "messages": [{"role": "user", "content": "count"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_cut_stream_ends_with_an_error_event_not_a_silent_truncation() {
    let (mock, proxy) = streamer().await;
    let first = mock.stream_events("s-up")[0].clone();
    let cut = Arc::new(Notify::new());
    for (behaviour, id, code) in [
        (
            Behaviour::StallAfterFirst,
            "stalled",
            "upstream_stream_stalled",
        ),
        (
            Behaviour::CutAfterFirst(cut.clone()),
            "cut",
            "upstream_stream_cut",
        ),
    ] {
        let cutting = matches!(behaviour, Behaviour::CutAfterFirst(_));
        mock.set(behaviour);
        let resp = stream_request(&proxy, id).await;
        assert_eq!(resp.status(), 200, "committed at the first byte");
        let mut body = resp.bytes_stream();
        let mut got = Vec::new();
        while got.len() < first.len() {
            let chunk = tokio::time::timeout(PATIENCE, body.next())
                .await
                .expect("first event");
            got.extend_from_slice(&chunk.expect("stream open").unwrap());
        }
        assert_eq!(
            got, first,
            "{id}: the event sent before the fault arrives intact"
        );
        // Bytes have reached the client: now the upstream breaks (or stays silent).
        if cutting {
            cut.notify_one();
        }
        while let Some(chunk) = tokio::time::timeout(PATIENCE, body.next())
            .await
            .expect("ends")
        {
            got.extend_from_slice(&chunk.expect("the client's stream ends cleanly"));
        }
        let rest = std::str::from_utf8(&got[first.len()..]).unwrap();
        let event: serde_json::Value =
            serde_json::from_str(rest.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(event["error"]["code"], code, "{id}: {rest}");
        assert_eq!(event["error"]["type"], "server_error");
        assert!(rest.ends_with("\n\n") && !rest.contains("[DONE]"), "{rest}");
        proxy.log_line(&[&format!("request_id={id} "), code]);
        assert_eq!(
            mock.received().len(),
            1,
            "no failover after bytes were sent"
        );
        mock.clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_stream_closes_the_upstream_connection() {
    let (mock, proxy) = streamer().await;
    mock.set(Behaviour::GatedStream(Arc::new(Notify::new())));
    let resp = stream_request(&proxy, "leaver").await;
    let mut body = resp.bytes_stream();
    tokio::time::timeout(PATIENCE, body.next())
        .await
        .expect("the first event arrives")
        .expect("stream open")
        .unwrap();
    assert_eq!(mock.streams_abandoned(), 0);
    drop(body);
    poll::until("the upstream stream closed", PATIENCE, async || {
        (mock.streams_abandoned() > 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_s_usage_is_counted_and_shown_only_to_clients_that_asked() {
    let (mock, proxy) = streamer().await;
    // The client says nothing about usage: the proxy asks for it, counts it, and keeps the
    // usage event out of the client's stream.
    let resp = stream_request(&proxy, "silent").await;
    let body = resp.bytes().await.unwrap();
    assert_eq!(body, mock.stream_events("s-up").concat());
    assert_eq!(
        mock.received()[0].body["stream_options"],
        serde_json::json!({"include_usage": true})
    );
    let line = proxy.log_line(&["request_id=silent ", "stream_end=\"done\""]);
    assert!(
        line.contains("input_tokens=5 output_tokens=5 cost_usd=2.5e-5"),
        "{line}"
    );
    assert!(line.contains("first_byte_ms="), "{line}");

    // A client that asks gets the usage event.
    let asked = reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .json(&serde_json::json!({"model": "s", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "count"}]}))
        .send()
        .await
        .unwrap();
    let body = asked.bytes().await.unwrap();
    assert_eq!(body, mock.stream_events_with_usage("s-up").concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_upstream_ends_with_an_error_event_is_logged_as_its_error() {
    let (mock, proxy) = streamer().await;
    let first = mock.stream_events("s-up")[0].clone();
    let error = "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded\"}}\n\n";
    // The upstream sends an error event and keeps its connection open; the client, as the SDKs
    // do, stops reading at the error and goes away.
    mock.set(Behaviour::SseThenHold(vec![first, error.into()]));
    let resp = stream_request(&proxy, "errored").await;
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("overloaded") {
        let chunk = tokio::time::timeout(PATIENCE, body.next())
            .await
            .expect("the error event arrives")
            .expect("stream open");
        got.extend_from_slice(&chunk.unwrap());
    }
    drop(body);
    let line = proxy.log_line(&["request_id=errored ", "switchyard::request"]);
    assert!(line.contains("stream_end=\"upstream-error\""), "{line}");
}
