//! `deploy/fleet/`, the Docker Compose fleet (three replicas behind nginx, Redis, an OCI registry
//! and a `seed` service that pushes the bundled policy), is checked without Docker and then run
//! with local processes. The compose file is parsed as YAML, merge keys applied as Compose does:
//! three replicas each mount the folder holding `switchyard.toml` as their config and a volume of
//! their own where the config keeps the live policy, Redis runs with `--appendonly yes`, the seed
//! pushes exactly the reference the config's `oci` names, and nginx balances over the three
//! replicas. The replica config, loaded with the proxy's own loader, names the compose services'
//! hosts and ports. Then the fleet runs on loopback: a real Redis and registry, the seed's push
//! with the real binary, and three replicas started from the config with only its hosts, ports and
//! image paths swapped for local ones; each serves the pulled policy and `GET /admin/fleet` lists
//! all three.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use switchyard::config::Config;
use switchyard_e2e::{
    ADMIN_TOKEN, Proxy, Redis, Registry, chat, policy_version, policy_wasm, poll, proxy_binary,
    workspace_root,
};

/// The replicas' service names.
const REPLICAS: [&str; 3] = ["switchyard-1", "switchyard-2", "switchyard-3"];

fn fleet_dir() -> PathBuf {
    workspace_root().join("deploy/fleet")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn has_merge_key(value: &Yaml) -> bool {
    match value {
        Yaml::Mapping(mapping) => mapping
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Yaml::Sequence(items) => items.iter().any(has_merge_key),
        _ => false,
    }
}

/// `compose.yaml` with its `<<` merge keys applied, as Compose reads it. A merged mapping may
/// merge another in turn (`x-switchyard` merges `x-image`), which one pass leaves behind.
fn compose() -> Yaml {
    let text = read(&fleet_dir().join("compose.yaml"));
    let mut compose: Yaml = serde_yaml_ng::from_str(&text).expect("compose.yaml is YAML");
    for _ in 0..8 {
        if !has_merge_key(&compose) {
            break;
        }
        compose.apply_merge().expect("valid merge keys");
    }
    assert!(!has_merge_key(&compose), "merge keys left after merging");
    compose
}

fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "compose.yaml has no service {name}");
    service
}

fn text(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string: {value:?}"))
}

/// A command, as a list of words.
fn words(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(line) => line.split_whitespace().map(String::from).collect(),
        Yaml::Sequence(items) => items.iter().map(|w| text(w).to_string()).collect(),
        other => panic!("a command: {other:?}"),
    }
}

/// A service's volumes in short syntax: (source, target, read-only).
fn mounts(service: &Yaml) -> Vec<(String, String, bool)> {
    let Some(volumes) = service["volumes"].as_sequence() else {
        return Vec::new();
    };
    volumes
        .iter()
        .map(|v| {
            let parts: Vec<&str> = text(v).split(':').collect();
            match parts[..] {
                [source, target] => (source.into(), target.into(), false),
                [source, target, mode] => (source.into(), target.into(), mode == "ro"),
                _ => panic!("a volume SOURCE:TARGET[:MODE]: {v:?}"),
            }
        })
        .collect()
}

/// The mount whose target is `target`.
fn mount_at(service: &Yaml, target: &Path) -> (String, bool) {
    mounts(service)
        .into_iter()
        .find(|(_, t, _)| Path::new(t) == target)
        .map(|(source, _, ro)| (source, ro))
        .unwrap_or_else(|| panic!("nothing mounted at {}: {service:?}", target.display()))
}

/// A volume source that names a volume of the compose file rather than a host path.
fn is_named_volume(source: &str) -> bool {
    !source.starts_with(['.', '/', '~'])
}

/// The condition a service's `depends_on` sets for `other`.
fn condition<'a>(service: &'a Yaml, other: &str) -> &'a str {
    text(&service["depends_on"][other]["condition"])
}

/// Where a service's `build` takes its context, resolved against the compose file's folder.
fn build_context(service: &Yaml) -> PathBuf {
    let context = text(&service["build"]["context"]);
    fleet_dir()
        .join(context)
        .canonicalize()
        .expect("the build context exists")
}

/// The replica config as the proxy loads it, and its text.
fn fleet_config() -> (String, Config) {
    let path = fleet_dir().join("switchyard.toml");
    let toml = read(&path);
    let config = Config::parse(&toml, &path).unwrap_or_else(|e| panic!("{e}"));
    (toml, config)
}

/// `HOST:PORT` of a URL or reference, up to the first `/`.
fn host_port(address: &str) -> (&str, u16) {
    let authority = address.split('/').next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {address}"));
    (host, port.parse().expect("a port"))
}

