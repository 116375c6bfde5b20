//! Start-up: the example configs load, and bad config or policy files stop the proxy with a
//! message naming the file and the fault, never a panic; the packaging (the Dockerfile, the
//! systemd unit, the training load of `cargo xtask dist`) agrees with the proxy.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;

use switchyard::config::Config;
use switchyard::control::{App, ConfigSource};
use switchyard_e2e::{
    ConfigBuilder, Exit, Proxy, floor_binary, policy_wasm, proxy_binary, workspace_root,
};

/// Every example config starts the app: policies compile and pass their canary and cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_config_loads_and_validates() {
    let dir = workspace_root().join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let env: HashMap<String, String> = config
                .providers
                .iter()
                .filter_map(|p| p.api_key_env.clone())
                .chain(config.admin.iter().map(|a| a.token_env.clone()))
                .map(|k| (k, "sk-test-0123456789abcdef".into()))
                .collect();
            let source = ConfigSource {
                path: path.clone(),
                listen: None,
            };
            App::start(source, Arc::new(env))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "expected the default, the OpenAI, the multi-provider and the Bedrock examples in {}",
        dir.display()
    );
}

fn fails(config: &str, env: &[(&str, &str)]) -> Exit {
    match Proxy::try_start(config, env) {
        Ok(_) => panic!("the proxy started with a bad config:\n{config}"),
        Err(exit) => {
            assert_eq!(exit.code, Some(1), "exit code; stderr:\n{}", exit.stderr);
            assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
            exit
        }
    }
}

fn base() -> ConfigBuilder {
    ConfigBuilder::new(&policy_wasm("scripted_policy"))
        .provider("p", "http://127.0.0.1:9/v1", None)
        .model("m", "p", "m", 1.0, &[])
        .fallback(&["m"])
}

#[test]
fn a_bad_config_names_the_file_and_field() {
    let exit = fails(&base().fallback(&["ghost"]).toml(), &[]);
    assert!(
        exit.stderr.contains(
            "switchyard.toml: field `teams[0].fallback[0]`: no model `ghost` in the catalog"
        ),
        "{}",
        exit.stderr
    );
    let exit = fails("listen = 12", &[]);
    assert!(
        exit.stderr.contains("switchyard.toml is not valid"),
        "{}",
        exit.stderr
    );
}

#[test]
fn a_missing_key_variable_names_provider_and_variable() {
    let config = base()
        .provider("keyed", "http://127.0.0.1:9/v1", Some("NOT_SET_KEY"))
        .toml();
    let exit = fails(&config, &[]);
    assert!(
        exit.stderr
            .contains("provider `keyed`: environment variable NOT_SET_KEY is not set"),
        "{}",
        exit.stderr
    );
}

