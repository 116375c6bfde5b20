//! Timing isolation between teams: looping policies are stopped within twice their deadline
//! (95% of them; every one within five times) while both cores are busy, a slow loop that would
//! finish just past its deadline is stopped too, a decision that aliases megabytes of strings is
//! refused unread, and a well-behaved team's requests do not wait for a hostile team's decisions.
//! These tests measure time, so they live in a binary of their own and run one at a time.

use std::time::Duration;

use switchyard_e2e::{ConfigBuilder, Proxy, Reply, chat, policy_wasm};

/// The hostile policy's deadline.
const DEADLINE: Duration = Duration::from_millis(20);
const GOOD_KEY: &str = "sk-good-team-0001";
const PATIENT_KEY: &str = "sk-patient-team-1";

/// One test at a time: each saturates the machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The hostile policy (deadline [`DEADLINE`]) for the anonymous `test-team`, the cost router for
/// `good`, and the hostile policy again with a long deadline for `patient`.
fn proxy() -> (Proxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let patient = dir.path().join("patient.wasm");
    std::fs::copy(policy_wasm("hostile_policy"), &patient).unwrap();
    let config = ConfigBuilder::new(&policy_wasm("hostile_policy"))
        .deadline_ms(DEADLINE.as_millis() as u64)
        .policy_headers(&["x-hostile", "x-hostile-arg"])
        .policy("good", &policy_wasm("cost_router"), &["deadline_ms = 1000"])
        .team("good", "good", GOOD_KEY, &["fallback = [\"b\"]"])
        .policy(
            "patient",
            &patient,
            &[
                "deadline_ms = 10000",
                "headers = [\"x-hostile\", \"x-hostile-arg\"]",
            ],
        )
        .team("patient", "patient", PATIENT_KEY, &["fallback = [\"a\"]"])
        .echo()
        .model("a", "echo", "a", 2.0, &["reasoning"])
        .model("b", "echo", "b", 0.5, &["cheap"])
        .fallback(&["a"]);
    (Proxy::start(&config.toml(), &[]), dir)
}

/// Send a short question as the team of `key` (the anonymous team without one), with `headers`.
async fn send(
    client: &reqwest::Client,
    proxy: &Proxy,
    key: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let body = chat("auto", "What is the capital of France?");
    proxy.chat(client, key, &body, headers).await
}

/// `count` well-behaved requests from each of `clients` clients at once; their latencies.
async fn good_traffic(proxy: &Proxy, clients: usize, count: usize) -> Vec<Duration> {
    let runs = (0..clients).map(|_| async {
        let client = reqwest::Client::new();
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let reply = send(&client, proxy, Some(GOOD_KEY), &[]).await;
            let route = reply.header("x-switchyard-route");
            assert_eq!(
                (reply.status, route),
                (200, "policy"),
                "a good request suffered"
            );
            latencies.push(reply.elapsed);
        }
        latencies
    });
    let mut all: Vec<Duration> = futures_util::future::join_all(runs).await.concat();
    all.sort();
    all
}

/// `clients` hostile clients, each sending `x-hostile: behaviour` requests one after another
/// (each answered 200 by the fallback route), while two good clients send 300 requests each;
/// the hostile requests' ids and the good requests' latencies.
async fn beside_good_traffic(
    proxy: &Proxy,
    behaviour: &str,
    clients: usize,
) -> (Vec<String>, Vec<Duration>) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let hostile = (0..clients).map(|c| {
        let stop = &stop;
        async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("{behaviour}-{c}-{}", ids.len());
                let headers = [("x-hostile", behaviour), ("x-request-id", id.as_str())];
                let reply = send(&client, proxy, None, &headers).await;
                let route = reply.header("x-switchyard-route");
                assert_eq!((reply.status, route), (200, "fallback"), "{behaviour}");
                ids.push(id);
            }
            ids
        }
    });
    let good = async {
        let latencies = good_traffic(proxy, 2, 300).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        latencies
    };
    let (hostile, good) = tokio::join!(futures_util::future::join_all(hostile), good);
    (hostile.concat(), good)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The `decision_us` the proxy logged for request `id`.