/// The `server HOST:PORT` lines of nginx.conf's `upstream NAME { ... }` block, and NAME.
fn nginx_upstream() -> (String, BTreeSet<String>) {
    let conf = read(&fleet_dir().join("nginx.conf"));
    let lines: Vec<&str> = conf
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("upstream "))
        .expect("an upstream block");
    let name = lines[start]
        .trim_start_matches("upstream ")
        .trim_end_matches('{')
        .trim()
        .to_string();
    let servers = lines[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with('}'))
        .filter_map(|l| l.strip_prefix("server "))
        .map(|l| l.split_whitespace().next().unwrap().trim_end_matches(';'))
        .map(String::from)
        .collect();
    (name, servers)
}

#[test]
fn the_compose_file_describes_three_replicas_redis_a_registry_and_a_balancer() {
    let compose = compose();
    let (_, config) = fleet_config();
    let services = compose["services"].as_mapping().expect("services");
    let root = workspace_root().canonicalize().unwrap();

    // The replicas: every service serving the proxy.
    let serving: Vec<&str> = services
        .iter()
        .filter(|(_, s)| !s["command"].is_null() && words(&s["command"])[0] == "serve")
        .map(|(name, _)| text(name))
        .collect();
    assert_eq!(serving, REPLICAS);

    let policy = &config.policies[0];
    let policy_folder = policy.path.parent().expect("the policy file's folder");
    let admin = config.admin.as_ref().expect("an [admin] table");
    let mut own_volumes = BTreeSet::new();
    let mut admin_ports = BTreeSet::new();
    for name in REPLICAS {
        let replica = service(&compose, name);
        assert_eq!(
            build_context(replica),
            root,
            "{name} is built from the repository"
        );
        assert!(root.join(text(&replica["build"]["dockerfile"])).is_file());

        let command = words(&replica["command"]);
        let at = command.iter().position(|w| w == "--config").unwrap() + 1;
        let config_file = Path::new(&command[at]);
        let (source, read_only) = mount_at(replica, config_file.parent().unwrap());
        assert!(read_only, "{name} mounts its config folder read-only");
        let mounted = fleet_dir().join(&source);
        assert!(
            mounted.join(config_file.file_name().unwrap()).is_file(),
            "{name}'s config folder {source} holds {}",
            config_file.display()
        );
        assert_eq!(
            mounted.canonicalize().unwrap(),
            fleet_dir().canonicalize().unwrap()
        );

        // The live policy is written into a volume of the replica's own.
        let (volume, read_only) = mount_at(replica, policy_folder);
        assert!(!read_only && is_named_volume(&volume), "{name}: {volume}");
        assert!(
            compose["volumes"].get(&volume).is_some(),
            "{volume} declared"
        );
        assert!(own_volumes.insert(volume), "{name} shares its volume");

        let token = text(&replica["environment"][admin.token_env.as_str()]);
        assert!(
            token.starts_with(&format!("${{{}", admin.token_env)),
            "{token}"
        );
        assert_eq!(condition(replica, "redis"), "service_healthy");
        assert_eq!(condition(replica, "seed"), "service_completed_successfully");

        // Only the admin API is published, on the host's loopback.
        let ports = replica["ports"].as_sequence().expect("ports");
        assert_eq!(ports.len(), 1, "{name}: {ports:?}");
        let port: Vec<&str> = text(&ports[0]).split(':').collect();
        assert_eq!(port[0], "127.0.0.1", "{name}: {ports:?}");
        assert_eq!(port[2], admin.listen.port().to_string());
        assert!(admin_ports.insert(port[1].to_string()));
    }

    let redis = service(&compose, "redis");
    assert!(text(&redis["image"]).starts_with("redis:"));
    let command = words(&redis["command"]);
    assert!(
        command.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "Redis persists: {command:?}"
    );
    assert!(is_named_volume(&mount_at(redis, Path::new("/data")).0));

    let registry = service(&compose, "registry");
    assert!(text(&registry["image"]).starts_with("registry:"));
    assert!(is_named_volume(
        &mount_at(registry, Path::new("/var/lib/registry")).0
    ));

    // The seed pushes the policy the image holds as exactly the reference the replicas pull.
    let seed = service(&compose, "seed");
    assert_eq!(build_context(seed), root);
    assert_eq!(seed["image"], service(&compose, REPLICAS[0])["image"]);
    let dockerfile = read(&root.join("Dockerfile"));
    let bundled = "/opt/switchyard/policies/cost_router.wasm";
    assert!(dockerfile.contains("/out/policies/cost_router.wasm"));
    assert!(dockerfile.contains("COPY --from=build /out/policies/ /opt/switchyard/policies/"));
    let oci = policy
        .oci
        .as_deref()
        .expect("the policy comes from the registry");
    assert_eq!(
        words(&seed["command"]),
        ["policy", "push", bundled, oci, "--plain-http"]
    );
    assert_eq!(condition(seed, "registry"), "service_healthy");
    assert_eq!(seed["restart"], "no");

    // The balancer: the three replicas' client port, round robin.
    let lb = service(&compose, "lb");
    assert!(text(&lb["image"]).starts_with("nginx:"));
    let (source, read_only) = mount_at(lb, Path::new("/etc/nginx/conf.d/default.conf"));
    assert!(read_only);
    assert_eq!(
        fleet_dir().join(source).canonicalize().unwrap(),
        fleet_dir().join("nginx.conf").canonicalize().unwrap()
    );
    let (upstream, servers) = nginx_upstream();
    let expected: BTreeSet<String> = REPLICAS
        .iter()
        .map(|r| format!("{r}:{}", config.listen.port()))
        .collect();
    assert_eq!(servers, expected);
    let conf = read(&fleet_dir().join("nginx.conf"));
    assert!(conf.contains(&format!("proxy_pass http://{upstream};")));
    assert!(conf.contains("listen 8080;"));
    assert_eq!(lb["ports"][0], "8080:8080");
}

