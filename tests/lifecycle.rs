//! The policy lifecycle end to end: hot swaps under load through the watched file and the admin
//! API, refused versions that name their fault while the old version keeps serving, automatic
//! rollback, half-written files, config reloads, the admin token and the compile cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_e2e::{
    ADMIN_TOKEN, ConfigBuilder, Proxy, chat, metric, policy_version, policy_wasm, poll,
};

/// A new version must be serving this soon after its file was written or its upload answered.
const SWAP_BOUND: Duration = Duration::from_secs(1);

/// Two policy versions that decide differently on a short prompt: the scripted policy routes to
/// the first catalog model (`a`), the cost router to the cheapest `cheap` one (`b`).
struct Versions {
    scripted: Vec<u8>,
    router: Vec<u8>,
}

impl Versions {
    fn read() -> Self {
        Self {
            scripted: std::fs::read(policy_wasm("scripted_policy")).unwrap(),
            router: std::fs::read(policy_wasm("cost_router")).unwrap(),
        }
    }

    /// The model each version routes a short prompt to, by version string.
    fn model_of(&self, version: &str) -> &'static str {
        if version == policy_version("test-policy", &self.scripted) {
            "a"
        } else if version == policy_version("test-policy", &self.router) {
            "b"
        } else {
            panic!("a version that was never deployed served: {version}")
        }
    }
}

/// A policy file in a folder of its own holding `bytes`, and a config with the admin API on,
/// models `a` and `b` on the echo provider, and that file as `test-policy`.
fn setup(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, ConfigBuilder) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.wasm");
    std::fs::write(&file, bytes).unwrap();
    let config = ConfigBuilder::new(&file)
        .admin()
        .echo()
        .model("a", "echo", "a", 2.0, &["reasoning"])
        .model("b", "echo", "b", 0.5, &["cheap"])
        .fallback(&["a"]);
    (dir, file, config)
}

fn start(config: &ConfigBuilder) -> Proxy {
    Proxy::start(&config.toml(), &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)])
}

/// One request's outcome: status, policy version and model.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    version: String,
    model: String,
}

async fn ask(client: &reqwest::Client, proxy: &Proxy, headers: &[(&str, &str)]) -> Seen {
    let question = chat("auto", "What is the capital of France?");
    let reply = proxy.chat(client, None, &question, headers).await;
    Seen {
        status: reply.status,
        version: reply.header("x-switchyard-policy").to_string(),
        model: reply.header("x-switchyard-model").to_string(),
    }
}

async fn upload(proxy: &Proxy, token: &str, bytes: &[u8]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .put(proxy.admin_url("/admin/policies/test-policy"))
        .bearer_auth(token)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("the admin API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn admin_get(proxy: &Proxy, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(proxy.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the admin API answers");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON")
}

