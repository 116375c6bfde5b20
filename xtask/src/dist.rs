//! `cargo xtask dist`: the proxy to deploy, the release build optimized again with a profile of
//! its own request path (profile-guided optimization, PGO).
//!
//! It builds the bundled `cost-router` policy, which the training load runs; the proxy with
//! instrumentation (`-Cprofile-generate`); runs `xtask/pgo_train.py` against that proxy; merges
//! the profile with `llvm-profdata`; and builds the proxy again with it (`-Cprofile-use`). Both
//! builds use the workspace's release profile (fat LTO), each in a target folder of its own under
//! `target/pgo/`, so that neither rebuilds the other nor the plain release build. The result is
//! copied to `target/dist/switchyard`. It needs `python3` and the toolchain's `llvm-tools`
//! component (added with rustup when missing, which needs the network once). It touches nothing
//! outside `target/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{WASM_TARGET, cargo, ensure_target, status, wasm_dir};

/// How long the training load runs, in seconds.
const TRAINING_SECONDS: &str = "20";

/// Build `target/dist/switchyard`.
pub fn dist(root: &Path) -> anyhow::Result<()> {
    build_training_policy(root)?;
    let host = rustc_host()?;
    let profdata = llvm_profdata(&host)?;
    let pgo = root.join("target/pgo");
    let profiles = pgo.join("profiles");
    if profiles.exists() {
        std::fs::remove_dir_all(&profiles)
            .with_context(|| format!("removing the old profiles in {}", profiles.display()))?;
    }
    let flag = format!("-Cprofile-generate={}", profiles.display());
    let instrumented = build_proxy(root, &host, &pgo.join("instrumented"), &flag)?;
    train(root, &instrumented)?;

    let merged = pgo.join("merged.profdata");
    let mut merge = Command::new(&profdata);
    merge.arg("merge").arg("-o").arg(&merged).arg(&profiles);
    status(merge, "llvm-profdata merge")?;

    let flag = format!("-Cprofile-use={}", merged.display());
    let optimized = build_proxy(root, &host, &pgo.join("optimized"), &flag)?;
    let dist = root.join("target/dist");
    std::fs::create_dir_all(&dist).context("creating target/dist")?;
    std::fs::copy(&optimized, dist.join("switchyard"))
        .with_context(|| format!("copying {} to target/dist", optimized.display()))?;
    println!("built {}", dist.join("switchyard").display());
    Ok(())
}

/// Build the bundled `cost-router` policy, the one the training load runs.
fn build_training_policy(root: &Path) -> anyhow::Result<()> {
    ensure_target()?;
    let mut policy = cargo(root);
    policy.args(["build", "--target", WASM_TARGET, "--profile", "wasm"]);
    policy.args(["--package", "cost-router"]);
    status(policy, "cargo build (plugins/cost-router)")
}

/// Run the training load against the `instrumented` proxy, which writes its profile as it exits.
fn train(root: &Path, instrumented: &Path) -> anyhow::Result<()> {
    let mut train = Command::new("python3");
    train
        .arg(root.join("xtask/pgo_train.py"))
        .arg(instrumented)
        .arg(wasm_dir(root).join("cost_router.wasm"))
        .arg(TRAINING_SECONDS);
    status(train, "the training load (xtask/pgo_train.py)")
}

/// Build the release proxy for `host` into `target_dir` with `rustflags`; the binary's path.
///
/// Naming the target keeps the flags off build scripts and procedural macros, which the
/// profile does not cover.
fn build_proxy(
    root: &Path,
    host: &str,
    target_dir: &Path,
    rustflags: &str,
) -> anyhow::Result<PathBuf> {
    let mut build = cargo(root);
    build
        .args([
            "build",
            "--release",
            "--package",
            "switchyard",
            "--bin",
            "switchyard",
        ])
        .args(["--target", host])
        .arg("--target-dir")
        .arg(target_dir)
        .env("RUSTFLAGS", rustflags);
    status(build, &format!("cargo build --release ({rustflags})"))?;
    Ok(target_dir.join(host).join("release/switchyard"))
}

/// The host's target triple, as `rustc -vV` names it.
fn rustc_host() -> anyhow::Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

/// The toolchain's own `llvm-profdata` (its LLVM matches rustc's, which a system LLVM may not),
/// adding the `llvm-tools` component first when it is missing.
fn llvm_profdata(host: &str) -> anyhow::Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let tool = sysroot
        .join("lib/rustlib")
        .join(host)
        .join("bin/llvm-profdata");
    if !tool.exists() {
        let mut add = Command::new("rustup");
        add.args(["component", "add", "llvm-tools"]);
        status(add, "rustup component add llvm-tools")?;
    }
    if !tool.exists() {
        bail!("{} is missing after adding llvm-tools", tool.display());
    }
    Ok(tool)
}
