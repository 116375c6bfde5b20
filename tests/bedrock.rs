//! The `bedrock` provider end to end, against a Bedrock mock that verifies every request's SigV4
//! signature with the test's own credentials: both client APIs, streamed and not, with tools;
//! credentials from environment variables, from a profile's `credential_process` and from a
//! profile's key in the shared credentials file, an expiring session token refreshed; failover from a throttled or refused Bedrock target to an
//! Anthropic one before the first byte; a broken ConverseStream ending with an error event in
//! the client's shape; the official OpenAI and Anthropic Python SDKs calling a tool, streamed and
//! not; embeddings through InvokeModel of Titan and Cohere models; no credentials, or a request
//! Converse cannot take, moving the route on without sending anything. Secrets never reach the
//! log.

use serde_json::{Value, json};
use switchyard_e2e::{
    BedrockBehaviour, BedrockMock, Behaviour, ConfigBuilder, MockUpstream, Proxy, bedrock_text,
    bedrock_vector, check_tool_sdks, first_tool_call, policy_wasm, sse_data as sse,
    weather_function,
};

const REGION: &str = "eu-central-1";
const ACCESS_KEY: &str = "AKIDSWITCHYARDTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzSwitchyard";
const TOKEN: &str = "session-token-from-env";
const TEAM_KEY: &str = "sk-team-bedrock";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// The environment of a proxy whose Bedrock credentials come from environment variables, with
/// no shared files or instance metadata to fall back on.
fn aws_env(dir: &std::path::Path, secret: &'static str) -> Vec<(String, String)> {
    let none = dir.join("none").display().to_string();
    vec![
        ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
        ("AWS_SESSION_TOKEN".into(), TOKEN.into()),
        ("AWS_CONFIG_FILE".into(), none.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), none),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

/// A proxy with `bedrock` on the Bedrock mock and `claude` on an Anthropic mock.
fn proxy(bedrock: &BedrockMock, anthropic: &MockUpstream, env: &[(String, String)]) -> Proxy {
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of(
            "aws",
            "bedrock",
            &bedrock.url,
            &[&format!("region = {REGION:?}")],
        )
        .provider_of("anthropic", "anthropic", &anthropic.url, &[])
        .model("bedrock", "aws", MODEL, 3.0, &[])
        .model("claude", "anthropic", "claude-direct", 3.0, &[])
        .fallback(&["bedrock"])
        .team_option(&format!("keys = [{TEAM_KEY:?}]"))
        .toml();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Proxy::start(&config, &env)
}

#[tokio::test]
async fn an_openai_client_is_served_by_bedrock_signed_and_translated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(REGION, &[(ACCESS_KEY, SECRET)]).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&bedrock, &anthropic, &aws_env(dir.path(), SECRET));
    let client = reqwest::Client::new();

    let ask = json!({"model": "bedrock", "max_tokens": 200, "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in Paris?"}],
        "tools": [weather_function()]});
    let reply = proxy
        .chat(&client, None, &ask, &[("x-request-id", "bedrock-tools")])
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("x-switchyard-model"), "bedrock");
    let answer = reply.json();
    let call = first_tool_call(&answer);
    assert_eq!(
        call,
        (
            "tooluse_1".into(),
            "get_weather".into(),
            json!({"city": "Paris"})
        )
    );
    assert_eq!(answer["usage"]["prompt_tokens"], 25, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 9);

    let signed = bedrock.signed();
    assert_eq!(signed.len(), 1, "refused: {:?}", bedrock.refused());
    assert_eq!(
        signed[0].path,
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(signed[0].access_key, ACCESS_KEY);
    assert_eq!(signed[0].session_token.as_deref(), Some(TOKEN));
    let sent = &signed[0].body;
    assert_eq!(sent["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"text": "Weather in Paris?"}]}])
    );
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 200);
    assert_eq!(sent["inferenceConfig"]["temperature"], 0.2);
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert!(sent.get("model").is_none(), "{sent}");

    // The tool's result goes back as a toolResult block; the answer is text.
    let follow_up = json!({"model": "bedrock", "max_tokens": 200,
        "messages": [{"role": "user", "content": "Weather in Paris?"},
                     {"role": "assistant", "content": null, "tool_calls": [{"id": "tooluse_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                     {"role": "tool", "tool_call_id": "tooluse_1", "content": "18 C, sunny"}],
        "tools": [weather_function()]});
    let reply = proxy.chat(&client, None, &follow_up, &[]).await;
    assert_eq!(reply.status, 200);
    let answer = reply.json();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        bedrock_text(MODEL)
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let sent = &bedrock.signed()[1].body;
    assert_eq!(
        sent["messages"][1]["content"][0]["toolUse"],
        json!({"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(
        sent["messages"][2]["content"][0]["toolResult"],
        json!({"toolUseId": "tooluse_1", "content": [{"text": "18 C, sunny"}]})
    );

    let line = proxy.log_line(&["request_id=bedrock-tools", "status=200"]);
    assert!(line.contains("attempts=bedrock=200"), "{line}");
    let logs = proxy.logs();
    assert!(
        !logs.contains(SECRET) && !logs.contains(TOKEN),
        "a secret reached the log"
    );
}

#[tokio::test]
async fn both_client_apis_stream_from_bedrock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(REGION, &[(ACCESS_KEY, SECRET)]).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&bedrock, &anthropic, &aws_env(dir.path(), SECRET));
    let client = reqwest::Client::new();

    let ask = json!({"model": "bedrock", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.chat(&client, None, &ask, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), "text/event-stream");
    let (_, data) = sse(&reply.body);
    let text: String = data
        .iter()
        .filter_map(|d| d["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, bedrock_text(MODEL));
    assert_eq!(data.last(), Some(&json!("[DONE]")));
    let usage = data
        .iter()
        .find(|d| d["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 21);
    assert_eq!(usage["usage"]["completion_tokens"], 9);
    assert!(bedrock.signed()[0].path.ends_with("/converse-stream"));

    // An Anthropic client, streamed and whole.
    let ask = json!({"model": "bedrock", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.messages(&client, None, &ask, &[]).await;
    assert_eq!(reply.status, 200);
    let (names, data) = sse(&reply.body);
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let text: String = data
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, bedrock_text(MODEL));
    let delta = data
        .iter()
        .find(|d| d["type"] == "message_delta")
        .expect("a message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 9);

    let ask = json!({"model": "bedrock", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.messages(&client, None, &ask, &[]).await;
    assert_eq!(reply.status, 200);
    let answer = reply.json();
    assert_eq!(answer["type"], "message");
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": bedrock_text(MODEL)}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["usage"]["input_tokens"], 21);
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 4);
    assert_eq!(
        bedrock.signed().len(),
        3,
        "refused: {:?}",
        bedrock.refused()
    );
}

#[tokio::test]
async fn a_throttled_or_refused_bedrock_target_fails_over_before_the_first_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(REGION, &[(ACCESS_KEY, SECRET)]).await;
    let anthropic = MockUpstream::start("anthropic").await;
    anthropic.set(Behaviour::Assistant);
    let client = reqwest::Client::new();
    let route = |id| [("x-test-route", "bedrock,claude"), ("x-request-id", id)];

    let proxy_ok = proxy(&bedrock, &anthropic, &aws_env(dir.path(), SECRET));
    bedrock.set(BedrockBehaviour::Throttle);
    for stream in [false, true] {
        let mut ask = switchyard_e2e::chat("bedrock", "hello");
        ask["stream"] = stream.into();
        let reply = proxy_ok
            .chat(&client, None, &ask, &route("throttled"))
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.header("x-switchyard-model"), "claude");
    }
    let line = proxy_ok.log_line(&["request_id=throttled", "status=200"]);
    assert!(line.contains("bedrock: answered 429"), "{line}");
    assert_eq!(bedrock.signed().len(), 2, "both attempts were signed");

    // With only Bedrock on the route, its throttling reaches the client as a 429.
    let reply = proxy_ok
        .chat(
            &client,
            None,
            &switchyard_e2e::chat("bedrock", "hello"),
            &[("x-test-route", "bedrock")],
        )
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["code"], "upstream_rate_limited");

    // A wrong secret: the mock refuses the signature with AWS's 403, and the route moves on.
    bedrock.set(BedrockBehaviour::Answer);
    let wrong = proxy(&bedrock, &anthropic, &aws_env(dir.path(), "not-the-secret"));
    let reply = wrong
        .chat(
            &client,
            None,
            &switchyard_e2e::chat("bedrock", "hello"),
            &route("refused"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-switchyard-model"), "claude");
    assert_eq!(bedrock.refused(), ["InvalidSignatureException"]);
    let line = wrong.log_line(&["request_id=refused", "status=200"]);
    assert!(line.contains("bedrock: answered 403"), "{line}");
}

#[tokio::test]
async fn a_broken_converse_stream_ends_with_an_error_event_in_the_clients_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(REGION, &[(ACCESS_KEY, SECRET)]).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&bedrock, &anthropic, &aws_env(dir.path(), SECRET));
    bedrock.set(BedrockBehaviour::BreakStream);
    let client = reqwest::Client::new();

    let ask = json!({"model": "bedrock", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy
        .chat(&client, None, &ask, &[("x-request-id", "broken")])
        .await;
    assert_eq!(reply.status, 200);
    let (_, data) = sse(&reply.body);
    assert!(
        data.iter()
            .any(|d| d["choices"][0]["delta"]["content"].is_string()),
        "the first text arrived: {data:?}"
    );
    let last = data.last().expect("events");
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(!data.contains(&json!("[DONE]")));

    let ask = json!({"model": "bedrock", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    let reply = proxy.messages(&client, None, &ask, &[]).await;
    let (names, data) = sse(&reply.body);
    assert_eq!(names.last().map(String::as_str), Some("error"));
    assert_eq!(data.last().expect("events")["type"], "error");
    assert!(!names.iter().any(|n| n == "message_stop"));
    proxy.log_line(&["request_id=broken", "stream_end=\"cut\""]);
}

/// A `credential_process` script printing credentials for `name` that expire `ttl` from now,
/// whose session token counts its runs (`name-1`, `name-2`, ...).
fn credential_process(dir: &std::path::Path, name: &str, ttl: &str) -> String {
    let script = dir.join(format!("{name}.sh"));
    let count = dir.join(format!("{name}.count"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(( $(cat {count:?} 2>/dev/null || echo 0) + 1 ))\necho $n > {count:?}\n\
             printf '{{\"Version\":1,\"AccessKeyId\":\"AKIDPROCESS\",\"SecretAccessKey\":\"process-secret\",\
             \"SessionToken\":\"{name}-%s\",\"Expiration\":\"%s\"}}' $n $(date -u -d '{ttl}' +%Y-%m-%dT%H:%M:%SZ)\n"
        ),
    )
    .expect("write script");
    format!("sh {}", script.display())
}

#[tokio::test]
async fn credentials_come_from_profiles_and_expiring_ones_are_refreshed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(
        REGION,
        &[
            ("AKIDPROCESS", "process-secret"),
            ("AKIDSTATIC", "static-secret"),
        ],
    )
    .await;
    let credentials_file = dir.path().join("aws-credentials");
    std::fs::write(
        &credentials_file,
        "[static]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = static-secret\n",
    )
    .expect("write credentials");
    let config_file = dir.path().join("aws-config");
    std::fs::write(
        &config_file,
        format!(
            "[profile expiring]\ncredential_process = {}\n\n[profile lasting]\ncredential_process = {}\n",
            credential_process(dir.path(), "expiring", "+30 seconds"),
            credential_process(dir.path(), "lasting", "+1 hour"),
        ),
    )
    .expect("write config");
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of(
            "aws-expiring",
            "bedrock",
            &bedrock.url,
            &[
                &format!("region = {REGION:?}"),
                "aws_profile = \"expiring\"",
            ],
        )
        .provider_of(
            "aws-lasting",
            "bedrock",
            &bedrock.url,
            &[&format!("region = {REGION:?}"), "aws_profile = \"lasting\""],
        )
        .model(
            "expiring",
            "aws-expiring",
            "amazon.nova-lite-v1:0",
            1.0,
            &[],
        )
        .provider_of(
            "aws-static",
            "bedrock",
            &bedrock.url,
            &[&format!("region = {REGION:?}"), "aws_profile = \"static\""],
        )
        .model("lasting", "aws-lasting", "amazon.nova-lite-v1:0", 1.0, &[])
        .model("static", "aws-static", "amazon.nova-lite-v1:0", 1.0, &[])
        .fallback(&["expiring"])
        .toml();
    let config_path = config_file.display().to_string();
    let credentials_path = credentials_file.display().to_string();
    let proxy = Proxy::start(
        &config,
        &[
            ("AWS_CONFIG_FILE", config_path.as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials_path.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let client = reqwest::Client::new();
    for model in ["expiring", "expiring", "lasting", "lasting", "static"] {
        let reply = proxy
            .chat(
                &client,
                None,
                &switchyard_e2e::chat(model, "hi"),
                &[("x-test-route", model)],
            )
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let signed: Vec<(String, String)> = bedrock
        .signed()
        .iter()
        .map(|s| {
            (
                s.access_key.clone(),
                s.session_token.clone().unwrap_or_default(),
            )
        })
        .collect();
    let process = |token: &str| ("AKIDPROCESS".to_string(), token.to_string());
    // Credentials within a minute of their expiry are fetched again; others are kept. A static
    // key of the shared credentials file has no session token.
    assert_eq!(
        signed,
        [
            process("expiring-1"),
            process("expiring-2"),
            process("lasting-1"),
            process("lasting-1"),
            ("AKIDSTATIC".to_string(), String::new()),
        ]
    );
    let logs = proxy.logs();
    assert!(!logs.contains("process-secret") && !logs.contains("static-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_call_tools_on_bedrock_streamed_and_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(REGION, &[(ACCESS_KEY, SECRET)]).await;
    let anthropic = MockUpstream::start("anthropic").await;
    let proxy = proxy(&bedrock, &anthropic, &aws_env(dir.path(), SECRET));

    let [openai, anthropic] = tokio::task::block_in_place(|| {
        check_tool_sdks(&proxy.base, "bedrock", TEAM_KEY, &bedrock_text(MODEL))
    });
    assert_eq!(
        openai["prompt_tokens"], 25,
        "cache reads count as prompt tokens"
    );
    assert_eq!(anthropic["input_tokens"], 21);
    assert_eq!(anthropic["stream_output_tokens"], 9);

    // Every request the SDKs made reached Bedrock signed: 4 each.
    assert_eq!(
        bedrock.signed().len(),
        8,
        "refused: {:?}",
        bedrock.refused()
    );
    let system = &bedrock.signed()[4].body["system"];
    assert_eq!(*system, json!([{"text": "Be brief."}]));
}

#[tokio::test]
async fn embeddings_go_through_invoke_model_of_titan_and_cohere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(REGION, &[(ACCESS_KEY, SECRET)]).await;
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider_of(
            "aws",
            "bedrock",
            &bedrock.url,
            &[&format!("region = {REGION:?}")],
        )
        .model("bedrock", "aws", MODEL, 3.0, &[])
        .embedding_model("titan", "aws", "amazon.titan-embed-text-v2:0", 0.02)
        .embedding_model("cohere", "aws", "cohere.embed-english-v3", 0.1)
        .fallback(&["bedrock"])
        .toml();
    let env = aws_env(dir.path(), SECRET);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let proxy = Proxy::start(&config, &env);
    let client = reqwest::Client::new();
    let embed = |body: Value, model: &'static str| {
        client
            .post(proxy.url("/v1/embeddings"))
            .header("x-test-route", model)
            .json(&body)
            .send()
    };

    let reply = embed(
        json!({"model": "titan", "input": "hello there", "dimensions": 3}),
        "titan",
    )
    .await
    .expect("answer");
    assert_eq!(reply.status(), 200);
    let answer: Value = reply.json().await.expect("JSON");
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "amazon.titan-embed-text-v2:0");
    assert_eq!(answer["data"][0]["embedding"], json!(bedrock_vector(0, 3)));
    assert_eq!(answer["usage"]["prompt_tokens"], 3);
    let signed = bedrock.signed();
    assert_eq!(
        signed[0].path,
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
    assert_eq!(
        signed[0].body,
        json!({"inputText": "hello there", "normalize": true, "dimensions": 3})
    );

    // Cohere takes a list; base64 is decoded back to the same floats.
    let reply = embed(
        json!({"model": "cohere", "input": ["a", "b"], "encoding_format": "base64"}),
        "cohere",
    )
    .await
    .expect("answer");
    assert_eq!(reply.status(), 200);
    let answer: Value = reply.json().await.expect("JSON");
    let second = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        answer["data"][1]["embedding"].as_str().expect("base64"),
    )
    .expect("decodes");
    let floats: Vec<f32> = second
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    assert_eq!(floats, bedrock_vector(1, 4));
    assert_eq!(bedrock.signed()[1].body["texts"], json!(["a", "b"]));
    assert_eq!(
        answer["usage"]["prompt_tokens"], 10,
        "Bedrock's count, from its header"
    );

    // Two texts for Titan: a 400 naming the field, nothing sent.
    let reply = embed(json!({"model": "titan", "input": ["a", "b"]}), "titan")
        .await
        .expect("answer");
    assert_eq!(reply.status(), 400);
    let error: Value = reply.json().await.expect("JSON");
    assert_eq!(error["error"]["param"], "input", "{error}");
    assert_eq!(bedrock.signed().len(), 2);
}

#[tokio::test]
async fn without_credentials_a_bedrock_target_is_skipped_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bedrock = BedrockMock::start(REGION, &[(ACCESS_KEY, SECRET)]).await;
    let anthropic = MockUpstream::start("anthropic").await;
    anthropic.set(Behaviour::Assistant);
    let none = dir.path().join("none").display().to_string();
    let env = [
        ("AWS_CONFIG_FILE".to_string(), none.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE".to_string(), none),
        ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
    ];
    let proxy = proxy(&bedrock, &anthropic, &env);
    let client = reqwest::Client::new();

    let reply = proxy
        .chat(
            &client,
            None,
            &switchyard_e2e::chat("bedrock", "hi"),
            &[
                ("x-test-route", "bedrock,claude"),
                ("x-request-id", "unsigned"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-switchyard-model"), "claude");
    let line = proxy.log_line(&["request_id=unsigned", "status=200"]);
    assert!(
        line.contains("bedrock: request could not be signed (no AWS credentials"),
        "{line}"
    );
    // Why is said to the operator, once, with the provider's name; never to the client.
    let why = proxy.log_line(&["no AWS credentials for a bedrock provider", "provider=aws"]);
    let reason = why
        .split(" error=")
        .nth(1)
        .expect("the chain's reason")
        .trim();
    assert!(reason.len() > 20, "{why}");

    let reply = proxy
        .chat(
            &client,
            None,
            &switchyard_e2e::chat("bedrock", "hi"),
            &[("x-test-route", "bedrock")],
        )
        .await;
    assert_eq!(reply.status, 502);
    let body = String::from_utf8_lossy(&reply.body);
    assert!(
        !body.contains(reason),
        "the client does not learn why: {body}"
    );
    assert_eq!(
        proxy.count_log_lines(&["no AWS credentials for a bedrock provider"]),
        1,
        "a failed fetch is the answer for a while, not fetched again for each request"
    );
    assert!(
        bedrock.signed().is_empty() && bedrock.refused().is_empty(),
        "nothing was sent"
    );

    // What Converse cannot take is not sent: an image by URL goes to the next target.
    let image = json!({"model": "bedrock", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let reply = proxy
        .chat(&client, None, &image, &[("x-test-route", "bedrock,claude")])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-switchyard-model"), "claude");
    let reply = proxy
        .chat(&client, None, &image, &[("x-test-route", "bedrock")])
        .await;
    assert_eq!(reply.status, 400);
    let error = reply.json();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("base64"),
        "{error}"
    );
}
