//! The sandbox end to end: a hostile policy (a real component, `plugins/testing/hostile`) loops,
//! exhausts memory, traps, returns nonsense and reaches for files, sockets and the environment,
//! while a well-behaved team shares the proxy. Every request of both teams is answered; the
//! hostile team gets its failure behaviour with the right failure kind; the well-behaved team
//! sees no error.

use std::collections::HashMap;

use serde_json::{Value, json};
use switchyard_e2e::{ADMIN_TOKEN, ConfigBuilder, Proxy, Reply, policy_wasm};

/// The hostile policy's deadline: generous, as a debug build runs these tests under load.
/// (Timing under load is `isolation.rs`'s subject.)
const DEADLINE_MS: u64 = 1000;
/// The most message text the hostile policy may read.
const TEXT_CAP: usize = 100;
const GOOD_KEY: &str = "sk-good-team-0001";
const STRICT_KEY: &str = "sk-strict-team-01";
/// An environment variable the proxy has; the policy must not see it.
const SECRET_VAR: &str = "SWITCHYARD_TEST_SECRET";

/// The hostile policy as `test-policy` for `test-team` (anonymous, static fallback `a`) and
/// `strict` (503 on failure), and the cost router for `good`.
fn proxy() -> Proxy {
    let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
        .deadline_ms(DEADLINE_MS)
        .policy_headers(&["x-hostile", "x-hostile-arg"])
        .policy_option(&format!("max_message_chars = {TEXT_CAP}"))
        .team(
            "strict",
            "test-policy",
            STRICT_KEY,
            &["on_failure = \"reject\""],
        )
        .policy("good", &policy_wasm("cost_router"), &["deadline_ms = 1000"])
        .team("good", "good", GOOD_KEY, &["fallback = [\"b\"]"])
        .echo()
        .model("a", "echo", "a", 2.0, &["reasoning"])
        .model("b", "echo", "b", 0.5, &["cheap"])
        .fallback(&["a"]);
    Proxy::start(&config.toml(), &[(SECRET_VAR, "hunter2-secret-value")])
}

/// Send a request with one user message `text`, as the team of `key` (the anonymous team
/// without one), with `headers`.
async fn send(proxy: &Proxy, key: Option<&str>, headers: &[(&str, &str)], text: &str) -> Reply {
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    proxy
        .chat(&reqwest::Client::new(), key, &body, headers)
        .await
}

/// The headers that say how a request was routed: (status, route, model).
fn routed(reply: &Reply) -> (u16, &str, &str) {
    (
        reply.status,
        reply.header("x-switchyard-route"),
        reply.header("x-switchyard-model"),
    )
}

/// Run `count` requests of the hostile team with (behaviour, argument, message text), two of the
/// `strict` team with the same, and twice `count` well-behaved requests of the good team, all at
/// once. Returns the hostile team's answers (with their request ids) and the strict ones; asserts
/// that every good request was served by its policy without waiting out a hostile decision.
async fn under_load(
    proxy: &Proxy,
    (behaviour, arg, text): (&str, &str, &str),
    count: usize,
) -> (Vec<(String, Reply)>, Vec<Reply>) {
    let hostile = (0..count).map(|i| {
        let id = format!("{behaviour}-{i}");
        async move {
            let headers = [
                ("x-hostile", behaviour),
                ("x-hostile-arg", arg),
                ("x-request-id", id.as_str()),
            ];
            let answer = send(proxy, None, &headers, text).await;
            (id, answer)
        }
    });
    let strict = (0..2).map(|_| {
        let headers = [("x-hostile", behaviour), ("x-hostile-arg", arg)];
        async move { send(proxy, Some(STRICT_KEY), &headers, text).await }
    });
    let good =
        (0..count * 2).map(|_| send(proxy, Some(GOOD_KEY), &[], "What is the capital of France?"));
    let (hostile, strict, good) = tokio::join!(
        futures_util::future::join_all(hostile),
        futures_util::future::join_all(strict),
        futures_util::future::join_all(good),
    );
    for reply in &good {
        assert_eq!(
            routed(reply),
            (200, "policy", "b"),
            "the good team suffered while `{behaviour}` ran: {reply:?}"
        );
        assert!(
            reply.elapsed < std::time::Duration::from_millis(DEADLINE_MS),
            "a good request waited out a hostile decision ({behaviour}): {:?}",
            reply.elapsed
        );
    }
    (hostile, strict)
}

