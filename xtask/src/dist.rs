//! `cargo xtask dist`: the proxy to deploy, the release build optimized again with a profile of
//! its own request path (profile-guided optimization, PGO).
//!
//! It builds the bundled `cost-router` policy, which the training load runs; the proxy with
//! instrumentation (`-Cprofile-generate`); runs `xtask/pgo_train.py` against that proxy; merges
//! the profile with `llvm-profdata`; and builds the proxy again with it (`-Cprofile-use`). Both
//! builds use the workspace's release profile (fat LTO), each in a target folder of its own under
//! `target/pgo/`, so that neither rebuilds the other nor the plain release build. The result is
//! copied to `target/dist/switchyard`. With `--floor` it builds the gateway benchmark's floor
//! (`host/examples/bare_proxy.rs`) the same way, from the same instrumented build but a profile
//! of its own (the floor's training load: `pgo_train.py --floor`), into `target/dist/bare_proxy`,
//! so that `bench/run.sh --dist` compares the two built alike. It needs `python3` and the
//! toolchain's `llvm-tools` component (added with rustup when missing, which needs the network
//! once). It touches nothing outside `target/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{WASM_TARGET, cargo, ensure_target, status, wasm_dir};

/// How long the training load runs, in seconds.
const TRAINING_SECONDS: &str = "20";

/// A program `dist` builds.
#[derive(Clone, Copy)]
enum Program {
    /// The proxy: `target/dist/switchyard`.
    Proxy,
    /// The gateway benchmark's floor, `host/examples/bare_proxy.rs`: `target/dist/bare_proxy`.
    Floor,
}

impl Program {
    /// Its folder under `target/pgo/` for the optimized build, and under `target/pgo/profiles/`
    /// for its profile.
    fn name(self) -> &'static str {
        match self {
            Program::Proxy => "proxy",
            Program::Floor => "floor",
        }
    }

    /// Its cargo target, as `cargo build` takes it.
    fn cargo_target(self) -> [&'static str; 2] {
        match self {
            Program::Proxy => ["--bin", "switchyard"],
            Program::Floor => ["--example", "bare_proxy"],
        }
    }

    /// Its binary's name, which it keeps in `target/dist`.
    fn binary_name(self) -> &'static str {
        self.cargo_target()[1]
    }

    /// Its binary in the `release` folder of a build.
    fn binary(self, release: &Path) -> PathBuf {
        match self {
            Program::Proxy => release.join(self.binary_name()),
            Program::Floor => release.join("examples").join(self.binary_name()),
        }
    }

    /// Its training load (`xtask/pgo_train.py`), for its instrumented build in `release`.
    fn training(self, root: &Path, release: &Path) -> Command {
        let mut train = Command::new("python3");
        train.arg(root.join("xtask/pgo_train.py"));
        let binary = self.binary(release);
        match self {
            Program::Proxy => train
                .arg(binary)
                .arg(wasm_dir(root).join("cost_router.wasm")),
            Program::Floor => train.arg("--floor").arg(binary),
        };
        train.arg(TRAINING_SECONDS);
        train
    }
}

/// Build `target/dist/switchyard`, and with `floor` also `target/dist/bare_proxy`.
pub fn dist(root: &Path, floor: bool) -> anyhow::Result<()> {
    build_training_policy(root)?;
    let host = rustc_host()?;
    let pgo = Pgo {
        root,
        profdata: llvm_profdata(&host)?,
        host,
    };
    let profiles = pgo.dir().join("profiles");
    if profiles.exists() {
        std::fs::remove_dir_all(&profiles)
            .with_context(|| format!("removing the old profiles in {}", profiles.display()))?;
    }
    let programs: &[Program] = if floor {
        &[Program::Proxy, Program::Floor]
    } else {
        &[Program::Proxy]
    };
    let instrumented = pgo.dir().join("instrumented");
    let flag = format!("-Cprofile-generate={}", profiles.display());
    build(&pgo, &instrumented, programs, &flag)?;
    let release = instrumented.join(&pgo.host).join("release");
    for &program in programs {
        let raw = profiles.join(program.name());
        let mut train = program.training(root, &release);
        train.env("LLVM_PROFILE_FILE", raw.join("default_%m_%p.profraw"));
        status(train, &format!("the training load ({})", program.name()))?;
        optimize(&pgo, program, &raw)?;
    }
    Ok(())
}

/// Where `dist` builds, for which host, with which `llvm-profdata`.
struct Pgo<'a> {
    root: &'a Path,
    host: String,
    profdata: PathBuf,
}

impl Pgo<'_> {
    /// `target/pgo`.
    fn dir(&self) -> PathBuf {
        self.root.join("target/pgo")
    }
}

/// Merge `program`'s raw profiles in `raw`, build it again with them, and copy the result to
/// `target/dist/`.
fn optimize(pgo: &Pgo, program: Program, raw: &Path) -> anyhow::Result<()> {
    let merged = pgo.dir().join(format!("{}.profdata", program.name()));
    let mut merge = Command::new(&pgo.profdata);
    merge.arg("merge").arg("-o").arg(&merged).arg(raw);
    status(merge, "llvm-profdata merge")?;
    let flag = format!("-Cprofile-use={}", merged.display());
    let optimized = pgo.dir().join(program.name());
    build(pgo, &optimized, &[program], &flag)?;
    let built = program.binary(&optimized.join(&pgo.host).join("release"));
    let dist = pgo.root.join("target/dist");
    std::fs::create_dir_all(&dist).context("creating target/dist")?;
    let copy = dist.join(program.binary_name());
    std::fs::copy(&built, &copy)
        .with_context(|| format!("copying {} to target/dist", built.display()))?;
    println!("built {}", copy.display());
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

/// Build `programs` of the `switchyard` package with the release profile for the host into
/// `target_dir`, with `rustflags`.
///
/// Naming the target keeps the flags off build scripts and procedural macros, which the
/// profile does not cover.
fn build(
    pgo: &Pgo,
    target_dir: &Path,
    programs: &[Program],
    rustflags: &str,
) -> anyhow::Result<()> {
    let mut build = cargo(pgo.root);
    build.args(["build", "--release", "--package", "switchyard"]);
    for program in programs {
        build.args(program.cargo_target());
    }
    build
        .args(["--target", &pgo.host])
        .arg("--target-dir")
        .arg(target_dir)
        .env("RUSTFLAGS", rustflags);
    status(build, &format!("cargo build --release ({rustflags})"))
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
