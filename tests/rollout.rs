//! Policies rolled out by digest to a fleet: three replicas sharing a real Redis (Debian's
//! `redis-server`) take their policy versions from a real OCI registry (Debian's
//! `docker-registry`). `switchyard policy deploy` records a digest and every replica fetches,
//! checks and serves it, and keeps it across a restart without the registry; a digest that fails
//! the canary is refused everywhere, and one the registry cannot deliver changes no replica until
//! the registry is back. `GET /admin/fleet` and `switchyard fleet status` show each replica's
//! version and refusals.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_e2e::{
    ADMIN_TOKEN, ConfigBuilder, MockUpstream, Proxy, Redis, Registry, policy_version, policy_wasm,
    poll, proxy_binary,
};

fn switchyard(args: &[&str], admin: &Proxy) -> Output {
    Command::new(proxy_binary())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DOCKER_CONFIG")
        .env("SWITCHYARD_ADMIN_URL", admin.admin.as_ref().unwrap())
        .env("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("switchyard runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Push the test policy component `name` to `registry` as `policies/test:TAG`; its digest.
fn push(registry: &Registry, name: &str, tag: &str) -> String {
    let reference = format!("{}/policies/test:{tag}", registry.host);
    let out = Command::new(proxy_binary())
        .args(["policy", "push"])
        .arg(policy_wasm(name))
        .args([&reference, "--plain-http"])
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The version header of a policy component built from the test plugins.
fn version_of(name: &str) -> String {
    policy_version("test-policy", &std::fs::read(policy_wasm(name)).unwrap())
}

/// A replica of the fleet: the scripted policy in a file of its own (a deploy writes there),
/// the state in `redis`, plain HTTP to `registry`, comparing its versions with the deployed ones
/// every `check_ms` besides following the stream of deploys.
struct Replica {
    proxy: Proxy,
    config: String,
    policy_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn start(redis: &Redis, registry: &Registry, mock: &MockUpstream, check_ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy_file = dir.path().join("test-policy.wasm");
        std::fs::copy(policy_wasm("scripted_policy"), &policy_file).unwrap();
        let config = ConfigBuilder::new(&policy_file)
            .provider("p", &mock.url, None)
            .model("m", "p", "m-up", 1.0, &[])
            .fallback(&["m"])
            .admin()
            .section(&format!(
                "[state]\nredis_url = {:?}\ntimeout_ms = 5000\nrollout_check_ms = {check_ms}\n\n[registry]\nplain_http = [{:?}]\n",
                redis.url(),
                registry.host
            ))
            .toml();
        Self {
            proxy: Proxy::start(&config, &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]),
            config,
            policy_file,
            _dir: dir,
        }
    }

    /// The policy version that serves a request now.
    async fn serving(&self) -> String {
        self.serving_with(&[]).await
    }

    /// The policy version that serves a request with `headers` now.
    async fn serving_with(&self, headers: &[(&str, &str)]) -> String {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let reply = self
            .proxy
            .chat(&reqwest::Client::new(), None, &body, headers)
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.header("x-switchyard-policy").to_string()
    }
}

async fn fleet_status(proxy: &Proxy) -> Value {
    proxy.admin_json("/admin/fleet").await
}

/// Wait until every one of `count` replicas reports and `check` holds for each report.
async fn every_replica(
    proxy: &Proxy,
    count: usize,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    poll::until(what, Duration::from_secs(30), async || {
        let status = fleet_status(proxy).await;
        let replicas = status["replicas"].as_array()?;
        let all = replicas.len() == count && replicas.iter().all(|r| check(&r["report"]));
        all.then_some(status)
    })
    .await
}

async fn start_fleet(check_ms: u64) -> (Redis, Registry, MockUpstream, Vec<Replica>) {
    let redis = Redis::start();
    let registry = Registry::start();
    let mock = MockUpstream::start("m").await;
    let replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::start(&redis, &registry, &mock, check_ms))
        .collect();
    every_replica(&replicas[0].proxy, 3, "three replicas report", |r| {
        r.is_object()
    })
    .await;
    (redis, registry, mock, replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_digest_is_served_by_every_replica_and_kept_across_a_restart() {
    // The periodic check is a minute away: the replicas learn of the deploy from the stream.
    let (_redis, mut registry, mock, mut replicas) = start_fleet(60_000).await;
    let v1 = version_of("scripted_policy");
    let v2 = version_of("cost_router");
    for replica in &replicas {
        assert_eq!(replica.serving().await, v1);
    }
    let digest = push(&registry, "cost_router", "v2");

    let started = Instant::now();
    let reference = format!("{}/policies/test:v2", registry.host);
    let deployed = switchyard(
        &["policy", "deploy", "test-policy", &reference],
        &replicas[1].proxy,
    );
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    assert_eq!(
        text(&deployed.stdout).trim(),
        digest,
        "the tag's digest is printed"
    );
    let mut last = Duration::ZERO;
    for replica in &replicas {
        poll::until(
            "the replica serves the deployed version",
            Duration::from_secs(30),
            async || (replica.serving().await == v2).then_some(()),
        )
        .await;
        last = last.max(started.elapsed());
    }
    println!(
        "deploy to the last of 3 replicas serving the new digest: {} ms",
        last.as_millis()
    );

    // The fleet's view: the digest deployed, and every replica running it.
    let status = every_replica(
        &replicas[2].proxy,
        3,
        "every replica reports the digest",
        |r| r["policies"]["test-policy"]["digest"] == digest.as_str(),
    )
    .await;
    let desired = &status["desired"]["test-policy"];
    assert_eq!(desired["digest"], digest.as_str());
    assert_eq!(
        desired["reference"],
        format!("{}/policies/test@{digest}", registry.host)
    );
    let table = switchyard(&["fleet", "status"], &replicas[0].proxy);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert_eq!(table.matches(&v2).count(), 3, "{table}");
    assert_eq!(
        table.matches("deployed").count(),
        4,
        "the heading and 3 replicas: {table}"
    );

    // What is live is what a restart loads, with the registry gone.
    for replica in &replicas {
        assert!(holds(&replica.policy_file, "cost_router"));
    }
    registry.stop();
    let old = replicas.remove(0);
    let restarted = Replica {
        proxy: Proxy::start(&old.config, &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)]),
        ..old
    };
    assert_eq!(restarted.serving().await, v2);
    let policies = admin_policy(&restarted.proxy).await;
    assert_eq!(policies["live"]["digest"], digest.as_str());
    drop(mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_unreachable_digest_changes_no_replica() {
    // Checks every 300 ms: how soon a digest the registry failed to deliver is tried again.
    let (_redis, mut registry, _mock, replicas) = start_fleet(300).await;
    let v1 = version_of("scripted_policy");
    let v2 = version_of("cost_router");

    // A digest whose decisions are all invalid: every replica's canary refuses it.
    let ghost = push(&registry, "ghost_route_policy", "ghost");
    let reference = format!("{}/policies/test:ghost", registry.host);
    let deployed = switchyard(
        &["policy", "deploy", "test-policy", &reference],
        &replicas[0].proxy,
    );
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    let status = every_replica(
        &replicas[0].proxy,
        3,
        "every replica refuses the digest",
        |r| r["last_refusal"]["digest"] == ghost.as_str(),
    )
    .await;
    for replica in status["replicas"].as_array().unwrap() {
        let refusal = &replica["report"]["last_refusal"];
        assert_eq!(refusal["retrying"], false);
        let reason = refusal["reason"].as_str().unwrap();
        assert!(
            reason.contains("canary") && reason.contains("ghost-model"),
            "{reason}"
        );
        assert_eq!(
            replica["report"]["policies"]["test-policy"]["version"],
            v1.as_str()
        );
    }
    for replica in &replicas {
        assert_eq!(replica.serving().await, v1);
        assert!(holds(&replica.policy_file, "scripted_policy"));
    }

    // A digest the registry does not hold is refused when it is deployed; nothing is recorded.
    let missing = format!("{}/policies/test@sha256:{}", registry.host, "0".repeat(64));
    let refused = switchyard(
        &["policy", "deploy", "test-policy", &missing],
        &replicas[0].proxy,
    );
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("422") && stderr.contains(&missing),
        "{stderr}"
    );
    let desired = &fleet_status(&replicas[1].proxy).await["desired"]["test-policy"];
    assert_eq!(desired["digest"], ghost.as_str());

    // The registry stopped before the replicas fetch a digest: none changes, each says why and
    // tries again, and all take it once the registry is back.
    let digest = push(&registry, "cost_router", "v2");
    registry.stop();
    let pinned = format!("{}/policies/test@{digest}", registry.host);
    let deployed = switchyard(
        &["policy", "deploy", "test-policy", &pinned],
        &replicas[2].proxy,
    );
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    assert_eq!(text(&deployed.stdout).trim(), digest);
    every_replica(
        &replicas[0].proxy,
        3,
        "every replica fails to fetch the digest",
        |r| r["last_refusal"]["digest"] == digest.as_str() && r["last_refusal"]["retrying"] == true,
    )
    .await;
    for replica in &replicas {
        assert_eq!(replica.serving().await, v1);
    }
    let table = text(&switchyard(&["fleet", "status"], &replicas[1].proxy).stdout);
    assert_eq!(
        table.matches("not the deployed version").count(),
        3,
        "{table}"
    );
    assert_eq!(table.matches("trying again").count(), 3, "{table}");

    registry.start_again();
    for replica in &replicas {
        poll::until(
            "the replica serves the digest once the registry is back",
            Duration::from_secs(30),
            async || (replica.serving().await == v2).then_some(()),
        )
        .await;
    }
}

async fn admin_policy(proxy: &Proxy) -> Value {
    proxy.admin_json("/admin/policies/test-policy").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_entry_naming_an_oci_reference_is_fetched_once_and_kept() {
    let mut registry = Registry::start();
    let mock = MockUpstream::start("m").await;
    let v1_digest = push(&registry, "scripted_policy", "v1");
    let v2_digest = push(&registry, "cost_router", "v2");
    let dir = tempfile::tempdir().unwrap();
    // In a folder that does not exist yet: the first fetch makes it.
    let policy_file = dir.path().join("live/test-policy.wasm");
    let host = registry.host.clone();
    let config = |tag: &str| {
        ConfigBuilder::new(&policy_file)
            .policy_option(&format!("oci = \"{host}/policies/test:{tag}\""))
            .provider("p", &mock.url, None)
            .model("m", "p", "m-up", 1.0, &[])
            .fallback(&["m"])
            .admin()
            .section(&format!("[registry]\nplain_http = [{host:?}]\n"))
            .toml()
    };
    let env = [("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)];
    let replica = Replica {
        proxy: Proxy::start(&config("v1"), &env),
        config: config("v1"),
        policy_file: policy_file.clone(),
        _dir: dir,
    };
    assert_eq!(replica.serving().await, version_of("scripted_policy"));
    assert_eq!(
        admin_policy(&replica.proxy).await["live"]["digest"],
        v1_digest.as_str()
    );
    assert!(holds(&policy_file, "scripted_policy"));
    let record: Value =
        serde_json::from_slice(&std::fs::read(policy_file.with_extension("oci.json")).unwrap())
            .unwrap();
    assert_eq!(record["digest"], v1_digest.as_str());

    // A restart loads the file: no registry needed.
    registry.stop();
    drop(replica.proxy);
    let proxy = Proxy::start(&replica.config, &env);
    assert_eq!(
        admin_policy(&proxy).await["live"]["digest"],
        v1_digest.as_str()
    );

    // A new reference the registry cannot deliver is refused; the old version serves on.
    std::fs::write(proxy.config_path(), config("v2")).unwrap();
    proxy.reload();
    let refused = poll::until(
        "the reload is refused",
        Duration::from_secs(30),
        async || {
            let policy = admin_policy(&proxy).await;
            let events = policy["events"].as_array()?.clone();
            events.into_iter().find(|e| e["kind"] == "refused")
        },
    )
    .await;
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("cannot fetch") && message.contains("policies/test:v2"),
        "{message}"
    );
    assert_eq!(
        admin_policy(&proxy).await["live"]["digest"],
        v1_digest.as_str()
    );

    // Once the registry is back, the reload fetches it.
    registry.start_again();
    proxy.reload();
    poll::until(
        "the new reference is live",
        Duration::from_secs(30),
        async || (admin_policy(&proxy).await["live"]["digest"] == v2_digest.as_str()).then_some(()),
    )
    .await;
    poll::until(
        "the fetched version is written to the file",
        Duration::from_secs(30),
        async || holds(&policy_file, "cost_router").then_some(()),
    )
    .await;

    // Without `[state]`, a deploy puts the digest live on this replica at once, and a restart
    // keeps it although the entry still names `v2`.
    let v1 = format!("{host}/policies/test:v1");
    let deployed = switchyard(&["policy", "deploy", "test-policy", &v1], &proxy);
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    assert_eq!(text(&deployed.stdout).trim(), v1_digest);
    assert!(
        text(&deployed.stderr).contains("live on this replica"),
        "{}",
        text(&deployed.stderr)
    );
    assert_eq!(
        admin_policy(&proxy).await["live"]["digest"],
        v1_digest.as_str()
    );
    assert!(holds(&policy_file, "scripted_policy"));
    registry.stop();
    let restarted = Proxy::start(&std::fs::read_to_string(proxy.config_path()).unwrap(), &env);
    assert_eq!(
        admin_policy(&restarted).await["live"]["digest"],
        v1_digest.as_str()
    );
}

/// Whether `file` holds the test plugin component `name`.
fn holds(file: &std::path::Path, name: &str) -> bool {
    std::fs::read(file).ok() == std::fs::read(policy_wasm(name)).ok()
}

/// The fleet's candidate as `proxy` sees it (an error object when it has none).
async fn candidate(proxy: &Proxy) -> Value {
    proxy
        .admin_json("/admin/policies/test-policy/candidate")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_tries_one_candidate_on_every_replica() {
    let (redis, registry, _mock, replicas) = start_fleet(300).await;
    let v1 = version_of("scripted_policy");
    let candidate_version = version_of("first_contract_policy");
    let digest = push(&registry, "first_contract_policy", "candidate");
    let reference = format!("{}/policies/test:candidate", registry.host);
    let rollout = |args: &[&str], at: &Replica| {
        let mut all = vec!["policy", "rollout", "test-policy"];
        all.extend_from_slice(args);
        let done = switchyard(&all, &at.proxy);
        assert!(done.status.success(), "{args:?}: {}", text(&done.stderr));
        text(&done.stdout)
    };

    // In a fleet a candidate comes from a reference, which every replica can fetch.
    let component = reqwest::Client::new()
        .put(
            replicas[0]
                .proxy
                .admin_url("/admin/policies/test-policy/candidate?shadow=1"),
        )
        .bearer_auth(ADMIN_TOKEN)
        .body(std::fs::read(policy_wasm("first_contract_policy")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(component.status(), 409);

    // Started on one replica, tried on all three; the status adds their shadows up.
    rollout(&["start", &reference, "--shadow"], &replicas[0]);
    for replica in &replicas {
        poll::until(
            "the replica tries the candidate",
            Duration::from_secs(30),
            async || (candidate(&replica.proxy).await["digest"] == digest.as_str()).then_some(()),
        )
        .await;
    }
    for replica in &replicas {
        for _ in 0..10 {
            assert_eq!(replica.serving().await, v1, "a shadow changes no answer");
        }
    }
    let fleet = poll::until(
        "30 decisions counted over 3 replicas",
        Duration::from_secs(30),
        async || {
            // (A busy machine may drop a shadow decision: counted, not compared.)
            let fleet = candidate(&replicas[1].proxy).await["fleet"].clone();
            let report = &fleet["report"];
            let counted = report["pairs"].as_u64()? + report["dropped"].as_u64()?;
            (fleet["replicas"] == 3 && counted == 30).then_some(fleet)
        },
    )
    .await;
    let pairs = fleet["report"]["pairs"].clone();
    assert!(pairs.as_u64().unwrap() > 0, "{fleet}");
    assert_eq!(fleet["report"]["confusion"]["m"]["m"], pairs, "{fleet}");
    let table = rollout(&["status"], &replicas[2]);
    assert!(
        table.contains("added up over 3 replicas")
            && table.contains(&format!("decisions compared  {pairs}")),
        "{table}"
    );

    // Aborted on another replica, it ends everywhere.
    rollout(&["abort"], &replicas[2]);
    for replica in &replicas {
        poll::until("the candidate ends", Duration::from_secs(30), async || {
            (candidate(&replica.proxy).await["error"]["code"] == "no_candidate").then_some(())
        })
        .await;
    }

    // A split is sticky across replicas: one user lands in one arm wherever it goes.
    rollout(
        &[
            "start",
            &reference,
            "--split",
            "50",
            "--sticky",
            "header:x-user",
        ],
        &replicas[1],
    );
    for replica in &replicas {
        poll::until("the replica splits", Duration::from_secs(30), async || {
            (candidate(&replica.proxy).await["mode"]["mode"] == "split").then_some(())
        })
        .await;
    }
    let mut arms = std::collections::BTreeSet::new();
    for user in 0..20 {
        let user = format!("user-{user}");
        let mut seen = std::collections::BTreeSet::new();
        for replica in &replicas {
            seen.insert(replica.serving_with(&[("x-user", &user)]).await);
        }
        assert_eq!(seen.len(), 1, "{user} saw {seen:?}");
        arms.extend(seen);
    }
    assert_eq!(arms.len(), 2, "both arms have users: {arms:?}");

    // A share one replica steps up to (as its rollout rule would, here written in Redis as it
    // writes it) is taken up by every replica: a user stays in one arm everywhere.
    let key = "switchyard:{rollout}:candidate:test-policy";
    let mut redis = redis.connection().await;
    let mut run: Value = serde_json::from_str(
        &redis::AsyncCommands::get::<_, String>(&mut redis, key)
            .await
            .unwrap(),
    )
    .unwrap();
    run["mode"]["percent"] = json!(100.0);
    redis::AsyncCommands::set::<_, _, ()>(&mut redis, key, run.to_string())
        .await
        .unwrap();
    for replica in &replicas {
        poll::until(
            "the replica takes the share up",
            Duration::from_secs(30),
            async || (candidate(&replica.proxy).await["split"]["percent"] == 100.0).then_some(()),
        )
        .await;
        assert_eq!(
            replica.serving_with(&[("x-user", "anyone")]).await,
            candidate_version
        );
    }

    // Promoted on one replica: its digest is deployed, and every replica serves it.
    rollout(&["promote"], &replicas[0]);
    for replica in &replicas {
        // (The split was at 100%: the live version, not the answers, shows the promotion.)
        poll::until(
            "the replica runs the promoted candidate as its live version",
            Duration::from_secs(30),
            async || {
                let live = admin_policy(&replica.proxy).await["live"]["digest"].clone();
                let ended = candidate(&replica.proxy).await["error"]["code"] == "no_candidate";
                (live == digest.as_str() && ended).then_some(())
            },
        )
        .await;
        assert_eq!(replica.serving().await, candidate_version);
    }
    assert_eq!(
        fleet_status(&replicas[0].proxy).await["desired"]["test-policy"]["digest"],
        digest.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_s_candidate_run_is_stepped_and_ended_only_as_itself() {
    use switchyard::config::StateConfig;
    use switchyard::fleet::{Fleet, FleetCandidate};
    let redis = Redis::start();
    let config: StateConfig = toml::from_str(&format!(
        "redis_url = {:?}\ntimeout_ms = 5000\n",
        redis.url()
    ))
    .unwrap();
    let fleet = Fleet::new(&config).unwrap();
    let run = FleetCandidate {
        id: "run-1".into(),
        reference: "registry.example/policies/p@sha256:00".into(),
        digest: "sha256:00".into(),
        mode: json!({"mode": "split", "percent": 20.0, "sticky": "key"}),
        by: "test".into(),
    };
    fleet.start_candidate("p", &run).await.unwrap();
    let percent = async || fleet.candidate("p").await.unwrap().unwrap().mode["percent"].clone();
    fleet.step_candidate("p", "run-1", 60.0).await.unwrap();
    assert_eq!(percent().await, 60.0);
    fleet.step_candidate("p", "run-1", 40.0).await.unwrap();
    assert_eq!(percent().await, 60.0, "a share only goes up");
    fleet.step_candidate("p", "run-0", 100.0).await.unwrap();
    assert_eq!(percent().await, 60.0, "another run's step changes nothing");
    assert!(!fleet.end_candidate("p", "run-0").await.unwrap());
    assert!(fleet.candidate("p").await.unwrap().is_some());
    assert!(fleet.end_candidate("p", "run-1").await.unwrap());
    assert_eq!(fleet.candidate("p").await.unwrap(), None);
}