/// Send requests until one is served by `version`; how long that took from `since`. Panics past
/// [`SWAP_BOUND`].
async fn wait_for_version(
    client: &reqwest::Client,
    proxy: &Proxy,
    version: &str,
    since: Instant,
    seen: &mut Vec<Seen>,
) -> Duration {
    let left = SWAP_BOUND.saturating_sub(since.elapsed());
    poll::until(format!("{version} serving"), left, async || {
        let answer = ask(client, proxy, &[]).await;
        let done = answer.version == version;
        seen.push(answer);
        done.then(|| since.elapsed())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_swaps_under_continuous_load_lose_no_request() {
    let versions = Arc::new(Versions::read());
    let (_dir, file, config) = setup(&versions.scripted);
    let proxy = Arc::new(start(&config));
    let scripted = policy_version("test-policy", &versions.scripted);
    let router = policy_version("test-policy", &versions.router);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (proxy, stop) = (proxy.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(ask(&client, &proxy, &[]).await);
                }
                seen
            })
        })
        .collect();

    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut file_swaps = Vec::new();
    for i in 0..40 {
        let (bytes, version) = if i % 2 == 0 {
            (&versions.router, &router)
        } else {
            (&versions.scripted, &scripted)
        };
        let started = Instant::now();
        if i % 4 < 2 {
            std::fs::write(&file, bytes).unwrap();
            file_swaps.push(wait_for_version(&client, &proxy, version, started, &mut seen).await);
        } else {
            let (status, body) = upload(&proxy, ADMIN_TOKEN, bytes).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["version"], **version);
            wait_for_version(&client, &proxy, version, started, &mut seen).await;
        }
    }
    // Keep the load on until it has seen at least 2000 requests in all.
    while seen.len() + clients.len() * 500 < 2000 {
        seen.push(ask(&client, &proxy, &[]).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for handle in clients {
        seen.extend(handle.await.unwrap());
    }

    assert!(seen.len() >= 2000, "only {} requests", seen.len());
    let failed: Vec<&Seen> = seen.iter().filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    for s in &seen {
        assert_eq!(
            s.model,
            versions.model_of(&s.version),
            "a request decided by {} was served by another version's route",
            s.version
        );
    }
    file_swaps.sort();
    let median = file_swaps[file_swaps.len() / 2];
    eprintln!(
        "swap test: {} requests, 0 failed; file write to new version serving over {} swaps: median {:?}, max {:?}",
        seen.len(),
        file_swaps.len(),
        median,
        file_swaps.last().unwrap()
    );
}

/// Components that must never go live, with a piece of the message that names their fault.
fn refused_components() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let random: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let component = |name| std::fs::read(policy_wasm(name)).unwrap();
    vec![
        ("random bytes", random, "it is not WebAssembly"),
        (
            "a core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "it is a core WebAssembly module, not a component",
        ),
        (
            "another world",
            component("other_world_policy"),
            "it does not export the function `decide` of switchyard:policy@0.1.2 (its exports: greet)",
        ),
        (
            "wasi:http",
            component("http_import_policy"),
            "`wasi:http/outgoing-handler@0.2.12`",
        ),
        (
            "an unknown interface",
            component("unknown_import_policy"),
            "it imports `acme:vault/secrets@1.0.0`, which this host does not provide",
        ),
        (
            "a newer contract",
            component("next_version_policy"),
            "it was built for switchyard:policy@0.2.0; this host supports switchyard:policy@0.1.2",
        ),
        (
            "a model outside the catalog",
            component("ghost_route_policy"),
            "it failed the canary: sample request `short question` for team `test-team`: the policy returned an invalid decision: target model `ghost-model` is not in the catalog",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_name_the_fault_and_the_old_version_keeps_serving() {
    let versions = Versions::read();
    let (_dir, file, config) = setup(&versions.scripted);
    let proxy = start(&config);
    let live = policy_version("test-policy", &versions.scripted);
    let client = reqwest::Client::new();

    let components = refused_components();
    for (what, bytes, fault) in &components {
        let (status, body) = upload(&proxy, ADMIN_TOKEN, bytes).await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["error"]["code"], "policy_refused", "{what}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("the new version of policy `test-policy` was refused: "),
            "{what}: {message}"
        );
        assert!(message.contains(fault), "{what}: {message}");

        let answer = ask(&client, &proxy, &[]).await;
        assert_eq!(
            (answer.status, answer.version.as_str()),
            (200, live.as_str()),
            "{what}"
        );
        let policy = admin_get(&proxy, "/admin/policies/test-policy").await;
        let last = policy["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "refused", "{what}");
        assert_eq!(last["trigger"], "upload", "{what}");
        assert!(
            last["message"].as_str().unwrap().contains(fault),
            "{what}: {last}"
        );
        assert_eq!(policy["live"]["version"], *live, "{what}");
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        versions.scripted,
        "a refused upload is not written to the policy file"
    );

    // The same refusals through the watched file, each replaced in one step (a file written in
    // place may be seen half-written first, which is refused too and counted).
    for (what, bytes, fault) in &components[..3] {
        let _ = what;
        switchyard_e2e::replace_file(&file, bytes);
        proxy.log_line(&["refused", "trigger=\"file\"", fault]);
        assert_eq!(ask(&client, &proxy, &[]).await.version, live, "{what}");
    }

    let exposition = proxy.admin_metrics().await;
    let refused = |trigger: &str| {
        metric(
            &exposition,
            "switchyard_policy_reloads_total",
            &[
                ("policy", "test-policy"),
                ("trigger", trigger),
                ("result", "refused"),
            ],
        )
    };
    assert_eq!(refused("upload"), components.len() as f64);
    assert_eq!(refused("file"), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_traps_on_every_call_is_rolled_back_by_itself() {
    let versions = Versions::read();
    let (_dir, file, config) = setup(&versions.router);
    let proxy = start(&config);
    let router = policy_version("test-policy", &versions.router);
    let scripted = policy_version("test-policy", &versions.scripted);
    let client = reqwest::Client::new();
    // The cost router ignores this header; the scripted policy panics on it. The canary sends no
    // such header, so the scripted version passes it and goes live.
    let panic = [("x-test-panic", "boom")];
    assert_eq!(ask(&client, &proxy, &panic).await.version, router);

    let (status, body) = upload(&proxy, ADMIN_TOKEN, &versions.scripted).await;
    assert_eq!(status, 200, "{body}");
    let mut on_new_version = 0;
    loop {
        let answer = ask(&client, &proxy, &panic).await;
        assert_eq!(answer.status, 200, "every request is served");
        if answer.version == router {
            break;
        }
        assert_eq!(answer.version, scripted);
        assert_eq!(
            answer.model, "a",
            "the team's fallback route serves failed decisions"
        );
        on_new_version += 1;
        assert!(on_new_version < 20, "no rollback:\n{}", proxy.logs());
    }
    // The defaults judge 20 first decisions and allow a quarter of them to fail: the sixth
    // failure rolls back.
    assert_eq!(on_new_version, 6);
    let line = proxy.log_line(&["rolled back from", &scripted]);
    assert!(
        line.contains("6 of its first 6 decisions failed") && line.contains("boom"),
        "{line}"
    );
    let policy = admin_get(&proxy, "/admin/policies/test-policy").await;
    assert_eq!(policy["live"]["version"], *router);
    assert_eq!(policy["previous"]["version"], *scripted);
    assert_eq!(policy["previous"]["errors"], 6);
    assert_eq!(policy["previous"]["failures"]["trap"], 6);
    assert!(
        policy["previous"]["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("boom")
    );
    let last = policy["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "rolled-back");
    assert_eq!(last["trigger"], "automatic");
    assert!(
        last["message"].as_str().unwrap().contains("trapped"),
        "{last}"
    );

    // What is live is what a restart loads: the restored version is written back to the file.
    proxy.log_line(&["live version saved to the policy's file", &router]);
    assert_eq!(std::fs::read(&file).unwrap(), versions.router);
    drop(proxy);
    let restarted = start(&config);
    assert_eq!(ask(&client, &restarted, &panic).await.version, router);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_change_rolled_back_by_itself_is_undone_in_the_file() {
    let versions = Versions::read();
    let (_dir, file, config) = setup(&versions.router);
    let proxy = start(&config);
    let router = policy_version("test-policy", &versions.router);
    let scripted = policy_version("test-policy", &versions.scripted);
    let client = reqwest::Client::new();
    let panic = [("x-test-panic", "boom")];

    std::fs::write(&file, &versions.scripted).unwrap();
    let mut seen = Vec::new();
    wait_for_version(&client, &proxy, &scripted, Instant::now(), &mut seen).await;
    for _ in 0..20 {
        if ask(&client, &proxy, &panic).await.version == router {
            break;
        }
    }
    proxy.log_line(&["live version saved to the policy's file", &router]);
    assert_eq!(std::fs::read(&file).unwrap(), versions.router);
    // Writing it back is not taken for a new change of the file.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(proxy.count_log_lines(&["policy file change applied"]), 1);
    assert_eq!(ask(&client, &proxy, &[]).await.version, router);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_files_are_watched_when_the_config_is_named_without_a_folder() {
    let versions = Versions::read();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.wasm"), &versions.scripted).unwrap();
    let config = ConfigBuilder::new(Path::new("p.wasm"))
        .echo()
        .model("a", "echo", "a", 2.0, &["reasoning"])
        .model("b", "echo", "b", 0.5, &["cheap"])
        .fallback(&["a"]);
    std::fs::write(dir.path().join("x.toml"), config.toml()).unwrap();
    let proxy = Proxy::start_in_dir(dir, "x.toml");
    let client = reqwest::Client::new();
    let scripted = policy_version("test-policy", &versions.scripted);
    assert_eq!(ask(&client, &proxy, &[]).await.version, scripted);

    std::fs::write(proxy.dir().join("p.wasm"), &versions.router).unwrap();
    let router = policy_version("test-policy", &versions.router);
    let mut seen = Vec::new();
    wait_for_version(&client, &proxy, &router, Instant::now(), &mut seen).await;
    assert_eq!(
        proxy.count_log_lines(&["cannot watch"]),
        0,
        "{}",
        proxy.logs()
    );
}

/// Reading a policy file is not changing it. notify reports opens and reads too; taken for
/// changes, the proxy's own read of its file set off the next one, a debounce later, for as long
/// as it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_file_that_is_only_read_is_not_read_again() {
    let versions = Versions::read();
    let (_dir, file, config) = setup(&versions.scripted);
    let proxy = start(&config);
    let before = proxy.bytes_read();
    std::fs::read(&file).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let read = proxy.bytes_read() - before;
    assert!(
        read < versions.scripted.len() as u64,
        "an idle proxy read {read} bytes after its {}-byte policy file was only read",
        versions.scripted.len()
    );
    assert_eq!(proxy.count_log_lines(&["refused"]), 0, "{}", proxy.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_never_goes_live() {
    use std::io::Write;

    let versions = Versions::read();
    let (_dir, file, config) = setup(&versions.scripted);
    let proxy = start(&config);
    let scripted = policy_version("test-policy", &versions.scripted);
    let router = policy_version("test-policy", &versions.router);
    let client = reqwest::Client::new();

    let (first, rest) = versions.router.split_at(versions.router.len() / 2);
    let mut writer = std::fs::File::create(&file).unwrap();
    writer.write_all(first).unwrap();
    writer.flush().unwrap();
    // Well past the watcher's debounce: the half file is read, refused, and never serves.
    let pause = Instant::now();
    while pause.elapsed() < Duration::from_millis(1200) {
        let answer = ask(&client, &proxy, &[]).await;
        assert_eq!(
            (answer.status, answer.version.as_str()),
            (200, scripted.as_str())
        );
    }
    proxy.log_line(&["refused", "trigger=\"file\"", "it is not a valid component"]);

    writer.write_all(rest).unwrap();
    drop(writer);
    let written = Instant::now();
    let mut seen = Vec::new();
    wait_for_version(&client, &proxy, &router, written, &mut seen).await;
    assert!(
        seen.iter()
            .all(|s| s.version == scripted || s.version == router)
    );
}

/// Replace `key = old` in the config file at `path`.
fn edit_config(path: &Path, old: &str, new: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(old), "{old} is not in the config");
    std::fs::write(path, text.replacen(old, new, 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reloads_apply_whole_or_not_at_all() {
    let versions = Versions::read();
    let (_dir, _file, config) = setup(&versions.scripted);
    let proxy = start(
        &config
            .keys_required()
            .team_option("keys = [\"sk-first-key-0001\"]"),
    );
    let client = reqwest::Client::new();
    let key = |key: &'static str| [("authorization", format!("Bearer {key}"))];
    let status = |headers: [(&'static str, String); 1]| {
        let (client, proxy) = (&client, &proxy);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            ask(client, proxy, &headers).await.status
        }
    };
    assert_eq!(status(key("sk-first-key-0001")).await, 200);
    assert_eq!(status(key("sk-second-key-002")).await, 401);

    // SIGHUP with a new key for the team: it works once the reload is through.
    edit_config(
        &proxy.config_path(),
        "keys = [\"sk-first-key-0001\"]",
        "keys = [\"sk-first-key-0001\", \"sk-second-key-002\"]",
    );
    proxy.reload();
    proxy.log_line(&["config reloaded", "trigger=\"signal\""]);
    assert_eq!(status(key("sk-second-key-002")).await, 200);

    // A bad config changes nothing: both keys keep working, and the error names the field.
    edit_config(
        &proxy.config_path(),
        "fallback = [\"a\"]",
        "fallback = [\"ghost\"]",
    );
    proxy.reload();
    let line = proxy.log_line(&["the config was not reloaded", "teams[0].fallback[0]"]);
    assert!(line.contains("no model `ghost` in the catalog"), "{line}");
    assert_eq!(status(key("sk-first-key-0001")).await, 200);
    assert_eq!(status(key("sk-second-key-002")).await, 200);

    // Through the admin API, the same refusal is the answer.
    let reload = |token: &'static str| {
        let proxy = &proxy;
        async move {
            let response = reqwest::Client::new()
                .post(proxy.admin_url("/admin/reload"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (code, body) = reload(ADMIN_TOKEN).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("field `teams[0].fallback[0]`: no model `ghost` in the catalog"),
        "{body}"
    );

    // What only a restart can change is refused by name.
    edit_config(
        &proxy.config_path(),
        "fallback = [\"ghost\"]",
        "fallback = [\"a\"]",
    );
    edit_config(
        &proxy.config_path(),
        "[[policies]]",
        "[engine]\ninstances = 300\n[[policies]]",
    );
    let (code, body) = reload(ADMIN_TOKEN).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("it changes `engine`"),
        "{body}"
    );

    // Removing the key again goes through.
    edit_config(&proxy.config_path(), "[engine]\ninstances = 300\n", "");
    edit_config(&proxy.config_path(), ", \"sk-second-key-002\"", "");
    let (code, body) = reload(ADMIN_TOKEN).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["policies"]["test-policy"],
        *policy_version("test-policy", &versions.scripted)
    );
    assert_eq!(status(key("sk-second-key-002")).await, 401);
    assert_eq!(status(key("sk-first-key-0001")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_its_token_and_reports_each_policy() {
    let versions = Versions::read();
    let (_dir, file, config) = setup(&versions.scripted);
    let proxy = start(&config);
    let scripted = policy_version("test-policy", &versions.scripted);
    let admin = reqwest::Client::new();

    for token in [None, Some("wrong-token-0123456789"), Some("")] {
        // A refused upload's connection is closed with its body unread: a client of its own.
        let mut list = admin.get(proxy.admin_url("/admin/policies"));
        let mut put = reqwest::Client::new()
            .put(proxy.admin_url("/admin/policies/test-policy"))
            .body(versions.router.clone());
        if let Some(token) = token {
            list = list.bearer_auth(token);
            put = put.bearer_auth(token);
        }
        let listed = list.send().await.unwrap();
        assert_eq!(listed.status(), 401, "{token:?}");
        let body: Value = listed.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_admin_token");
        assert_eq!(put.send().await.unwrap().status(), 401, "{token:?}");
    }
    let client = reqwest::Client::new();
    assert_eq!(
        ask(&client, &proxy, &[]).await.version,
        scripted,
        "nothing changed"
    );
    assert_eq!(std::fs::read(&file).unwrap(), versions.scripted);

    ask(&client, &proxy, &[("x-test-error", "no idea")]).await;
    let listed = admin_get(&proxy, "/admin/policies").await;
    let policy = &listed["policies"][0];
    assert_eq!(policy["name"], "test-policy");
    assert_eq!(policy["teams"], serde_json::json!(["test-team"]));
    assert_eq!(policy["path"], file.to_str().unwrap());
    let live = &policy["live"];
    assert_eq!(live["version"], *scripted);
    assert_eq!(live["sha256"].as_str().unwrap().len(), 64);
    assert!(live["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(live["decisions"], 2);
    assert_eq!(live["errors"], 1);
    assert_eq!(live["failures"]["error"], 1);
    assert_eq!(
        live["last_error"]["message"],
        "the policy returned an error: no idea"
    );
    assert!(policy["previous"].is_null());

    // An upload is saved to the policy's file; a rollback restores the previous version.
    let (status, body) = upload(&proxy, ADMIN_TOKEN, &versions.router).await;
    assert_eq!(
        (status, body["persisted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), versions.router);
    let rolled = admin
        .post(proxy.admin_url("/admin/policies/test-policy/rollback"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.status(), 200);
    let rolled: Value = rolled.json().await.unwrap();
    assert_eq!(rolled["persisted"], true, "{rolled}");
    assert_eq!(ask(&client, &proxy, &[]).await.version, scripted);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        versions.scripted,
        "a restart loads the restored version"
    );
    let unknown = admin
        .post(proxy.admin_url("/admin/policies/nope/rollback"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[test]
fn a_restart_takes_compiled_policies_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(&policy_wasm("cost_router"))
        .top(&format!("cache_dir = {:?}", cache.path()))
        .echo()
        .model("a", "echo", "a", 1.0, &["cheap"])
        .fallback(&["a"]);
    let first = Proxy::start(&config.toml(), &[]);
    first.log_line(&["policy component prepared", "from_cache=false"]);
    drop(first);
    let second = Proxy::start(&config.toml(), &[]);
    second.log_line(&["policy component prepared", "from_cache=true"]);
    assert_eq!(second.count_log_lines(&["from_cache=false"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cases_file_beside_a_policy_must_pass_before_a_version_goes_live() {
    let versions = Versions::read();
    let (dir, file, config) = setup(&versions.scripted);
    // A short question must go to `a`: true of the scripted policy, not of the cost router.
    std::fs::write(
        dir.path().join("policy.cases.jsonl"),
        r#"{"name": "short questions go to a", "request": {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}, "expect": {"model": "a"}}"#,
    )
    .unwrap();
    let proxy = start(&config);
    let scripted = policy_version("test-policy", &versions.scripted);

    let (status, body) = upload(&proxy, ADMIN_TOKEN, &versions.router).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with(
            "it failed the canary: case `short questions go to a` for team `test-team`: expected model `a` first, got a route to b"
        ),
        "{message}"
    );
    std::fs::write(&file, &versions.router).unwrap();
    proxy.log_line(&[
        "refused",
        "trigger=\"file\"",
        "case `short questions go to a`",
    ]);
    let client = reqwest::Client::new();
    assert_eq!(ask(&client, &proxy, &[]).await.version, scripted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_size_limit_gets_the_admin_api_error_shape() {
    let versions = Versions::read();
    let (_dir, file, config) = setup(&versions.scripted);
    let proxy = start(&config);
    let (status, body) = upload(&proxy, ADMIN_TOKEN, &vec![0; (64 << 20) + 1]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "component_too_large");
    assert_eq!(
        body["error"]["message"],
        "a policy component may be at most 67108864 bytes"
    );
    assert_eq!(std::fs::read(&file).unwrap(), versions.scripted);
}