fn decision_us(proxy: &Proxy, id: &str) -> u64 {
    let line = proxy.log_line(&[&format!("request_id={id} "), "decision_us="]);
    line.split("decision_us=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_looping_policy_is_stopped_in_time_and_does_not_hold_up_other_teams() {
    let _serial = SERIAL.lock().await;
    let (proxy, _dir) = proxy();
    good_traffic(&proxy, 2, 50).await;
    let alone = good_traffic(&proxy, 2, 300).await;

    let hostile_clients = 6;
    let (loops, under_load) = beside_good_traffic(&proxy, "loop", hostile_clients).await;

    let mut overshoot: Vec<Duration> = loops
        .iter()
        .map(|id| Duration::from_micros(decision_us(&proxy, id)).saturating_sub(DEADLINE))
        .collect();
    overshoot.sort();
    eprintln!(
        "isolation: {} looping decisions, deadline {DEADLINE:?}, stopped after the deadline by p50 {:?}, max {:?}; \
         good team p50/p99 alone {:?}/{:?}, beside the loops {:?}/{:?}",
        loops.len(),
        percentile(&overshoot, 0.5),
        overshoot.last().unwrap(),
        percentile(&alone, 0.5),
        percentile(&alone, 0.99),
        percentile(&under_load, 0.5),
        percentile(&under_load, 0.99),
    );
    assert!(
        loops.len() >= 2 * hostile_clients,
        "the loops ran: {}",
        loops.len()
    );
    // Bounds that hold on a machine busy with other builds too (the max there was seen at
    // 28 ms over a 20 ms deadline); a loop that is not stopped runs on without bound.
    assert!(
        percentile(&overshoot, 0.95) <= DEADLINE,
        "looping policies ran past twice their deadline: p95 {:?}",
        percentile(&overshoot, 0.95)
    );
    assert!(
        *overshoot.last().unwrap() <= 4 * DEADLINE,
        "a looping policy ran past five times its deadline: {:?}",
        overshoot.last()
    );
    assert!(
        percentile(&under_load, 0.95) < DEADLINE,
        "the good team waited on the loops: p95 {:?}",
        percentile(&under_load, 0.95)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loop_that_would_finish_just_past_the_deadline_is_stopped() {
    let _serial = SERIAL.lock().await;
    let (proxy, _dir) = proxy();
    let client = reqwest::Client::new();
    // Find a loop that takes between 1.5 and 3 deadlines when given time to finish.
    let mut rounds: u64 = 10_000_000;
    let mut attempt = 0;
    let rounds = loop {
        attempt += 1;
        let id = format!("calibrate-{attempt}");
        let arg = rounds.to_string();
        let headers = [
            ("x-hostile", "spin"),
            ("x-hostile-arg", arg.as_str()),
            ("x-request-id", id.as_str()),
        ];
        let reply = send(&client, &proxy, Some(PATIENT_KEY), &headers).await;
        assert_eq!(
            reply.header("x-switchyard-route"),
            "policy",
            "given time, it finishes"
        );
        let took = Duration::from_micros(decision_us(&proxy, &id));
        if took >= DEADLINE * 3 / 2 && took <= DEADLINE * 3 {
            break rounds;
        }
        assert!(
            attempt < 10,
            "cannot calibrate: {rounds} rounds took {took:?}"
        );
        rounds =
            (rounds as f64 * 2.0 * DEADLINE.as_secs_f64() / took.as_secs_f64().max(1e-6)) as u64;
    };
    let arg = rounds.to_string();
    let headers = [
        ("x-hostile", "spin"),
        ("x-hostile-arg", arg.as_str()),
        ("x-request-id", "slow-loop"),
    ];
    let reply = send(&client, &proxy, None, &headers).await;
    assert_eq!(
        (reply.status, reply.header("x-switchyard-route")),
        (200, "fallback")
    );
    let line = proxy.log_line(&["request_id=slow-loop ", "policy failed"]);
    assert!(line.contains("kind=\"timeout\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_decision_aliasing_megabytes_is_refused_unread_and_other_teams_do_not_wait() {
    let _serial = SERIAL.lock().await;
    let (proxy, _dir) = proxy();
    good_traffic(&proxy, 2, 50).await;
    let rss_before = proxy.peak_rss_kib();

    // 120 targets whose model strings all point at one 1 MiB block of a 32 MiB policy: 120 MiB
    // for a host that copied them.
    let hostile_clients = 4;
    let (aliased, under_load) = beside_good_traffic(&proxy, "alias", hostile_clients).await;
    let rss_growth_mib = proxy.peak_rss_kib().saturating_sub(rss_before) / 1024;
    let mut decisions: Vec<Duration> = aliased
        .iter()
        .map(|id| Duration::from_micros(decision_us(&proxy, id)))
        .collect();
    decisions.sort();
    eprintln!(
        "aliasing: {} decisions, p50 {:?}, max {:?}; peak RSS grew {rss_growth_mib} MiB; good team p50/p99 {:?}/{:?}",
        aliased.len(),
        percentile(&decisions, 0.5),
        decisions.last().unwrap(),
        percentile(&under_load, 0.5),
        percentile(&under_load, 0.99),
    );
    assert!(
        aliased.len() >= 2 * hostile_clients,
        "the aliasing policy ran: {}",
        aliased.len()
    );
    for id in &aliased {
        let line = proxy.log_line(&[&format!("request_id={id} "), "policy failed"]);
        assert!(
            line.contains("kind=\"invalid-decision\"")
                && line.contains("handed the host more than"),
            "{line}"
        );
    }
    assert!(
        rss_growth_mib < 32,
        "the host copied the aliased strings: peak RSS grew {rss_growth_mib} MiB"
    );
    assert!(
        percentile(&decisions, 0.95) <= DEADLINE,
        "refusing a decision unread takes no time: p95 {:?}",
        percentile(&decisions, 0.95)
    );
    assert!(
        percentile(&under_load, 0.95) < DEADLINE,
        "the good team waited on the aliasing policy: p95 {:?}",
        percentile(&under_load, 0.95)
    );
}