/// The `kind` the proxy logged for the policy failure of request `id`.
fn failure_kind(proxy: &Proxy, id: &str) -> String {
    let line = proxy.log_line(&[&format!("request_id={id} "), "policy failed"]);
    let at = line.find("kind=\"").expect("kind field") + "kind=\"".len();
    line[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_failure_gets_the_failure_behaviour_and_its_kind() {
    let proxy = proxy();
    let cases = [
        ("loop", "", "timeout", "policy ran past its deadline"),
        ("alloc", "", "memory", "memory cap"),
        ("grow", "", "memory", "memory cap"),
        ("panic", "", "trap", "hostile policy panics on purpose"),
        ("unreachable", "", "trap", "unreachable"),
        // Rust keeps big frames on a shadow stack in linear memory, which runs out first.
        ("recurse", "", "trap", "the policy trapped: wasm trap"),
        (
            "empty-route",
            "",
            "invalid-decision",
            "route has no targets",
        ),
        (
            "unknown-model",
            "",
            "invalid-decision",
            "target model `no-such-model` is not in the catalog",
        ),
        (
            "many-targets",
            "",
            "invalid-decision",
            "handed the host more than",
        ),
        (
            "huge-reason",
            "",
            "invalid-decision",
            "handed the host more than",
        ),
        // 120 targets aliasing one 1 MiB block, and a 8 MiB log line passed a thousand times:
        // refused unread.
        ("alias", "", "invalid-decision", "handed the host more than"),
        (
            "huge-log",
            "",
            "invalid-decision",
            "handed the host more than",
        ),
    ];
    let mut kinds = HashMap::new();
    for (behaviour, arg, kind, detail) in cases {
        let question = "What is the capital of France?";
        let (hostile, strict) = under_load(&proxy, (behaviour, arg, question), 6).await;
        for (id, answer) in &hostile {
            assert_eq!(
                routed(answer),
                (200, "fallback", "a"),
                "{behaviour}: {answer:?}"
            );
            assert_eq!(
                answer.header("x-switchyard-reason"),
                format!("policy failed ({kind}); static fallback route"),
                "{behaviour}"
            );
            assert_eq!(failure_kind(&proxy, id), kind, "{behaviour}");
        }
        let line = proxy.log_line(&[&format!("request_id={behaviour}-0 "), "policy failed"]);
        assert!(line.contains(detail), "{behaviour}: {line}");
        for answer in &strict {
            assert_eq!(answer.status, 503, "{behaviour}: {answer:?}");
            assert_eq!(answer.json()["error"]["code"], "policy_failed");
            assert!(
                !answer.json().to_string().contains(detail),
                "no internals: {answer:?}"
            );
        }
        *kinds.entry(kind).or_insert(0) += hostile.len() + strict.len();
    }

    let logs = proxy.logs();
    for (kind, count) in kinds {
        let logged = logs
            .lines()
            .filter(|l| l.contains("policy failed") && l.contains(&format!("kind=\"{kind}\"")))
            .count();
        assert_eq!(logged, count, "each {kind} failure is logged once");
    }
    // A trap never touches the next request: the policy still decides.
    let after = send(&proxy, None, &[], "hello").await;
    assert_eq!(
        (
            after.header("x-switchyard-route"),
            after.header("x-switchyard-reason")
        ),
        ("policy", "well behaved")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_reaching_for_files_sockets_and_the_environment_gets_nothing() {
    let proxy = proxy();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let long_text = "x".repeat(TEXT_CAP * 50);
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "read-file",
            "",
            "What is the capital of France?",
            "read-file: denied",
        ),
        ("read-file", "/", "hello", "read-file: denied"),
        ("connect", &addr, "hello", "connect: denied"),
        (
            "env",
            SECRET_VAR,
            "hello",
            "env: denied: environment variable not found",
        ),
        ("read-past-cap", "", &long_text, "read 100 chars"),
    ];
    for (behaviour, arg, text, reason) in cases {
        let (hostile, strict) = under_load(&proxy, (behaviour, arg, text), 3).await;
        let answers = hostile.iter().map(|(_, reply)| reply).chain(&strict);
        for answer in answers {
            assert_eq!(
                (answer.status, answer.header("x-switchyard-route")),
                (200, "policy"),
                "{behaviour} still decides: {answer:?}"
            );
            assert!(
                answer.header("x-switchyard-reason").starts_with(reason),
                "{behaviour}: {}",
                answer.header("x-switchyard-reason")
            );
        }
    }
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the policy's connection never arrived"
    );
    assert!(
        !proxy.logs().contains("hunter2"),
        "the secret reached the policy"
    );

    // What a policy prints is logged, capped, and never fails the policy.
    let chatty = send(
        &proxy,
        None,
        &[("x-hostile", "chatty"), ("x-request-id", "chatty")],
        "hi",
    )
    .await;
    assert_eq!(chatty.header("x-switchyard-route"), "policy");
    assert!(
        chatty.header("x-switchyard-reason").starts_with("printed "),
        "{}",
        chatty.header("x-switchyard-reason")
    );
    for stream in ["stdout", "stderr"] {
        let dropped = proxy.log_line(&[
            "request_id=\"chatty\"",
            &format!("stream=\"{stream}\""),
            "more bytes dropped",
        ]);
        assert!(dropped.contains("policy=\"test-policy\""), "{dropped}");
        let kept = proxy.count_log_lines(&[
            "request_id=\"chatty\"",
            &format!("stream=\"{stream}\""),
            "chatter chatter",
        ]);
        assert!(
            (20..=40).contains(&kept),
            "{stream}: {kept} lines kept of about 4 KiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_is_frozen_and_randomness_follows_the_request_id() {
    let proxy = proxy();
    let ask = |behaviour: &'static str, id: &'static str| {
        let proxy = &proxy;
        async move {
            let headers = [("x-hostile", behaviour), ("x-request-id", id)];
            send(proxy, None, &headers, "hi")
                .await
                .header("x-switchyard-reason")
                .to_string()
        }
    };
    assert_eq!(ask("clock", "c1").await, "clock 0");
    let first = ask("random", "replay-me").await;
    assert!(first.starts_with("random "), "{first}");
    assert_eq!(
        ask("random", "replay-me").await,
        first,
        "the same request id replays"
    );
    assert_ne!(ask("random", "another-id").await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_pool_is_full_requests_wait_out_their_deadline_then_fall_back() {
    // A pool of one slot, held for three seconds by another team's looping policy: a request
    // of the test team waits for it until its own 200 ms deadline, then gets its fallback.
    let dir = tempfile::tempdir().unwrap();
    let holder = dir.path().join("holder.wasm");
    std::fs::copy(policy_wasm("hostile_policy"), &holder).unwrap();
    let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
        .top("[engine]\ninstances = 1")
        .deadline_ms(200)
        .policy_headers(&["x-hostile"])
        .policy_option("max_concurrency = 1")
        .policy(
            "holder",
            &holder,
            &[
                "deadline_ms = 3000",
                "max_concurrency = 1",
                "headers = [\"x-hostile\"]",
            ],
        )
        .team("holder", "holder", GOOD_KEY, &["fallback = [\"a\"]"])
        .echo()
        .model("a", "echo", "a", 1.0, &[])
        .fallback(&["a"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    let loop_header = [("x-hostile", "loop")];
    let holding = send(&proxy, Some(GOOD_KEY), &loop_header, "hold the slot");
    let waiting = async {
        // Until the holder has the slot, a request may still find it free (and time out).
        for attempt in 0..10 {
            let id = format!("waiting-{attempt}");
            let headers = [("x-hostile", "loop"), ("x-request-id", id.as_str())];
            let reply = send(&proxy, None, &headers, "hi").await;
            assert_eq!(routed(&reply), (200, "fallback", "a"), "{reply:?}");
            if failure_kind(&proxy, &id) == "busy" {
                return reply;
            }
        }
        panic!("no request found the pool full:\n{}", proxy.logs());
    };
    let (held, waited) = tokio::join!(holding, waiting);
    assert!(
        waited.elapsed < std::time::Duration::from_millis(1000),
        "waiting for a slot is bounded by the deadline: {:?}",
        waited.elapsed
    );
    assert_eq!(routed(&held), (200, "fallback", "a"));
}

/// A proxy whose hostile policy keeps each instance for `decisions` decisions
/// (`reuse_instances`), with one model `a` as its fallback.
fn reusing_proxy(decisions: u32) -> Proxy {
    let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
        .policy_headers(&["x-hostile"])
        .policy_option(&format!("reuse_instances = {decisions}"))
        .model("a", "echo", "a", 1.0, &[])
        .echo()
        .fallback(&["a"]);
    Proxy::start(&config.toml(), &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_carries_over_only_when_a_policy_opts_into_reusing_instances() {
    // Fresh instances (the default): a global counter is always at its first decision.
    let fresh = proxy();
    for _ in 0..3 {
        let reply = send(&fresh, None, &[("x-hostile", "count")], "hi").await;
        assert_eq!(
            reply.header("x-switchyard-reason"),
            "decision 1 of this instance"
        );
    }
    // `reuse_instances = 3`: one instance serves three decisions in turn, then a fresh one.
    let reused = reusing_proxy(3);
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let reply = send(&reused, None, &[("x-hostile", "count")], "hi").await;
        assert_eq!(routed(&reply), (200, "policy", "a"));
        reasons.push(reply.header("x-switchyard-reason").to_string());
    }
    assert_eq!(
        reasons,
        [1, 2, 3, 1].map(|n| format!("decision {n} of this instance"))
    );
    // A failed decision throws its instance away: the next starts over.
    let trapped = send(&reused, None, &[("x-hostile", "panic")], "hi").await;
    assert_eq!(routed(&trapped).1, "fallback");
    let after = send(&reused, None, &[("x-hostile", "count")], "hi").await;
    assert_eq!(
        after.header("x-switchyard-reason"),
        "decision 1 of this instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_a_reused_instance_keeps_stay_intact_in_the_sdk_arena() {
    // Each decision keeps an 8 KiB block and allocates and frees more: the first blocks come from
    // the SDK's 64 KiB arena, which can then never start again, and the later ones from the
    // system allocator. Every kept block must keep its contents.
    let proxy = reusing_proxy(100);
    for n in 1..=12 {
        let reply = send(&proxy, None, &[("x-hostile", "keep")], "hi").await;
        assert_eq!(routed(&reply), (200, "policy", "a"));
        assert_eq!(
            reply.header("x-switchyard-reason"),
            format!("64 churned, kept {n}, intact true")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spare_instances_are_fresh_and_serve_one_decision_each() {
    // `spare_instances` defaults to 1: every decision after the canary's finds an instance
    // instantiated ahead of it, and each is still its instance's first decision, with the same
    // randomness for the same request id. With 0, every decision instantiates its own.
    let mut randoms = Vec::new();
    for (option, spares) in [("spare_instances = 1", 5.0), ("spare_instances = 0", 0.0)] {
        let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
            .policy_headers(&["x-hostile"])
            .policy_option(option)
            .model("a", "echo", "a", 1.0, &[])
            .echo()
            .fallback(&["a"])
            .admin();
        let proxy = Proxy::start(&config.toml(), &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]);
        // A spare is instantiated in the background; give it time to be ready.
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(300));
        settle().await;
        let before = instances(&proxy).await;
        for _ in 0..4 {
            let reply = send(&proxy, None, &[("x-hostile", "count")], "hi").await;
            assert_eq!(routed(&reply), (200, "policy", "a"), "{option}");
            assert_eq!(
                reply.header("x-switchyard-reason"),
                "decision 1 of this instance",
                "{option}"
            );
            settle().await;
        }
        let headers = [("x-hostile", "random"), ("x-request-id", "replay-me")];
        let random = send(&proxy, None, &headers, "hi").await;
        randoms.push(random.header("x-switchyard-reason").to_string());
        let after = instances(&proxy).await;
        let made = |kind: &str| after[kind] - before[kind];
        assert_eq!(
            (made("spare"), made("fresh"), made("reused")),
            (spares, 5.0 - spares, 0.0),
            "{option}"
        );
    }
    assert!(randoms[0].starts_with("random "), "{randoms:?}");
    assert_eq!(randoms[0], randoms[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decision_that_finds_the_pool_full_takes_a_slot_back_from_an_idle_spare() {
    // A pool of two slots: the `idle` policy's spare holds one, and another team's looping
    // decision (3 s deadline) the other. A decision of the test policy (500 ms deadline) takes
    // the spare's slot back instead of waiting past its deadline for the looping one's.
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let path = dir.path().join(name);
        std::fs::copy(policy_wasm("hostile_policy"), &path).unwrap();
        path
    };
    let (holder, idle) = (copy("holder.wasm"), copy("idle.wasm"));
    let no_spares = ["spare_instances = 0", "max_concurrency = 2"];
    let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
        .top("[engine]\ninstances = 2")
        .deadline_ms(500)
        .policy_headers(&["x-hostile"])
        .policy_option(&no_spares.join("\n"))
        .policy(
            "holder",
            &holder,
            &[
                &no_spares[..],
                &["deadline_ms = 3000", "headers = [\"x-hostile\"]"],
            ]
            .concat(),
        )
        .team("holder", "holder", GOOD_KEY, &["fallback = [\"a\"]"])
        .policy(
            "idle",
            &idle,
            &["max_concurrency = 2", "headers = [\"x-hostile\"]"],
        )
        .team("idle", "idle", STRICT_KEY, &["fallback = [\"a\"]"])
        .echo()
        .model("a", "echo", "a", 1.0, &[])
        .fallback(&["a"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    // The idle policy decides once, alone, and then makes its spare.
    let once = send(&proxy, Some(STRICT_KEY), &[("x-hostile", "count")], "hi").await;
    assert_eq!(routed(&once), (200, "policy", "a"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let looping = [("x-hostile", "loop"), ("x-request-id", "looping")];
    let holding = send(&proxy, Some(GOOD_KEY), &looping, "hold a slot");
    let next = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        send(&proxy, None, &[("x-hostile", "count")], "hi").await
    };
    let (held, next) = tokio::join!(holding, next);
    assert_eq!(routed(&next), (200, "policy", "a"), "{}", proxy.logs());
    assert_eq!(
        next.header("x-switchyard-reason"),
        "decision 1 of this instance"
    );
    assert_eq!(routed(&held), (200, "fallback", "a"));
    assert_eq!(failure_kind(&proxy, "looping"), "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_gauges_show_its_slots_and_what_holds_them() {
    // Three slots. After one decision, a spare holds a slot (`spare_instances = 1`), the kept
    // instance holds one (`reuse_instances`), and with neither none is held. Memory stays
    // resident only in a slot an instance was given back from: not with the kept instance, the
    // only one made.
    for (option, held, resident) in [
        ("spare_instances = 1", 1.0, true),
        ("reuse_instances = 10", 1.0, false),
        ("spare_instances = 0", 0.0, true),
    ] {
        let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
            .top("[engine]\ninstances = 3")
            .policy_headers(&["x-hostile"])
            .policy_option(&format!("{option}\nmax_concurrency = 3"))
            .model("a", "echo", "a", 1.0, &[])
            .echo()
            .fallback(&["a"])
            .admin();
        let proxy = Proxy::start(&config.toml(), &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]);
        let reply = send(&proxy, None, &[("x-hostile", "count")], "hi").await;
        assert_eq!(routed(&reply), (200, "policy", "a"), "{option}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let exposition = proxy.admin_metrics().await;
        let gauge = |name| switchyard_e2e::metric(&exposition, name, &[]);
        assert_eq!(gauge("switchyard_policy_pool_slots"), 3.0, "{option}");
        assert_eq!(
            gauge("switchyard_policy_pool_slots_in_use"),
            held,
            "{option}\n{exposition}"
        );
        assert_eq!(
            gauge("switchyard_policy_pool_resident_bytes") > 0.0,
            resident,
            "{option}\n{exposition}"
        );
    }
}

/// `switchyard_policy_instances_total` of the test policy, by kind.
async fn instances(proxy: &Proxy) -> HashMap<&'static str, f64> {
    let exposition = proxy.admin_metrics().await;
    let version = exposition
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("switchyard_policy_instances_total{")?;
            let at = rest.find("version=\"")? + "version=\"".len();
            Some(rest[at..].split('"').next()?.to_string())
        })
        .expect("the policy's instances are counted");
    ["fresh", "spare", "reused"]
        .into_iter()
        .map(|kind| {
            let labels = [
                ("policy", "test-policy"),
                ("version", version.as_str()),
                ("instance", kind),
            ];
            let count =
                switchyard_e2e::metric(&exposition, "switchyard_policy_instances_total", &labels);
            (kind, count)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_decisions_than_pool_slots_wait_for_a_slot_and_never_fail() {
    // Two pool slots, 24 concurrent decisions: each waits for a slot that is fully free (its
    // previous store dropped), so none fails to instantiate.
    let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
        .top("[engine]\ninstances = 2\n")
        .policy_headers(&["x-hostile", "x-hostile-arg"])
        .policy_option("max_concurrency = 2")
        .model("a", "echo", "a", 1.0, &[])
        .echo()
        .fallback(&["a"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    let replies = futures_util::future::join_all((0..24).map(|_| {
        send(
            &proxy,
            None,
            &[("x-hostile", "spin"), ("x-hostile-arg", "20000")],
            "hi",
        )
    }))
    .await;
    for reply in &replies {
        assert_eq!(
            routed(reply),
            (200, "policy", "a"),
            "{reply:?}\n{}",
            proxy.logs()
        );
    }
}

/// The line break and fake log line the hostile policy's `forge` behaviour smuggles out, as it
/// must appear wherever the proxy writes it: escaped.
const FORGED_ESCAPED: &str = r"x\nFORGED level=INFO\r";

/// The message of log line `line` in `format`: the text after the fields, or JSON's message.
fn message_of(line: &str, format: &str) -> String {
    if format == "json" {
        let value: Value = serde_json::from_str(line).expect("a JSON log line");
        value["message"].as_str().unwrap_or_default().to_string()
    } else {
        line.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_policy_says_is_escaped_wherever_it_is_written() {
    for format in ["text", "json"] {
        let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
            .admin()
            .policy_headers(&["x-hostile", "x-hostile-arg"])
            .model("a", "echo", "a", 1.0, &[])
            .echo()
            .fallback(&["a"]);
        let env = [
            ("SWITCHYARD_LOG_FORMAT", format),
            ("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ];
        let proxy = Proxy::start(&config.toml(), &env);
        // Its error, a target's model and its panic message (whose lines stderr joins) reach
        // the `policy failed` line.
        let channels = [
            ("panic", "x | FORGED level=INFO"),
            ("model", FORGED_ESCAPED),
            ("error", FORGED_ESCAPED),
        ];
        for (channel, shown) in channels {
            let id = format!("forge-{channel}");
            let headers = [
                ("x-hostile", "forge"),
                ("x-hostile-arg", channel),
                ("x-request-id", id.as_str()),
            ];
            let reply = send(&proxy, None, &headers, "hi").await;
            assert_eq!(routed(&reply), (200, "fallback", "a"), "{channel}");
            let line = proxy.log_line(&[&id, "policy failed"]);
            assert!(
                message_of(&line, format).contains(shown),
                "{format} {channel}: {line}"
            );
        }
        // A rejection's message reaches the client.
        let headers = [("x-hostile", "forge"), ("x-hostile-arg", "reject")];
        let rejected = send(&proxy, None, &headers, "hi").await;
        assert_eq!(rejected.status, 403);
        assert_eq!(rejected.json()["error"]["message"], FORGED_ESCAPED);
        // The last failure (the error) reaches the admin API.
        let policy: Value = reqwest::Client::new()
            .get(proxy.admin_url("/admin/policies/test-policy"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let last_error = policy["live"]["last_error"]["message"].as_str().unwrap();
        assert!(last_error.contains(FORGED_ESCAPED), "{last_error}");

        let logs = proxy.logs();
        for line in logs.lines() {
            assert!(
                !line.starts_with("FORGED") && !line.contains('\r'),
                "{format}: a policy forged a log line: {line:?}"
            );
            if format == "json" {
                serde_json::from_str::<Value>(line).expect("every line is one JSON object");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decisions_that_never_found_a_slot_in_time_are_busy_not_timeouts() {
    // Two decisions may run at once; four looping ones arrive together. The two that run are
    // stopped at the deadline; the two that waited all along for a slot are `busy`, even when a
    // slot frees just before their own deadline.
    let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
        .deadline_ms(300)
        .policy_headers(&["x-hostile"])
        .policy_option("max_concurrency = 2")
        .model("a", "echo", "a", 1.0, &[])
        .echo()
        .fallback(&["a"]);
    let proxy = Proxy::start(&config.toml(), &[]);
    for round in 0..3 {
        let ids: Vec<String> = (0..4).map(|i| format!("round-{round}-{i}")).collect();
        let replies = futures_util::future::join_all(ids.iter().map(|id| {
            let headers = [("x-hostile", "loop"), ("x-request-id", id.as_str())];
            let proxy = &proxy;
            async move { send(proxy, None, &headers, "hi").await }
        }))
        .await;
        for reply in &replies {
            assert_eq!(routed(reply), (200, "fallback", "a"));
        }
        let mut kinds: Vec<String> = ids.iter().map(|id| failure_kind(&proxy, id)).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            ["busy", "busy", "timeout", "timeout"],
            "round {round}"
        );
    }
}
