//! Bad client input gets a 4xx with an error body in the client API's shape, and the proxy keeps
//! serving.

use switchyard_e2e::{ConfigBuilder, MockUpstream, Proxy, chat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_with_the_openai_error_shape() {
    let mock = MockUpstream::start("m").await;
    let config = ConfigBuilder::scripted(&mock.url, "m").top("max_body_bytes = 4096");
    let proxy = Proxy::start(&config.toml(), &[]);
    let client = reqwest::Client::new();
    let url = proxy.url("/v1/chat/completions");

    let cases: [(&str, Option<&str>, &str); 6] = [
        ("{not json", None, "not valid JSON"),
        ("[]", None, "must be a JSON object"),
        (
            r#"{"model":"m"}"#,
            Some("messages"),
            "`messages` is required",
        ),
        (
            r#"{"model":"m","messages":[]}"#,
            Some("messages"),
            "must not be empty",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            Some("messages[0].content"),
            "must be a string",
        ),
        (
            r#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}"#,
            Some("stream"),
            "must be a boolean",
        ),
    ];
    for (body, param, message) in cases {
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let error: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(error["error"]["param"].as_str(), param, "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{body}: {error}"
        );
    }

    let big = chat("m", &"x".repeat(5000));
    let resp = client.post(&url).json(&big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let error: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["code"], "request_too_large");

    assert!(
        mock.received().is_empty(),
        "nothing malformed reached the upstream"
    );
    let ok = client
        .post(&url)
        .json(&chat("m", "still there?"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the proxy keeps serving");
    assert_eq!(mock.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_get_errors_in_the_client_apis_shape() {
    let mock = MockUpstream::start("m").await;
    let config = ConfigBuilder::scripted(&mock.url, "m");
    let proxy = Proxy::start(&config.toml(), &[]);
    let client = reqwest::Client::new();
    // (method, path, status, what the body must say): OpenAI's `code`, or under /v1/messages
    // Anthropic's error `type`.
    let cases = [
        ("POST", "/v1/audio/speech", 404, "unknown_url"),
        ("DELETE", "/v1/responses/resp_1", 405, "method_not_allowed"),
        ("GET", "/nowhere", 404, "unknown_url"),
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("POST", "/v1/messages/batches", 404, "not_found_error"),
        ("GET", "/v1/messages", 405, "invalid_request_error"),
    ];
    for (method, path, status, said) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client
            .request(method.clone(), proxy.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let error: serde_json::Value = resp.json().await.unwrap();
        if path.starts_with("/v1/messages") {
            assert_eq!(error["type"], "error", "{error}");
            assert_eq!(error["error"]["type"], said, "{method} {path}: {error}");
        } else {
            assert_eq!(error["error"]["code"], said, "{method} {path}: {error}");
        }
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(path), "{error}");
    }
    assert!(mock.received().is_empty());
}
