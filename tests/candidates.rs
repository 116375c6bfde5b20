//! Candidate policy versions tried before they go live, driven by `switchyard policy rollout`.
//!
//! In the shadow of live traffic, a candidate decides every request beside the live version,
//! in its own sandbox, after the request was forwarded, and is never acted on: the figures it
//! adds up (agreement, the live -> candidate table, projected cost, failures) match the
//! decisions exactly; the live answers are byte for byte what they are without a candidate; a
//! candidate that loops or traps changes no answer and is counted; `promote` puts it live and
//! `abort` drops it. In a split, a share of the requests is decided and served by the
//! candidate, sticky by key; the policy's `rollout` rule aborts a candidate whose upstream
//! errors rise and promotes one that ran well, with no request failing meanwhile.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_e2e::{
    ADMIN_TOKEN, ConfigBuilder, MockUpstream, Proxy, policy_version, policy_wasm, poll,
    proxy_binary,
};

/// Model `a` costs $1 per million input tokens and $4 per million output tokens, `b` ten times
/// more; the mocks report 5 and 5 tokens. The live policy (scripted) routes by `x-test-route`;
/// the candidate (the first-contract policy) routes to the model the message's first word
/// names.
async fn proxy() -> (Proxy, MockUpstream, MockUpstream, tempfile::TempDir) {
    let (a, b, config, dir) = setup().await;
    let proxy = Proxy::start(&config.toml(), &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    (proxy, a, b, dir)
}

/// The mocks, and the config before it is started. The live policy is a copy of the scripted
/// one in the proxy's own folder, since a promotion writes over the policy's file.
async fn setup() -> (MockUpstream, MockUpstream, ConfigBuilder, tempfile::TempDir) {
    let a = MockUpstream::start("mock-a").await;
    let b = MockUpstream::start("mock-b").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("test-policy.wasm");
    std::fs::copy(policy_wasm("scripted_policy"), &policy).unwrap();
    let config = ConfigBuilder::new(&policy)
        .provider("pa", &a.url, None)
        .provider("pb", &b.url, None)
        .model("a", "pa", "a-up", 1.0, &[])
        .model("b", "pb", "b-up", 10.0, &[])
        .fallback(&["a"])
        .policy_headers(&["x-test-route", "x-hostile"])
        .deadline_ms(1000)
        .admin();
    (a, b, config, dir)
}

fn rollout(proxy: &Proxy, args: &[&str]) -> Output {
    rollout_at(proxy.admin.as_ref().unwrap(), args)
}

/// `switchyard policy rollout test-policy ARGS` against the admin API at `admin`.
fn rollout_at(admin: &str, args: &[&str]) -> Output {
    Command::new(proxy_binary())
        .args(["policy", "rollout", "test-policy"])
        .args(args)
        .env("SWITCHYARD_ADMIN_URL", admin)
        .env("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn status(proxy: &Proxy) -> Value {
    proxy
        .admin_json("/admin/policies/test-policy/candidate")
        .await
}

/// Request `i` of a run: live routes 3 in 10 to `b`; the message names `a` (the candidate's
/// choice) for all but every 20th, which names `b`.
fn request(i: usize) -> (Value, &'static str) {
    let live = if i % 10 < 3 { "b" } else { "a" };
    let named = if i.is_multiple_of(20) { "b" } else { "a" };
    let body = json!({"model": "auto", "max_tokens": 5,
        "messages": [{"role": "user", "content": format!("{named} please, request {i}")}]});
    (body, live)
}

/// Send request `i` with a fixed id; its status, body and headers but `date`.
async fn send(
    proxy: &Proxy,
    i: usize,
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let (body, live) = request(i);
    let mut call = reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .header("x-request-id", format!("req-{i}"))
        .header("x-test-route", live)
        .json(&body);
    for (name, value) in extra {
        call = call.header(*name, *value);
    }
    let reply = call.send().await.unwrap();
    let status = reply.status().as_u16();
    let mut headers: Vec<(String, String)> = reply
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, reply.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_candidate_is_compared_exactly_and_changes_no_answer() {
    let (_a, _b, config, dir) = setup().await;
    let log = dir.path().join("decisions.jsonl");
    let config = config.section(&format!("[decision_log]\npath = {log:?}\n"));
    let proxy = Proxy::start(&config.toml(), &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    const N: usize = 100;
    let mut without = Vec::new();
    for i in 0..N {
        without.push(send(&proxy, i, &[]).await);
    }

    let candidate = policy_wasm("first_contract_policy");
    let started = rollout(&proxy, &["start", candidate.to_str().unwrap(), "--shadow"]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let version = policy_version("test-policy", &std::fs::read(&candidate).unwrap());
    assert!(
        text(&started.stdout).contains(&version),
        "{}",
        text(&started.stdout)
    );

    for (i, before) in without.iter().enumerate() {
        let during = send(&proxy, i, &[]).await;
        assert_eq!(
            &during, before,
            "request {i} is answered as without a candidate"
        );
        // One at a time, so that no shadow decision is dropped for want of a free slot.
        poll::until("the pair is counted", Duration::from_secs(30), async || {
            (status(&proxy).await["report"]["pairs"] == i + 1).then_some(())
        })
        .await;
    }

    let report = status(&proxy).await["report"].clone();
    // Live: `b` for i % 10 < 3 (30), else `a` (70). Candidate: `b` for i % 20 == 0 (5, all of
    // them among live's `b`: i % 10 == 0), else `a`.
    assert_eq!(report["pairs"], N);
    assert_eq!(report["dropped"], 0);
    assert_eq!(
        report["confusion"],
        json!({"a": {"a": 70}, "b": {"a": 25, "b": 5}})
    );
    assert_eq!(report["agreement"], 0.75);
    assert_eq!(report["failure_rate"], 0.0);
    assert_eq!(report["priced_by_usage"], N);
    // 5 + 5 tokens: `a` costs $0.000025 a request, `b` $0.00025.
    let per_1000 = |a: f64, b: f64| (a * 0.000025 + b * 0.00025) / N as f64 * 1000.0;
    let close = |got: &Value, want: f64| (got.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(
        close(&report["live_usd_per_1000"], per_1000(70.0, 30.0)),
        "{report}"
    );
    assert!(
        close(&report["candidate_usd_per_1000"], per_1000(95.0, 5.0)),
        "{report}"
    );

    // The decision log has both decisions of every request the candidate saw.
    let records: Vec<Value> = poll::until(
        "the records are written",
        Duration::from_secs(30),
        async || {
            let text = std::fs::read_to_string(&log).ok()?;
            let records: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (records
                .iter()
                .filter(|r| r.get("candidate").is_some())
                .count()
                == N)
                .then_some(records)
        },
    )
    .await;
    let paired = records.iter().find(|r| r["candidate"].is_object()).unwrap();
    assert_eq!(paired["candidate"]["policy"], version.as_str());
    let first = |decision: &Value| decision["route"]["targets"][0]["model"].clone();
    let differing = records
        .iter()
        .filter(|r| r["candidate"].is_object())
        .filter(|r| first(&r["decision"]) != first(&r["candidate"]["decision"]))
        .count();
    assert_eq!(differing, 25);

    let table = rollout(&proxy, &["status"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(table.contains("decisions compared  100"), "{table}");
    assert!(table.contains("75.0% same first model"), "{table}");
    assert!(table.contains("b ≠ a  25"), "{table}");
    println!("{table}");

    // Promoted, it decides the live traffic: a request naming `b` goes to `b` whatever the
    // header says.
    let promoted = rollout(&proxy, &["promote"]);
    assert!(promoted.status.success(), "{}", text(&promoted.stderr));
    let (_, headers, _) = send(&proxy, 0, &[]).await;
    assert!(headers.contains(&("x-switchyard-policy".into(), version.clone())));
    assert!(headers.contains(&("x-switchyard-model".into(), "b".into())));
    assert_eq!(status(&proxy).await["error"]["code"], "no_candidate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_loops_or_traps_changes_no_answer_and_is_counted() {
    let (proxy, _a, _b, _dir) = proxy().await;
    // The hostile policy as the candidate: it passes the canary, then loops, panics or runs an
    // `unreachable` instruction when `x-hostile` says so, which the live (scripted) policy
    // ignores.
    let hostile = policy_wasm("hostile_policy");
    let started = rollout(&proxy, &["start", hostile.to_str().unwrap(), "--shadow"]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let behaviours = ["loop", "panic", "unreachable"];
    let hostile = |i: usize| [("x-hostile", behaviours[i % 3])];
    let mut answers = Vec::new();
    for i in 0..9 {
        answers.push(send(&proxy, i, &hostile(i)).await);
    }
    // Loops hold their shadow slot until the deadline: some decisions are dropped, every one
    // is counted.
    let report = poll::until(
        "nine decisions counted",
        Duration::from_secs(30),
        async || {
            let report = status(&proxy).await["report"].clone();
            (report["pairs"].as_u64()? + report["dropped"].as_u64()? == 9).then_some(report)
        },
    )
    .await;
    println!("{report}");
    assert_eq!(report["failure_rate"], 1.0, "{report}");
    let failures = report["failures"].as_object().unwrap();
    assert!(
        failures.keys().all(|k| k == "timeout" || k == "trap"),
        "{report}"
    );

    let aborted = rollout(&proxy, &["abort"]);
    assert!(aborted.status.success(), "{}", text(&aborted.stderr));
    assert!(
        text(&aborted.stdout).contains("aborted"),
        "{}",
        text(&aborted.stdout)
    );
    for (i, answer) in answers.iter().enumerate() {
        let without = send(&proxy, i, &hostile(i)).await;
        assert_eq!(
            answer, &without,
            "request {i} is answered as without a candidate"
        );
        let live = request(i).1;
        assert!(
            answer
                .1
                .contains(&("x-switchyard-model".into(), live.into())),
            "request {i}"
        );
    }
}

/// `config` with its team reached by `count` keys (`sk-user-NNNN`) and no other way; the keys.
fn with_keys(config: ConfigBuilder, count: usize) -> (Vec<String>, ConfigBuilder) {
    let keys: Vec<String> = (0..count).map(|i| format!("sk-user-{i:04}")).collect();
    let config = config
        .keys_required()
        .team_option(&format!("keys = {keys:?}"));
    (keys, config)
}

/// Start a candidate as `args` say; fails the test if refused.
fn start(proxy: &Proxy, candidate: &str, args: &[&str]) {
    let wasm = policy_wasm(candidate);
    let mut all = vec!["start", wasm.to_str().unwrap()];
    all.extend_from_slice(args);
    let started = rollout(proxy, &all);
    assert!(started.status.success(), "{}", text(&started.stderr));
}

/// Send `count` chat requests, `concurrency` at a time, request `i` with the key and the
/// message `request(i)` gives; each answer's status and the policy version that decided it.
async fn load(
    proxy: &Proxy,
    count: usize,
    concurrency: usize,
    request: impl Fn(usize) -> (String, String) + Sync,
) -> Vec<(u16, String)> {
    use futures_util::StreamExt;
    let client = reqwest::Client::new();
    futures_util::stream::iter(0..count)
        .map(|i| {
            let (key, message) = request(i);
            let call = client
                .post(proxy.url("/v1/chat/completions"))
                .bearer_auth(key)
                .header("x-test-route", "a")
                .json(&json!({"model": "auto", "max_tokens": 5,
                    "messages": [{"role": "user", "content": message}]}))
                .send();
            async move {
                let reply = call.await.expect("an answer");
                let version = reply
                    .headers()
                    .get("x-switchyard-policy")
                    .map_or(String::new(), |v| v.to_str().unwrap().to_string());
                (reply.status().as_u16(), version)
            }
        })
        .buffered(concurrency)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_keeps_each_key_in_one_arm_and_near_its_share() {
    let (_a, _b, config, _dir) = setup().await;
    let (keys, config) = with_keys(config, 1000);
    let proxy = Proxy::start(&config.toml(), &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    start(
        &proxy,
        "first_contract_policy",
        &["--split", "10%", "--sticky", "key"],
    );
    let candidate = policy_version(
        "test-policy",
        &std::fs::read(policy_wasm("first_contract_policy")).unwrap(),
    );
    const N: usize = 10_000;
    let answers = load(&proxy, N, 16, |i| {
        (keys[i % 1000].clone(), "a please".into())
    })
    .await;
    let mut arm_of_key = std::collections::HashMap::new();
    for (i, (status, version)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "request {i}");
        let in_candidate = *version == candidate;
        let first = *arm_of_key.entry(i % 1000).or_insert(in_candidate);
        assert_eq!(first, in_candidate, "key {} changed arms", i % 1000);
    }
    let share = answers.iter().filter(|(_, v)| *v == candidate).count() as f64 / N as f64;
    println!(
        "candidate's share of {N} requests over 1000 keys: {:.2}%",
        share * 100.0
    );
    assert!((0.08..=0.12).contains(&share), "{share}");

    let split = status(&proxy).await["split"].clone();
    let arms = split["live"]["requests"].as_u64().unwrap()
        + split["candidate"]["requests"].as_u64().unwrap();
    assert_eq!(arms, N as u64, "{split}");
    let table = text(&rollout(&proxy, &["status"]).stdout);
    assert!(
        table.contains("split: 10% of requests, sticky by key"),
        "{table}"
    );
    println!("{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_rule_aborts_a_failing_candidate_and_promotes_a_good_one() {
    let (_a, b, config, dir) = setup().await;
    let (keys, config) = with_keys(config, 200);
    let config = config
        .policy_option(
            "rollout = { min_requests = 20, max_error_margin = 0.05, max_failure_margin = 0.5, promote_after_requests = 40, promote_after_secs = 0, steps = [50, 100] }",
        )
        .toml();
    let proxy = Proxy::start(&config, &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let live = policy_version(
        "test-policy",
        &std::fs::read(policy_wasm("scripted_policy")).unwrap(),
    );
    let candidate = policy_version(
        "test-policy",
        &std::fs::read(policy_wasm("first_contract_policy")).unwrap(),
    );

    // The candidate routes to `b`, whose upstream fails: its error rate is far above the live
    // version's, and the rule aborts it once it has served 20 requests.
    b.set(switchyard_e2e::Behaviour::Status(500));
    start(&proxy, "first_contract_policy", &["--split", "50"]);
    let answers = load(&proxy, 200, 4, |i| (keys[i].clone(), "b please".into())).await;
    let failed = answers.iter().filter(|(s, _)| *s != 200).count();
    assert!(failed >= 20, "the candidate's arm failed: {failed}");
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(_, v)| *v == candidate)
    );
    let events = admin_policy(&proxy).await["events"].clone();
    let aborted = events.as_array().unwrap().iter().any(|e| {
        e["kind"] == "candidate-ended"
            && e["message"]
                .as_str()
                .unwrap()
                .starts_with("aborted: upstream error rate")
    });
    assert!(aborted, "{events}");
    let after = load(&proxy, 50, 4, |i| (keys[i].clone(), "b please".into())).await;
    assert!(
        after.iter().all(|(s, v)| *s == 200 && *v == live),
        "the live version serves all"
    );

    // A healthy candidate: after 40 requests in its arm at 50% it is promoted, under load,
    // with no request failing.
    // (To `a`: `b`'s breaker is open after its failures.)
    start(&proxy, "first_contract_policy", &["--split", "50"]);
    let answers = load(&proxy, 300, 8, |i| {
        (keys[i % 200].clone(), "a please".into())
    })
    .await;
    let failed: Vec<_> = answers
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "no request fails across the promotion: {failed:?}"
    );
    let policy = admin_policy(&proxy).await;
    assert_eq!(policy["live"]["version"], candidate.as_str(), "{policy}");
    let promoted = policy["events"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "candidate-ended"
            && e["trigger"] == "automatic"
            && e["message"].as_str().unwrap().ends_with(": promoted")
    });
    assert!(promoted, "{policy}");
    assert!(answers.last().is_some_and(|(_, v)| *v == candidate));
    // What is live is what a restart loads.
    let file = dir.path().join("test-policy.wasm");
    let promoted = std::fs::read(policy_wasm("first_contract_policy")).unwrap();
    poll::until(
        "the promoted version is saved",
        Duration::from_secs(30),
        async || (std::fs::read(&file).ok()? == promoted).then_some(()),
    )
    .await;
}

async fn admin_policy(proxy: &Proxy) -> Value {
    proxy.admin_json("/admin/policies/test-policy").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_across_start_promote_and_abort_under_load() {
    let (_a, _b, config, _dir) = setup().await;
    let (keys, config) = with_keys(config, 100);
    let proxy = Proxy::start(&config.toml(), &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let traffic = load(&proxy, 600, 8, |i| {
        (keys[i % 100].clone(), "a please".into())
    });
    // The operator's commands run beside the traffic, on a thread of their own.
    let admin = proxy.admin.clone().unwrap();
    let wasm = policy_wasm("first_contract_policy");
    let wasm = wasm.to_str().unwrap().to_string();
    let operations = tokio::task::spawn_blocking(move || {
        let steps: [&[&str]; 6] = [
            &["start", &wasm, "--shadow"],
            &["abort"],
            &["start", &wasm, "--split", "50"],
            &["abort"],
            &["start", &wasm, "--split", "50"],
            &["promote"],
        ];
        for args in steps {
            std::thread::sleep(Duration::from_millis(150));
            let done = rollout_at(&admin, args);
            assert!(done.status.success(), "{args:?}: {}", text(&done.stderr));
        }
    });
    let (answers, operations) = tokio::join!(traffic, operations);
    operations.unwrap();
    let failed: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let candidate = policy_version(
        "test-policy",
        &std::fs::read(policy_wasm("first_contract_policy")).unwrap(),
    );
    assert_eq!(
        admin_policy(&proxy).await["live"]["version"],
        candidate.as_str()
    );
}