#[test]
fn bad_policy_files_name_the_file_and_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wasm");
    let exit = fails(
        &ConfigBuilder::new(&missing)
            .provider("p", "http://127.0.0.1:9/v1", None)
            .model("m", "p", "m", 1.0, &[])
            .fallback(&["m"])
            .toml(),
        &[],
    );
    assert!(
        exit.stderr.contains(&format!(
            "policy `test-policy` (file {0}): cannot read {0}",
            missing.display()
        )),
        "{}",
        exit.stderr
    );

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm").unwrap();
    let config = ConfigBuilder::new(&garbage)
        .provider("p", "http://127.0.0.1:9/v1", None)
        .model("m", "p", "m", 1.0, &[])
        .fallback(&["m"]);
    let exit = fails(&config.toml(), &[]);
    assert!(
        exit.stderr.contains(&format!(
            "policy `test-policy` (file {}): it is not WebAssembly",
            garbage.display()
        )),
        "{}",
        exit.stderr
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let out = std::process::Command::new(switchyard_e2e::proxy_binary())
        .args(["serve", "--config", "/nonexistent/switchyard.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read config file /nonexistent/switchyard.toml"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

/// The packaging files agree with the repository: what the Dockerfile copies from the build
/// context exists, the container config is valid and names the files where the image puts
/// them, and the systemd unit starts the binary where the image and the docs install it.
#[test]
fn the_packaging_files_name_paths_that_exist() {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|source| *source != ".")
        .collect();
    assert!(!copied.is_empty());
    for source in copied {
        assert!(root.join(source).exists(), "the Dockerfile copies {source}");
    }
    for built in [
        "target/wasm32-wasip2/wasm/cost_router.wasm",
        "plugins/cost-router/cases.jsonl",
    ] {
        assert!(
            dockerfile.contains(built),
            "the image is built with {built}"
        );
    }
    assert!(root.join("plugins/cost-router/cases.jsonl").is_file());

    let container = root.join("deploy/container.toml");
    let config = Config::parse(&std::fs::read_to_string(&container).unwrap(), &container)
        .unwrap_or_else(|e| panic!("{e}"));
    let policy = &config.policies[0];
    for (path, placed) in [
        (
            policy.path.to_str().unwrap(),
            "/opt/switchyard/policies/cost_router.wasm",
        ),
        (
            policy.cases.as_deref().and_then(|c| c.to_str()).unwrap(),
            "/opt/switchyard/policies/cost_router.cases.jsonl",
        ),
    ] {
        assert_eq!(path, placed);
        assert!(dockerfile.contains(&format!(
            "/out/policies/{}",
            placed.rsplit('/').next().unwrap()
        )));
    }
    assert!(dockerfile.contains("COPY deploy/container.toml /etc/switchyard/switchyard.toml"));
    assert!(dockerfile.contains("/usr/local/bin/switchyard"));

    let unit = std::fs::read_to_string(root.join("deploy/switchyard.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/switchyard serve --config /etc/switchyard/switchyard.toml"
    ));
}

/// The training load of `cargo xtask dist` gets the answers it expects from the proxy it trains:
/// every kind of request it sends (chat, Anthropic and Responses requests, whole and streamed,
/// fresh and reused instances, and the errors it provokes) was answered with its status, and
/// the proxy exited cleanly on SIGTERM, which is when an instrumented build writes its profile.
/// Otherwise the optimized build would be tuned to paths that no longer serve those requests.
#[test]
fn the_dist_training_load_is_answered_as_it_expects() {
    let stdout = training_load(&[
        proxy_binary().as_os_str(),
        policy_wasm("cost_router").as_os_str(),
    ]);
    for (kind, status) in [
        ("chat, streamed", "200"),
        ("anthropic, streamed", "200"),
        ("responses", "200"),
        ("bad key", "401"),
    ] {
        let statuses = stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("  {kind}: ")));
        assert!(
            got(statuses, status),
            "{kind} never got {status}:\n{stdout}"
        );
    }
}

/// The floor's training load (`cargo xtask dist --floor`, for `bench/run.sh --dist`) gets a
/// 200 from each of the floor's four modes, and each mode exits cleanly on SIGTERM, which is when
/// an instrumented build writes its profile.
#[test]
fn the_floor_training_load_is_answered_in_every_mode() {
    let stdout = training_load(&[OsStr::new("--floor"), floor_binary().as_os_str()]);
    for mode in ["hyper-hyper", "axum-hyper", "hyper-reqwest", "axum-reqwest"] {
        let statuses = stdout
            .split_once(&format!(" {mode}\n"))
            .and_then(|(_, rest)| rest.lines().next()?.strip_prefix("  chat: "));
        assert!(got(statuses, "200"), "{mode} unanswered:\n{stdout}");
    }
}

/// Whether a kind's `statuses` as the training load prints them (`STATUS: COUNT, ...`, in the
/// order each first came; on a busy machine a slow first answer may come before the first 200)
/// include `status`.
fn got(statuses: Option<&str>, status: &str) -> bool {
    statuses.is_some_and(|s| {
        s.split(", ")
            .any(|pair| pair.split(": ").next() == Some(status))
    })
}

/// Run `xtask/pgo_train.py ARGS 2` (two seconds of load); what it printed, once it succeeded.
fn training_load(args: &[&OsStr]) -> String {
    let out = std::process::Command::new("python3")
        .arg(workspace_root().join("xtask/pgo_train.py"))
        .args(args)
        .arg("2")
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
}