#[test]
fn the_replica_config_names_the_compose_services() {
    let compose = compose();
    let (_, config) = fleet_config();
    let image_service = |host: &str, image: &str| {
        let found = text(&service(&compose, host)["image"]);
        assert!(found.starts_with(image), "{host} runs {found}");
    };

    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    let admin = config.admin.as_ref().expect("an [admin] table");
    assert!(admin.listen.ip().is_unspecified(), "reached through a port");

    // Redis, on its default port.
    let state = config.state.as_ref().expect("a [state] table");
    let address = state.redis_url.strip_prefix("redis://").expect("redis://");
    let (host, port) = host_port(address);
    image_service(host, "redis:");
    assert_eq!(port, 6379);

    // The registry, on the port it listens on (and the host publishes on loopback).
    assert_eq!(config.registry.plain_http, ["registry:5000"]);
    let (host, port) = host_port(&config.registry.plain_http[0]);
    image_service(host, "registry:");
    let published = text(&service(&compose, host)["ports"][0]);
    assert_eq!(published, format!("127.0.0.1:{port}:{port}"));

    let policy = &config.policies[0];
    assert_eq!(policy.name, "cost-router");
    let oci = policy.oci.as_deref().expect("an oci reference");
    assert!(
        oci.starts_with(&format!("{}/", config.registry.plain_http[0])),
        "{oci}"
    );
    assert!(
        config.teams.iter().all(|t| t.policy == policy.name),
        "every team is routed by the pulled policy"
    );

    // The live version is kept in the folder the image creates for the nonroot user, so the
    // volume mounted on it is theirs; the cases come with the image.
    let dockerfile = read(&workspace_root().join("Dockerfile"));
    let folder = policy.path.parent().unwrap().to_str().unwrap();
    assert_eq!(folder, "/home/nonroot/.cache");
    assert!(dockerfile.contains(&format!(
        "--chown=65532:65532 --chmod=0700 /out/cache {folder}"
    )));
    assert!(dockerfile.contains("USER 65532:65532"));
    let cases = policy.cases.as_deref().unwrap().to_str().unwrap();
    assert_eq!(cases, "/opt/switchyard/policies/cost_router.cases.jsonl");
    assert!(
        dockerfile
            .contains("plugins/cost-router/cases.jsonl /out/policies/cost_router.cases.jsonl")
    );

    // Keyless requests are served, so the fleet answers out of the box.
    let anonymous = config
        .auth
        .anonymous_team
        .as_deref()
        .expect("a keyless team");
    assert!(config.teams.iter().any(|t| t.name == anonymous));
    assert!(config.teams.iter().all(|t| t.budget.is_some()));
}

/// `text` with `from` replaced by `to`, which it must contain.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the config has no {from}");
    text.replace(from, to)
}

