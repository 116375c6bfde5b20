//! Teams end to end: keys find their team, each team runs its own policy over its own models, a
//! decision outside a team's models is a policy failure, and each team's failure behaviour holds.

use serde_json::Value;
use switchyard_e2e::{ConfigBuilder, Proxy, Reply, TEST_HEADERS, chat, policy_wasm};

const ALPHA_KEY: &str = "sk-alpha-key-0001";
const BETA_KEY: &str = "sk-beta-key-00002";
const GAMMA_KEY: &str = "sk-gamma-key-0003";
const DELTA_KEY: &str = "sk-delta-key-0004";

/// Four teams over models `a` (reasoning) and `b` (cheap), all on the echo provider:
/// - `alpha` (plain key): the scripted policy, may use only `a`;
/// - `beta` (key given as a digest): the cost router over both models;
/// - `gamma`: the scripted policy, serves the requested model when it fails;
/// - `delta`: the scripted policy, refuses the request when it fails.
fn proxy() -> Proxy {
    let beta_digest = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(BETA_KEY.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let teams = format!(
        r#"
[[policies]]
name = "router"
path = {router:?}

[[teams]]
name = "alpha"
policy = "test-policy"
models = ["a"]
fallback = ["a"]
keys = ["{ALPHA_KEY}"]

[[teams]]
name = "beta"
policy = "router"
fallback = ["b"]
key_sha256 = ["{beta_digest}"]

[[teams]]
name = "gamma"
policy = "test-policy"
on_failure = "requested"
fallback = ["a"]
keys = ["{GAMMA_KEY}"]

[[teams]]
name = "delta"
policy = "test-policy"
on_failure = "reject"
keys = ["{DELTA_KEY}"]

[[providers]]
name = "echo"
kind = "echo"
"#,
        router = policy_wasm("cost_router"),
    );
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .keys_required()
        .section(&teams)
        .model("a", "echo", "a", 2.0, &["reasoning"])
        .model("b", "echo", "b", 0.5, &["cheap"])
        .fallback(&["a"]);
    assert!(config.toml().contains(TEST_HEADERS));
    Proxy::start(&config.toml(), &[])
}

async fn post(proxy: &Proxy, body: &Value, headers: &[(&str, &str)]) -> Reply {
    proxy
        .chat(&reqwest::Client::new(), None, body, headers)
        .await
}

fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

async fn as_team(proxy: &Proxy, key: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    proxy
        .chat(&reqwest::Client::new(), Some(key), body, headers)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_teams_get_different_models_for_the_same_request() {
    let proxy = proxy();
    let request = chat("auto", "What is the capital of France?");
    let alpha = as_team(&proxy, ALPHA_KEY, &request, &[]).await;
    assert_eq!(alpha.status, 200);
    assert_eq!(alpha.header("x-switchyard-team"), "alpha");
    assert!(
        alpha
            .header("x-switchyard-policy")
            .starts_with("test-policy@")
    );
    assert_eq!(alpha.header("x-switchyard-model"), "a");

    let beta = post(&proxy, &request, &[("x-api-key", BETA_KEY)]).await;
    assert_eq!(beta.status, 200);
    assert_eq!(beta.header("x-switchyard-team"), "beta");
    assert!(beta.header("x-switchyard-policy").starts_with("router@"));
    assert_eq!(beta.header("x-switchyard-model"), "b");
    assert_eq!(
        beta.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("Echo from b")
    );

    let models = |key: &'static str| {
        let proxy = &proxy;
        async move {
            let body: Value = reqwest::Client::new()
                .get(proxy.url("/v1/models"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ids: Vec<String> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect();
            ids
        }
    };
    assert_eq!(models(ALPHA_KEY).await, ["a"]);
    assert_eq!(models(BETA_KEY).await, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_cannot_reach_a_model_outside_its_allow_list() {
    let proxy = proxy();
    let request = chat("b", "hello");
    let answer = as_team(
        &proxy,
        ALPHA_KEY,
        &request,
        &[
            ("x-test-route", "b"),
            ("x-request-id", "outside-allow-list"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-switchyard-model"), "a");
    assert_eq!(answer.header("x-switchyard-route"), "fallback");
    let line = proxy.log_line(&["outside-allow-list", "policy failed"]);
    assert!(
        line.contains("invalid-decision")
            && line.contains("target model `b` is not in the catalog"),
        "{line}"
    );

    // The policy is never even shown the model.
    as_team(
        &proxy,
        ALPHA_KEY,
        &request,
        &[("x-test-dump", "1"), ("x-request-id", "alpha-dump")],
    )
    .await;
    proxy.log_line(&["alpha-dump", "model: Model { id: \\\"a\\\""]);
    let dump = proxy.logs();
    let shown_b = dump
        .lines()
        .filter(|l| l.contains("alpha-dump"))
        .any(|l| l.contains("id: \\\"b\\\""));
    assert!(!shown_b, "alpha's policy saw model b:\n{dump}");
    assert!(dump.contains("team: Some(\\\"alpha\\\")"), "{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_unknown_keys_get_401_in_the_openai_shape() {
    let proxy = proxy();
    let request = chat("auto", "hello");
    let missing = post(&proxy, &request, &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["code"], "missing_api_key");
    assert_eq!(missing.json()["error"]["type"], "invalid_request_error");
    assert!(
        missing.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );

    for headers in [
        vec![bearer("sk-nobody-0000000")],
        vec![("x-api-key", "sk-nobody-0000000".to_string())],
        vec![("authorization", format!("Basic {ALPHA_KEY}"))],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let unknown = post(&proxy, &request, &headers).await;
        assert_eq!(unknown.status, 401, "{headers:?}");
        assert_eq!(unknown.json()["error"]["code"], "invalid_api_key");
        assert!(unknown.json()["error"]["param"].is_null());
    }
    let listed = reqwest::Client::new()
        .get(proxy.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 401);
    assert!(
        !proxy.logs().contains("sk-nobody"),
        "a presented key reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_team_gets_its_own_failure_behaviour() {
    let proxy = proxy();
    let fail = [("x-test-error", "cannot decide")];

    let requested = as_team(&proxy, GAMMA_KEY, &chat("b", "hello"), &fail).await;
    assert_eq!(requested.status, 200);
    assert_eq!(requested.header("x-switchyard-route"), "requested");
    assert_eq!(requested.header("x-switchyard-model"), "b");
    assert_eq!(
        requested.header("x-switchyard-reason"),
        "policy failed (error); the requested model"
    );

    let not_a_model = as_team(&proxy, GAMMA_KEY, &chat("auto", "hello"), &fail).await;
    assert_eq!(not_a_model.header("x-switchyard-route"), "fallback");
    assert_eq!(not_a_model.header("x-switchyard-model"), "a");

    let rejected = as_team(
        &proxy,
        DELTA_KEY,
        &chat("b", "hello"),
        &[("x-test-panic", "secret detail")],
    )
    .await;
    assert_eq!(rejected.status, 503);
    assert_eq!(rejected.json()["error"]["code"], "policy_failed");
    assert_eq!(rejected.json()["error"]["type"], "server_error");
    let body = rejected.json();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("secret detail") && !message.contains("panic"),
        "{message}"
    );
    assert!(rejected.header("x-switchyard-model").is_empty());

    let fallback = as_team(&proxy, ALPHA_KEY, &chat("b", "hello"), &fail).await;
    assert_eq!(fallback.header("x-switchyard-route"), "fallback");
}
