//! Project tasks, run as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! - `plugins`: build every policy under `plugins/` (each `cdylib` crate) as a WebAssembly
//!   component with `cargo build --target wasm32-wasip2 --profile wasm`, adding the target with
//!   rustup first if it is missing; then the JavaScript policy `plugins/js-tier-router` with
//!   componentize-js and the Python policy `plugins/python-keyword-router` with componentize-py
//!   (each pinned and installed once, into `target/polyglot-node` from npm and
//!   `target/polyglot-venv` from PyPI), unless their components are newer than their sources.
//!   Components land in `target/wasm32-wasip2/wasm/`.
//! - `run [ARGS]`: build the policies and the release proxy, then run `switchyard serve ARGS`,
//!   with `--config config/switchyard.toml` unless ARGS name a config.
//! - `dist [--floor]`: the proxy to deploy, optimized with a profile of its own request path,
//!   into `target/dist/switchyard`; with `--floor`, the gateway benchmark's floor built the same
//!   way too (see `dist.rs`).
//! - `test [ARGS]`: fetch every package of the lockfile into cargo's cache (`cargo fetch`), build
//!   the policies, the proxy binary and the gateway benchmark's floor
//!   (`bare_proxy`, whose training load a test runs), install the official OpenAI and
//!   Anthropic SDKs (pinned, once) into `target/sdk-venv` (from PyPI) and `target/sdk-node` (from
//!   npm), then `cargo test --workspace ARGS`.
//!
//! It runs cargo, rustup, python3, pip and npm (and the componentize tools they install); those
//! fetch only from their registries.

mod dist;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const WASM_TARGET: &str = "wasm32-wasip2";
/// The OpenAI SDK versions the compatibility tests drive.
/// The official client SDKs the end-to-end tests drive the proxy with, pinned.
const SDKS_PYTHON: [&str; 2] = ["openai==3.57.0", "anthropic==2.14.0"];
const SDKS_NODE: [&str; 2] = ["openai@7.57.0", "@anthropic-ai/sdk@1.14.0"];
/// The tools that build the JavaScript and Python policies, pinned.
const COMPONENTIZE_JS: [&str; 1] = ["@bytecodealliance/componentize-js@0.23.0"];
const COMPONENTIZE_PY: [&str; 1] = ["componentize-py==0.25.1"];

