//! Policy components in a real OCI registry (Debian's `docker-registry`, plain HTTP on a free
//! loopback port): `switchyard policy push` checks a component and pushes it in the Wasm OCI
//! layout, printing its digest; `switchyard policy pull` fetches it back by tag or by digest,
//! verified. What is not a policy is never pushed; a wrong digest or a stopped registry is an
//! error naming the reference.

use std::process::{Command, Output};

use switchyard_e2e::{Registry, policy_wasm, proxy_binary};

fn switchyard(args: &[&str]) -> Output {
    Command::new(proxy_binary())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DOCKER_CONFIG")
        .output()
        .expect("switchyard runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_policy_is_pulled_back_by_tag_and_by_digest() {
    let registry = Registry::start();
    let wasm = policy_wasm("cost_router");
    let reference = format!("{}/policies/cost-router:v1", registry.host);
    let pushed = switchyard(&[
        "policy",
        "push",
        wasm.to_str().unwrap(),
        &reference,
        "--plain-http",
    ]);
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    let digest = text(&pushed.stdout).trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // The manifest is the Wasm OCI layout, as the registry itself serves it.
    let manifest: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/policies/cost-router/manifests/v1",
            registry.host
        ))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");

    let dir = tempfile::tempdir().unwrap();
    let by_digest = format!("{}/policies/cost-router@{digest}", registry.host);
    for (name, from) in [("tag", &reference), ("digest", &by_digest)] {
        let out = dir.path().join(format!("{name}.wasm"));
        let pulled = switchyard(&[
            "policy",
            "pull",
            from,
            "--out",
            out.to_str().unwrap(),
            "--plain-http",
        ]);
        assert!(pulled.status.success(), "{name}: {}", text(&pulled.stderr));
        assert_eq!(text(&pulled.stdout).trim(), digest, "{name}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&wasm).unwrap(),
            "{name}"
        );
    }

    // A digest the registry does not hold.
    let wrong = format!(
        "{}/policies/cost-router@sha256:{}",
        registry.host,
        "0".repeat(64)
    );
    let out = dir.path().join("wrong.wasm");
    let refused = switchyard(&[
        "policy",
        "pull",
        &wrong,
        "--out",
        out.to_str().unwrap(),
        "--plain-http",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains(&wrong),
        "{}",
        text(&refused.stderr)
    );
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_policy_is_never_pushed_and_a_stopped_registry_is_named() {
    let mut registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let reference = format!("{}/policies/junk:v1", registry.host);
    let refused = switchyard(&[
        "policy",
        "push",
        junk.to_str().unwrap(),
        &reference,
        "--plain-http",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("junk.wasm"),
        "{}",
        text(&refused.stderr)
    );
    let tags = reqwest::get(format!(
        "http://{}/v2/policies/junk/tags/list",
        registry.host
    ))
    .await
    .unwrap();
    assert_eq!(tags.status(), 404, "nothing was pushed");

    registry.stop();
    let wasm = policy_wasm("cost_router");
    let failed = switchyard(&[
        "policy",
        "push",
        wasm.to_str().unwrap(),
        &reference,
        "--plain-http",
    ]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = text(&failed.stderr);
    assert!(
        stderr.contains(&reference) && stderr.contains("registry"),
        "{stderr}"
    );
}