/// A replica of the compose fleet as a local process: the config's hosts are the local Redis
/// and registry, its listeners loopback port 0, and its paths in `dir` (standing for the
/// replica's volume) and `cases` (for the image's copy).
fn local_config(
    toml: &str,
    redis: &Redis,
    registry: &Registry,
    dir: &Path,
    cases: &Path,
) -> String {
    let toml = swap(toml, "redis://redis:6379/", &redis.url());
    let toml = swap(&toml, "registry:5000", &registry.host);
    let toml = swap(&toml, "\"0.0.0.0:8080\"", "\"127.0.0.1:0\"");
    let toml = swap(&toml, "\"0.0.0.0:9901\"", "\"127.0.0.1:0\"");
    let toml = swap(
        &toml,
        "\"/opt/switchyard/policies/cost_router.cases.jsonl\"",
        &format!("{:?}", cases.display().to_string()),
    );
    let toml = swap(
        &toml,
        "\"/home/nonroot/.cache/",
        &format!("\"{}/", dir.display()),
    );
    // As in every test: a busy machine must not turn a decision (the canary's included) into a
    // timeout.
    swap(&toml, "deadline_ms = 10\n", "deadline_ms = 1000\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_runs_on_loopback_with_the_policy_the_seed_pushes() {
    let compose = compose();
    let (toml, config) = fleet_config();
    let redis = Redis::start();
    let registry = Registry::start();

    // The seed's command, with the registry's host swapped for the local one.
    let seed = words(&service(&compose, "seed")["command"]);
    let reference = seed[3].replace("registry:5000", &registry.host);
    let wasm = policy_wasm("cost_router");
    let pushed = Command::new(proxy_binary())
        .args(&seed[..2])
        .arg(&wasm)
        .arg(&reference)
        .args(&seed[4..])
        .env_remove("DOCKER_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("switchyard runs");
    let stderr = String::from_utf8_lossy(&pushed.stderr);
    assert!(pushed.status.success(), "the push: {stderr}");
    let digest = String::from_utf8_lossy(&pushed.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let work = tempfile::tempdir().unwrap();
    let cases = work.path().join("cost_router.cases.jsonl");
    std::fs::copy(
        workspace_root().join("plugins/cost-router/cases.jsonl"),
        &cases,
    )
    .unwrap();
    let policy_file = config.policies[0].path.file_name().unwrap().to_owned();
    let mut replicas = Vec::new();
    for name in REPLICAS {
        let volume = work.path().join(name);
        std::fs::create_dir(&volume).unwrap();
        let local = local_config(&toml, &redis, &registry, &volume, &cases);
        let parsed = Config::parse(&local, &work.path().join("switchyard.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.policies[0].path.starts_with(&volume));
        // The image sets XDG_CACHE_HOME to the volume's folder: the compile cache and the cache
        // of pulled components land beside the policy file, as in the container.
        let env = [
            ("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("XDG_CACHE_HOME", volume.to_str().unwrap()),
        ];
        replicas.push((Proxy::start(&local, &env), volume));
    }

    // Every replica serves the pulled policy, and has kept it on its volume for a restart.
    let bundled = std::fs::read(&wasm).unwrap();
    let version = policy_version("cost-router", &bundled);
    let client = reqwest::Client::new();
    for (proxy, volume) in &replicas {
        let body = chat("auto", "What is the capital of France?");
        let reply = proxy.chat(&client, None, &body, &[]).await;
        assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, proxy.logs());
        assert!(
            reply
                .header("x-switchyard-policy")
                .starts_with("cost-router@")
        );
        assert_eq!(reply.header("x-switchyard-policy"), version);
        let kept = volume.join(&policy_file);
        poll::until(
            "the pulled policy is kept on the replica's volume",
            Duration::from_secs(30),
            async || (std::fs::read(&kept).ok()? == bundled).then_some(()),
        )
        .await;
        assert!(kept.with_extension("oci.json").is_file());
    }

    // The fleet's view from any replica: three replicas, each running the pushed digest.
    let (first, _) = &replicas[0];
    let status: Json = poll::until(
        "GET /admin/fleet lists the three replicas",
        Duration::from_secs(60),
        async || {
            let status: Json = client
                .get(first.admin_url("/admin/fleet"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let listed = status["replicas"].as_array()?;
            let all = listed.len() == REPLICAS.len()
                && listed
                    .iter()
                    .all(|r| r["report"]["policies"]["cost-router"]["digest"] == digest.as_str());
            all.then_some(status)
        },
    )
    .await;
    assert_eq!(
        status["desired"],
        serde_json::json!({}),
        "nothing deployed yet"
    );

    // What deploy/README.md shows an operator: `switchyard fleet status --admin URL`.
    let table = Command::new(proxy_binary())
        .args(["fleet", "status", "--admin", first.admin.as_ref().unwrap()])
        .env("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("SWITCHYARD_ADMIN_URL")
        .env_remove("RUST_LOG")
        .output()
        .expect("switchyard runs");
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert_eq!(stdout.matches(&version).count(), 3, "{stdout}");
}