/// The file that marks `packages` as installed in a folder.
fn marker(dir: &Path, packages: &[&str]) -> PathBuf {
    dir.join(format!("installed {}", packages.join(" ")).replace('/', "_"))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = workspace_root();
    match task.as_str() {
        "plugins" => build_plugins(&root),
        "run" => {
            build_plugins(&root)?;
            let mut run = cargo(&root);
            run.args(["run", "--release", "--package", "switchyard", "--", "serve"]);
            let names_config = rest
                .iter()
                .any(|a| a == "--config" || a == "-c" || a.starts_with("--config="));
            if !names_config {
                run.args(["--config", "config/switchyard.toml"]);
            }
            run.args(&rest);
            status(run, "cargo run")
        }
        "dist" => match rest.as_slice() {
            [] => dist::dist(&root, false),
            [floor] if floor == "--floor" => dist::dist(&root, true),
            _ => bail!("usage: cargo xtask dist [--floor]"),
        },
        "test" => {
            // Every package of the lockfile, for every platform, into cargo's cache: a policy
            // scaffolded by the binary resolves against that cache offline (`tests/authoring.rs`),
            // and a build downloads only what this platform compiles.
            let mut fetch = cargo(&root);
            fetch.arg("fetch");
            status(fetch, "cargo fetch")?;
            build_plugins(&root)?;
            ensure_sdk_venv(&root)?;
            ensure_sdk_node(&root)?;
            let mut build = cargo(&root);
            build.args(["build", "--package", "switchyard", "--bin", "switchyard"]);
            build.args(["--example", "bare_proxy"]);
            status(build, "cargo build (proxy binary, benchmark floor)")?;
            let mut test = cargo(&root);
            test.args(["test", "--workspace"]).args(&rest);
            status(test, "cargo test")
        }
        _ => bail!("usage: cargo xtask <plugins | run [ARGS] | dist [--floor] | test [ARGS]>"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

fn status(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Build every `cdylib` crate under `plugins/` for the component target.
fn build_plugins(root: &Path) -> anyhow::Result<()> {
    ensure_target()?;
    let output = cargo(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata output")?;
    let plugins_dir = root.join("plugins");
    let mut build = cargo(root);
    build.args(["build", "--target", WASM_TARGET, "--profile", "wasm"]);
    let mut count = 0;
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let is_cdylib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["crate_types"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c == "cdylib")
            });
        if manifest.starts_with(&plugins_dir) && is_cdylib {
            build.args(["--package", package["name"].as_str().unwrap_or_default()]);
            count += 1;
        }
    }
    if count == 0 {
        bail!("no policy crates found under {}", plugins_dir.display());
    }
    status(build, "building the policies for wasm32-wasip2")?;
    build_js_policy(root)?;
    build_python_policy(root)
}

/// Build `plugins/js-tier-router/policy.js` into `js_tier_router.wasm` with componentize-js, with
/// every WASI feature off, so that the component imports only the policy world's interfaces.
fn build_js_policy(root: &Path) -> anyhow::Result<()> {
    let tools = root.join("target/polyglot-node");
    let source = root.join("plugins/js-tier-router/policy.js");
    let output = wasm_dir(root).join("js_tier_router.wasm");
    let marker = marker(&tools, &COMPONENTIZE_JS);
    if is_fresh(&output, &[&source, &root.join("wit/policy.wit"), &marker]) {
        return Ok(());
    }
    install_once(&marker, || {
        std::fs::create_dir_all(&tools).context("creating target/polyglot-node")?;
        std::fs::write(tools.join("package.json"), "{\"private\": true}\n")
            .context("writing target/polyglot-node/package.json")?;
        let mut install = Command::new("npm");
        install
            .current_dir(&tools)
            .args(["install", "--no-audit", "--no-fund", "--silent"]);
        install.args(COMPONENTIZE_JS);
        status(install, "npm install @bytecodealliance/componentize-js")
    })?;
    replace_built(&output, |partial| {
        let mut build = Command::new(tools.join("node_modules/.bin/componentize-js"));
        build
            .arg(&source)
            .arg("--wit")
            .arg(root.join("wit"))
            .args(["--world-name", "policy"])
            .args(["-d", "stdio", "-d", "random", "-d", "clocks", "-d", "http"])
            .args(["-d", "fetch-event", "-o"])
            .arg(partial);
        status(build, "componentize-js (plugins/js-tier-router)")
    })
}

/// Build `plugins/python-keyword-router/app.py` into `python_keyword_router.wasm` with
/// componentize-py, with WASI stubbed out (its imports become traps), so that the component
/// imports only the policy world's interfaces.
fn build_python_policy(root: &Path) -> anyhow::Result<()> {
    let venv = root.join("target/polyglot-venv");
    let app_dir = root.join("plugins/python-keyword-router");
    let output = wasm_dir(root).join("python_keyword_router.wasm");
    let marker = marker(&venv, &COMPONENTIZE_PY);
    let inputs = [
        &app_dir.join("app.py"),
        &root.join("wit/policy.wit"),
        &marker,
    ];
    if is_fresh(&output, &inputs) {
        return Ok(());
    }
    install_once(&marker, || {
        let mut create = Command::new("python3");
        create.arg("-m").arg("venv").arg(&venv);
        status(create, "python3 -m venv target/polyglot-venv")?;
        let mut install = Command::new(venv.join("bin/pip"));
        install.args(["install", "--quiet", "--disable-pip-version-check"]);
        install.args(COMPONENTIZE_PY);
        status(install, "pip install componentize-py")
    })?;
    // The app is built from a copy, so that neither the bytecode cache the build writes nor
    // other files of the source folder end up in the component or the work tree.
    let staged = venv.join("app");
    if staged.exists() {
        std::fs::remove_dir_all(&staged).context("clearing target/polyglot-venv/app")?;
    }
    std::fs::create_dir(&staged).context("creating target/polyglot-venv/app")?;
    std::fs::copy(app_dir.join("app.py"), staged.join("app.py")).context("copying app.py")?;
    replace_built(&output, |partial| {
        let mut build = Command::new(venv.join("bin/componentize-py"));
        build
            .arg("-d")
            .arg(root.join("wit"))
            .args([
                "-w",
                "policy",
                "--quiet",
                "componentize",
                "--stub-wasi",
                "-p",
            ])
            .arg(&staged)
            .args(["app", "-o"])
            .arg(partial);
        status(build, "componentize-py (plugins/python-keyword-router)")
    })
}

/// Where every policy component lands.
fn wasm_dir(root: &Path) -> PathBuf {
    root.join("target").join(WASM_TARGET).join("wasm")
}

/// `output` exists and is newer than every one of `inputs` (a missing input counts as newer).
fn is_fresh(output: &Path, inputs: &[&PathBuf]) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(output) else {
        return false;
    };
    inputs
        .iter()
        .all(|input| modified(input).is_some_and(|changed| changed <= built))
}

/// Run `build` to write a component at a temporary path beside `output`, then move it over
/// `output` in one step, so that a proxy watching `output` never reads a partial file.
fn replace_built(
    output: &Path,
    build: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = output.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = output.with_extension("wasm.partial");
    let built = build(&partial).and_then(|()| {
        std::fs::rename(&partial, output)
            .with_context(|| format!("moving the component to {}", output.display()))
    });
    if built.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    built
}

/// Add the component target with rustup when it is not installed.
fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("cannot run rustup (it installs the wasm32-wasip2 target)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", WASM_TARGET]);
    status(add, "rustup target add wasm32-wasip2")
}

/// Create `target/sdk-venv` with the official OpenAI and Anthropic Python SDKs, unless they are
/// there already.
fn ensure_sdk_venv(root: &Path) -> anyhow::Result<()> {
    let venv = root.join("target/sdk-venv");
    install_once(&marker(&venv, &SDKS_PYTHON), || {
        let mut create = Command::new("python3");
        create.arg("-m").arg("venv").arg(&venv);
        status(create, "python3 -m venv target/sdk-venv")?;
        let mut install = Command::new(venv.join("bin/pip"));
        install.args(["install", "--quiet", "--disable-pip-version-check"]);
        install.args(SDKS_PYTHON);
        status(install, "pip install openai anthropic")
    })
}

/// Install the official OpenAI and Anthropic Node SDKs into `target/sdk-node`, unless they are
/// there already.
fn ensure_sdk_node(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("target/sdk-node");
    install_once(&marker(&dir, &SDKS_NODE), || {
        std::fs::create_dir_all(&dir).context("creating target/sdk-node")?;
        std::fs::write(dir.join("package.json"), "{\"private\": true}\n")
            .context("writing target/sdk-node/package.json")?;
        let mut install = Command::new("npm");
        install
            .current_dir(&dir)
            .args(["install", "--no-audit", "--no-fund", "--silent"]);
        install.args(SDKS_NODE);
        status(install, "npm install openai @anthropic-ai/sdk")
    })
}

/// Run `install` unless `marker` exists, and create `marker` once it succeeded.
fn install_once(marker: &Path, install: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if marker.exists() {
        return Ok(());
    }
    install()?;
    std::fs::write(marker, "").with_context(|| format!("writing {}", marker.display()))
}
