//! The policy author's commands, run as a user runs them: `switchyard policy check`, `test` and
//! `replay` against real components, the decision log a running proxy writes for replay, and
//! `policy new` from a binary with no checkout beside it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use switchyard_e2e::{
    ConfigBuilder, MockUpstream, Proxy, chat, policy_wasm, poll, proxy_binary, workspace_root,
};

fn switchyard(args: &[&str]) -> Output {
    Command::new(proxy_binary())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("switchyard runs")
}

fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_describes_a_policy_and_refuses_what_the_proxy_would() {
    let router = policy_wasm("cost_router");
    let router = router.to_str().unwrap();
    let json = switchyard(&["policy", "check", router, "--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let report = stdout_json(&json);
    assert_eq!(report["built_against"], "switchyard:policy@0.1.2");
    assert_eq!(
        report["exports"],
        serde_json::json!(["decide(req, catalog)"])
    );
    let host = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "switchyard:policy/host@0.1.2")
        .expect("the host interface is imported");
    assert!(
        host["functions"]
            .as_array()
            .unwrap()
            .contains(&"message-text".into()),
        "{host}"
    );
    let sockets_or_files: Vec<&serde_json::Value> = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["name"]
                .as_str()
                .unwrap()
                .starts_with("wasi:cli/environment")
        })
        .collect();
    assert_eq!(sockets_or_files[0]["grants"], "no variables, no arguments");

    // For people: plain text when not on a terminal.
    let plain = switchyard(&["policy", "check", router]);
    assert!(plain.status.success());
    let plain = text(&plain.stdout);
    assert!(plain.starts_with("ok  "), "{plain}");
    assert!(
        plain.contains("contract  switchyard:policy@0.1.2"),
        "{plain}"
    );
    assert!(
        !plain.contains('\u{1b}'),
        "colour escapes off a terminal: {plain}"
    );

    // A component built against the first contract still passes, and says so.
    let first = switchyard(&[
        "policy",
        "check",
        policy_wasm("first_contract_policy").to_str().unwrap(),
        "--json",
    ]);
    assert!(first.status.success());
    assert_eq!(
        stdout_json(&first)["built_against"],
        "switchyard:policy@0.1.0"
    );

    // What the proxy refuses, this refuses, with the proxy's reason.
    let http = switchyard(&[
        "policy",
        "check",
        policy_wasm("http_import_policy").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(http.status.code(), Some(1));
    let refused = stdout_json(&http);
    assert_eq!(refused["refused"]["kind"], "import");
    assert!(
        refused["refused"]["message"]
            .as_str()
            .unwrap()
            .contains("wasi:http/"),
        "{refused}"
    );
    let readme = workspace_root().join("README.md");
    let garbage = switchyard(&["policy", "check", readme.to_str().unwrap()]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(
        text(&garbage.stderr).contains("it is not WebAssembly"),
        "{}",
        text(&garbage.stderr)
    );
}

/// A config whose policy entry is the scripted test policy (its headers allowed), and a catalog
/// of two models.
fn scripted_config(dir: &Path) -> std::path::PathBuf {
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("p", "http://127.0.0.1:9", None)
        .model("mini", "p", "mini", 0.5, &["cheap"])
        .model("o3", "p", "o3", 4.0, &["reasoning"])
        .fallback(&["mini"])
        .toml();
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn test_runs_every_case_with_its_live_state_and_reports_failures_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let config = scripted_config(dir.path());
    let hi = r#"{"messages": [{"role": "user", "content": "Hi"}]}"#;
    let cases = [
        format!(r#"{{"name": "routes as scripted", "request": {hi}, "headers": {{"x-test-route": "o3,mini"}}, "expect": {{"route": ["o3", "mini"]}}}}"#),
        format!(r#"{{"name": "wrong on purpose", "request": {hi}, "headers": {{"x-test-route": "o3"}}, "expect": {{"model": "mini"}}}}"#),
        format!(r#"{{"name": "budget", "request": {hi}, "headers": {{"x-test-budget": "1"}}, "budget": {{"limit_usd": 10, "spent_usd": 9.5, "resets_in_seconds": 60}}, "expect": {{"reason_contains": "budget: 0.500000 left of 10.000000, resets in 60 s"}}}}"#),
        format!(r#"{{"name": "first token", "request": {hi}, "headers": {{"x-test-first-token": "o3"}}, "first_token_ms": {{"o3": 420}}, "expect": {{"reason_contains": "first token of o3: 420.0 ms"}}}}"#),
        r#"{"name": "anthropic", "api": "anthropic", "request": {"max_tokens": 5, "system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]}, "headers": {"x-test-dump": "1"}, "expect": {"model": "mini"}}"#.to_string(),
        format!(r#"{{"name": "panics", "request": {hi}, "headers": {{"x-test-panic": "boom"}}}}"#),
        r#"{"name": "bad request", "request": {"messages": "nope"}}"#.to_string(),
        format!(r#"{{"name": "unknown model in health", "request": {hi}, "health": {{"gpt-9": {{"healthy": false}}}}}}"#),
    ];
    let cases_path = dir.path().join("cases.jsonl");
    std::fs::write(&cases_path, cases.join("\n")).unwrap();
    let wasm = policy_wasm("scripted_policy");
    let args = [
        "policy",
        "test",
        wasm.to_str().unwrap(),
        "--cases",
        cases_path.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let output = switchyard(&[&args[..], &["--json"]].concat());
    assert_eq!(
        output.status.code(),
        Some(1),
        "a case failed, so the exit is 1"
    );
    let results = stdout_json(&output);
    let by_name = |name: &str| -> serde_json::Value {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no result for {name}: {results}"))
            .clone()
    };
    for passing in ["routes as scripted", "budget", "first token", "anthropic"] {
        let r = by_name(passing);
        assert_eq!(r["passed"], true, "{r}");
        assert!(r["elapsed_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["memory_peak_bytes"].as_u64().unwrap() >= 64 * 1024, "{r}");
    }
    let wrong = by_name("wrong on purpose");
    assert_eq!(wrong["passed"], false);
    assert_eq!(
        wrong["failure"],
        "expected model `mini` first, got a route to o3"
    );
    assert_eq!(wrong["decision"]["route"]["targets"][0]["model"], "o3");
    // The policy's log lines are kept per case: the Anthropic request was seen as one.
    let dumped = by_name("anthropic");
    let logs: Vec<&str> = dumped["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("api: ClientApi::AnthropicMessages")),
        "{logs:?}"
    );
    let panicked = by_name("panics");
    assert_eq!(panicked["decision"]["failure"]["kind"], "trap");
    assert!(
        panicked["failure"].as_str().unwrap().contains("boom"),
        "{panicked}"
    );
    assert!(
        by_name("bad request")["failure"]
            .as_str()
            .unwrap()
            .starts_with("the case's request is not valid"),
    );
    assert_eq!(
        by_name("unknown model in health")["failure"],
        "`health` names `gpt-9`, which is not in the catalog"
    );

    // For people: a line per case, the diff of a failure, and the summary.
    let human = switchyard(&args);
    assert_eq!(human.status.code(), Some(1));
    let human = text(&human.stdout);
    assert!(human.contains("PASS  routes as scripted"), "{human}");
    assert!(human.contains("FAIL  wrong on purpose"), "{human}");
    assert!(human.contains(r#"- expected {"model":"mini"}"#), "{human}");
    assert!(
        human.contains(r#"+ got      route o3 ("scripted")"#),
        "{human}"
    );
    assert!(human.contains("8 cases: 4 passed, 4 failed"), "{human}");
}

/// Every example policy passes its own cases file under its configured limits, each case with
/// its team's catalog.
#[test]
fn every_example_policy_passes_its_cases() {
    let examples = workspace_root().join("config/examples.toml");
    let config = switchyard::config::Config::load(&examples).expect("the examples config loads");
    let with_cases: Vec<_> = config
        .policies
        .iter()
        .filter(|p| p.cases.is_some())
        .collect();
    assert!(with_cases.len() >= 4, "{:?}", config.policies);
    for policy in with_cases {
        let output = switchyard(&[
            "policy",
            "test",
            policy.path.to_str().unwrap(),
            "--cases",
            policy.cases.as_ref().unwrap().to_str().unwrap(),
            "--config",
            examples.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}: {}{}",
            policy.name,
            text(&output.stdout),
            text(&output.stderr)
        );
        assert!(
            text(&output.stdout).contains(" 0 failed"),
            "{}",
            policy.name
        );
    }
}

#[test]
fn health_overrides_reach_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("health.jsonl");
    std::fs::write(
        &cases,
        r#"{"name": "mini is down", "request": {"messages": [{"role": "user", "content": "Hi"}]}, "health": {"gpt-4o-mini": {"healthy": false}}, "expect": {"model": "claude-haiku-4-5"}}"#,
    )
    .unwrap();
    let output = switchyard(&[
        "policy",
        "test",
        policy_wasm("cost_router").to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
        "--config",
        workspace_root()
            .join("config/switchyard.toml")
            .to_str()
            .unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stdout));
}

/// Wait until `path` holds `n` lines; its lines then.
fn lines_within(path: &Path, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
    poll::until_blocking(format!("{n} lines in {}", path.display()), timeout, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON record"))
            .collect();
        (lines.len() >= n).then_some(lines)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_records_decisions_and_replay_counts_what_a_candidate_changes() {
    let upstream = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let config = ConfigBuilder::new(&policy_wasm("cost_router"))
        .provider("p", &upstream.url, None)
        .model("mini", "p", "mini-up", 0.15, &["cheap"])
        .model("thinker", "p", "thinker-up", 3.0, &["reasoning"])
        .fallback(&["mini"])
        .keys_required()
        .team_option(r#"keys = ["sk-test-key-0001"]"#)
        .section(&format!("[decision_log]\npath = {log:?}\n"))
        .toml();
    let proxy = Proxy::start(&config, &[]);
    let key = "Bearer sk-test-key-0001";
    let client = reqwest::Client::new();
    let prompts = [
        "What is the capital of France?",
        "Plan a migration. Think step by step.",
        "Hello there",
    ];
    for prompt in prompts {
        let resp = client
            .post(proxy.url("/v1/chat/completions"))
            .header("authorization", key)
            .json(&chat("auto", prompt))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let records = lines_within(&log, 3, Duration::from_secs(10));
    assert_eq!(records.len(), 3, "{records:?}");
    let first = &records[0];
    assert_eq!(first["decision"]["route"]["targets"][0]["model"], "mini");
    assert_eq!(first["outcome"]["status"], 200);
    assert_eq!(first["outcome"]["model"], "mini");
    assert!(
        first["outcome"]["input_tokens"].as_u64().unwrap() > 0,
        "{first}"
    );
    assert_eq!(first["request"]["messages"][0]["chars"], 30);
    assert_eq!(
        records[1]["decision"]["route"]["targets"][0]["model"],
        "thinker"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the decision log is for its owner only");
    let all = std::fs::read_to_string(&log).unwrap();
    for secret in ["capital of France", "sk-test-key-0001", "authorization"] {
        assert!(!all.contains(secret), "the log holds {secret:?}: {all}");
    }

    // Replayed through the same policy, the decision that read message text changes: the log
    // holds none, so the policy saw none.
    let replay = |wasm: &Path| {
        stdout_json(&switchyard(&[
            "policy",
            "replay",
            wasm.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--json",
        ]))
    };
    let same = replay(&policy_wasm("cost_router"));
    assert_eq!(same["decisions"], 3);
    assert_eq!(same["without_text"], 3);
    assert_eq!(same["changed"], 1, "{same}");
    assert_eq!(
        same["sample"][0]["before"]["route"]["targets"][0]["model"],
        "thinker"
    );

    // With message text recorded (turned on by a reload), the replay is faithful.
    let toml = config.replace("[decision_log]\n", "[decision_log]\nmessage_text = true\n");
    std::fs::write(proxy.config_path(), toml).unwrap();
    proxy.reload();
    proxy.log_line(&["config reloaded"]);
    let resp = client
        .post(proxy.url("/v1/chat/completions"))
        .header("authorization", key)
        .json(&chat("auto", prompts[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let records = lines_within(&log, 4, Duration::from_secs(10));
    assert_eq!(records.len(), 4);
    let records = &records[3..];
    assert_eq!(records[0]["messages"][0], prompts[1]);
    let with_text = replay(&policy_wasm("cost_router"));
    assert_eq!(
        with_text["changed"], 1,
        "only the old record without text: {with_text}"
    );

    // A candidate that routes everything to the first model moves the reasoning requests to the
    // cheap model, and costs less.
    let first_model = replay(&policy_wasm("scripted_policy"));
    let reasoning = first_model["before"]["thinker"].as_u64().unwrap();
    assert!(reasoning >= 2, "{first_model}");
    assert_eq!(first_model["changed"], reasoning, "{first_model}");
    assert_eq!(first_model["after"]["thinker"], serde_json::Value::Null);
    assert!(
        first_model["cost_after_usd"].as_f64().unwrap()
            < first_model["cost_before_usd"].as_f64().unwrap(),
        "{first_model}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_decision_keeps_the_first_token_figures_its_policy_read() {
    let upstream = MockUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let config = ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("p", &upstream.url, None)
        .model("mini", "p", "mini-up", 0.15, &["cheap"])
        .fallback(&["mini"])
        .section(&format!("[decision_log]\npath = {log:?}\n"))
        .toml();
    let proxy = Proxy::start(&config, &[]);
    let client = reqwest::Client::new();
    // A streamed answer gives `mini` a time-to-first-token figure; this decision reads none.
    let mut streamed = chat("auto", "Hello");
    streamed["stream"] = true.into();
    let reply = proxy.chat(&client, None, &streamed, &[]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let asked = [("x-test-first-token", "mini")];
    let reply = proxy
        .chat(&client, None, &chat("auto", "Hello"), &asked)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let records = lines_within(&log, 2, Duration::from_secs(10));
    assert_eq!(records[0].get("first_token_ms"), None, "{}", records[0]);
    // The record holds the policy's f32, written as the shortest decimal that reads back as it.
    let figure = records[1]["first_token_ms"]["mini"]
        .as_f64()
        .unwrap_or_else(|| panic!("no figure for mini: {}", records[1])) as f32;
    let reason = reply.header("x-switchyard-reason");
    assert_eq!(reason, format!("first token of mini: {figure:.1} ms"));
}

#[test]
fn a_new_policy_builds_offline_from_a_binary_far_from_any_checkout() {
    // The binary alone, as installed or in the container image.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("switchyard");
    std::fs::copy(proxy_binary(), &binary).unwrap();
    let made = Command::new(&binary)
        .args(["policy", "new", "lone-router"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let crate_dir = dir.path().join("lone-router");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"switchyard-sdk = { path = "vendor/switchyard-sdk" }"#),
        "{manifest}"
    );
    assert_eq!(
        std::fs::read_to_string(crate_dir.join("wit/policy.wit")).unwrap(),
        std::fs::read_to_string(workspace_root().join("wit/policy.wit")).unwrap(),
        "the contract the binary was built with"
    );
    // Every dependency resolves without the network (crates.io's are in the local cache, as
    // the workspace uses them); the walkthrough (`docs.rs`) builds such a crate.
    let resolved = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--offline", "--format-version", "1"])
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    assert!(resolved.status.success(), "{}", text(&resolved.stderr));
}

#[test]
fn embeddings_and_responses_cases_run_over_their_models() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("embeddings.jsonl");
    std::fs::write(
        &cases,
        r#"{"name": "cheapest embedder", "api": "embeddings", "request": {"model": "auto", "input": ["a", "b"]}, "expect": {"route": ["embed-small", "embed-large"]}}
{"name": "asked by name", "api": "embeddings", "request": {"model": "embed-large", "input": "a"}, "expect": {"model": "embed-large"}}
{"name": "a response", "api": "responses", "request": {"model": "auto", "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]}, "expect": {"model": "mini"}}"#,
    )
    .unwrap();
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        r#"[{"id": "mini", "input_cost_per_mtok": 0.1, "output_cost_per_mtok": 0.4, "context_window": 128000, "tags": ["cheap"]},
            {"id": "embed-large", "kind": "embeddings", "input_cost_per_mtok": 0.13, "output_cost_per_mtok": 0, "context_window": 8191},
            {"id": "embed-small", "kind": "embeddings", "input_cost_per_mtok": 0.02, "output_cost_per_mtok": 0, "context_window": 8191}]"#,
    )
    .unwrap();
    let output = switchyard(&[
        "policy",
        "test",
        policy_wasm("cost_router").to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--json",
    ]);
    let results = stdout_json(&output);
    assert!(output.status.success(), "{results}");
    assert_eq!(results.as_array().unwrap().len(), 3);
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["passed"] == true),
        "{results}"
    );
}
