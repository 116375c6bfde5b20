//! The `switchyard` command line: `switchyard serve --config FILE` runs the proxy;
//! `switchyard policy new|check|test|replay` are the policy author's tools (`authoring`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::PrometheusHandle;
use switchyard::admin::{self, AdminToken, MIN_TOKEN_LEN};
use switchyard::authoring::{self, CatalogSource, LimitOverrides, report, scaffold};
use switchyard::config::{Config, EngineConfig, Env, ProcessEnv};
use switchyard::control::{App, ConfigSource, watch};
use switchyard::server::{self, Gate, Listening};
use switchyard::telemetry::{self, LogFormat, LogWriter};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch as signal_watch;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Edge proxy for LLM traffic, routed by WebAssembly policies"
)]
struct Cli {
    /// Log line format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SWITCHYARD_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Export traces (a span per request, its policy decision and each upstream attempt) by
    /// OTLP over HTTP to this collector, e.g. `http://127.0.0.1:4318`. Off by default.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy. SIGHUP re-reads the config (and the TLS files); SIGINT or SIGTERM stops
    /// it, letting in-flight requests finish for up to `server.drain_timeout_ms`.
    Serve {
        /// The TOML config file.
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Listen on this address instead of the config's `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Run the admin API on this address instead of the config's `admin.listen`.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
    /// Write, check, test and replay routing policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Create a policy crate: a small cost-aware policy with unit tests, a cases file and a
    /// catalog, ready for `cargo build --target wasm32-wasip2 --release`.
    New {
        /// The policy's name (lower case, digits, `-`, `_`); also the crate's.
        name: String,
        /// The folder to create; default `./NAME`.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Switchyard SDK (`plugins/sdk` of a checkout) to depend on; default the checkout
        /// this binary was built from, else the project's git repository.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Check a component as the proxy would before loading it, and say what it imports and
    /// exports. Exits 1 when the proxy would refuse it.
    Check {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a cases file (JSON lines) through a component under its production limits. Exits 1
    /// when a case fails.
    Test {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// The cases file.
        #[arg(long)]
        cases: PathBuf,
        #[command(flatten)]
        setup: Setup,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a candidate component over decisions the proxy recorded (`[decision_log]`) and report
    /// how many change, a sample of them, and the estimated cost difference.
    Replay {
        /// The candidate component (`.wasm`).
        wasm: PathBuf,
        /// The decision log (JSON lines).
        #[arg(long)]
        log: PathBuf,
        /// How many changed decisions to show.
        #[arg(long, default_value_t = 10)]
        sample: usize,
        /// A proxy config whose policy entry (`--policy`, or the one for the same file) sets the
        /// limits.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Replay only the decisions of this policy (by name); default, the config entry's, else
        /// every decision in the log.
        #[arg(long)]
        policy: Option<String>,
        /// Replay only the decisions of this team.
        #[arg(long)]
        team: Option<String>,
        #[command(flatten)]
        limits: Limits,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where `policy test` takes the catalog and limits from.
#[derive(clap::Args)]
struct Setup {
    /// A JSON file listing the catalog's models.
    #[arg(long, conflicts_with = "config")]
    catalog: Option<PathBuf>,
    /// A proxy config: its models (a team's, with `--team` or a case's `team`), and the limits
    /// of its policy entry for the same component file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The config's `[[policies]]` entry whose limits to use and whose teams' catalogs cases
    /// run against; default, the entry whose `path` is the component.
    #[arg(long, requires = "config")]
    policy: Option<String>,
    /// The team for cases that name none; default, every team bound to the policy.
    #[arg(long, requires = "config")]
    team: Option<String>,
    #[command(flatten)]
    limits: Limits,
}

/// Limits that override the config's (or the defaults).
#[derive(clap::Args)]
struct Limits {
    /// The decision deadline, in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// The memory cap, in MiB.
    #[arg(long)]
    memory_mib: Option<u32>,
}

impl From<&Limits> for LimitOverrides {
    fn from(l: &Limits) -> Self {
        Self {
            deadline_ms: l.deadline_ms,
            memory_mib: l.memory_mib,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (level, writer) = match cli.command {
        Command::Serve { .. } => ("info", LogWriter::Batched),
        Command::Policy(_) => ("warn", LogWriter::Inline),
    };
    let telemetry = telemetry::init(cli.log_format, level, writer, cli.otlp_endpoint.as_deref())
        .map_err(anyhow::Error::msg)?;
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            admin_listen,
        } => serve(
            ConfigSource {
                path: config,
                listen,
            },
            admin_listen,
        ),
        Command::Policy(command) => policy_command(command),
    };
    telemetry.shutdown();
    result
}

/// A component loaded for `policy test` or `replay`, with the config it was given.
struct Loaded {
    policy: switchyard::policy::Policy,
    config: Option<Config>,
    /// The name of the config's entry for it, when there is one.
    entry: Option<String>,
}

impl Loaded {
    /// Load `wasm` under the limits of its entry in `config` (by `name`, else by path), or the
    /// defaults, with `limits` over them; say on stderr when a config has no entry for it.
    fn new(
        wasm: &std::path::Path,
        config: Option<&std::path::Path>,
        name: Option<&str>,
        limits: &Limits,
    ) -> anyhow::Result<Self> {
        let config = match config {
            Some(path) => Some(
                Config::load(path)
                    .with_context(|| format!("cannot use config {}", path.display()))?,
            ),
            None => None,
        };
        let entry = match &config {
            Some(config) => authoring::entry_for(wasm, config, name)?,
            None => None,
        };
        if config.is_some() && entry.is_none() {
            eprintln!(
                "note: the config has no [[policies]] entry for {}; running under the default \
                 limits (name its entry with --policy)",
                wasm.display()
            );
        }
        let settings = authoring::settings_for(wasm, entry, limits.into())?;
        let engine = config
            .as_ref()
            .map(|c| c.engine.clone())
            .unwrap_or_default();
        let policy = authoring::load(wasm, settings, &engine, &ProcessEnv)?;
        let entry = entry.map(|e| e.name.clone());
        Ok(Self {
            policy,
            config,
            entry,
        })
    }
}

/// Run a `switchyard policy` command; exit 1 when a check or a case fails.
fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let palette = report::Palette::new(
        stdout.is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    let mut out = stdout.lock();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let passed = match command {
        PolicyCommand::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let sdk = match sdk {
                Some(path) => scaffold::SdkSource::Path(
                    std::fs::canonicalize(&path)
                        .with_context(|| format!("cannot find the SDK at {}", path.display()))?,
                ),
                None => scaffold::SdkSource::default_for_this_build(),
            };
            scaffold::create(&dir, &name, &sdk)?;
            let dir = dir.display();
            println!("created policy `{name}` in {dir}; next:");
            println!("  cd {dir} && cargo test");
            println!("  cargo build --target wasm32-wasip2 --release");
            println!(
                "  switchyard policy test target/wasm32-wasip2/release/{}.wasm --cases cases.jsonl --catalog catalog.json",
                name.replace('-', "_")
            );
            true
        }
        PolicyCommand::Check { wasm, json } => {
            let settings = authoring::settings_for(&wasm, None, LimitOverrides::default())?;
            match authoring::load(&wasm, settings, &EngineConfig::default(), &ProcessEnv) {
                Ok(policy) => {
                    let size = std::fs::metadata(&wasm).map_or(0, |m| m.len());
                    let described = authoring::check::describe(&policy, size);
                    if json {
                        report::json(&mut out, &described)?;
                    } else {
                        report::check(&mut out, &described, palette)?;
                    }
                    true
                }
                Err(authoring::ToolError::Policy { path, source }) => {
                    let message = format!("{} would be refused: {source}", path.display());
                    if json {
                        let refused = serde_json::json!({
                            "path": path, "refused": {"kind": source.kind(), "message": message}
                        });
                        report::json(&mut out, &refused)?;
                    } else {
                        eprintln!("{message}");
                    }
                    false
                }
                Err(e) => return Err(e.into()),
            }
        }
        PolicyCommand::Test {
            wasm,
            cases,
            setup,
            json,
        } => {
            let cases = switchyard::policy::cases::load(&cases).map_err(anyhow::Error::msg)?;
            let loaded = Loaded::new(
                &wasm,
                setup.config.as_deref(),
                setup.policy.as_deref(),
                &setup.limits,
            )?;
            let catalogs = match (setup.catalog, loaded.config) {
                (Some(path), _) => CatalogSource::File(path),
                (None, Some(config)) => CatalogSource::Config(Box::new(config)),
                (None, None) => bail!("say where the catalog comes from: --catalog or --config"),
            };
            // Cases without a team run for `--team`, else for every team bound to the policy.
            let teams = match (setup.team, &loaded.entry) {
                (Some(team), _) => vec![team],
                (None, Some(name)) => catalogs.teams_of(name),
                (None, None) => Vec::new(),
            };
            let results = runtime.block_on(authoring::cases::run(
                &loaded.policy,
                &cases,
                &catalogs,
                &teams,
            ));
            if json {
                report::json(&mut out, &results)?;
            } else {
                report::cases(&mut out, &results, palette)?;
            }
            results.iter().all(|r| r.passed)
        }
        PolicyCommand::Replay {
            wasm,
            log,
            sample,
            config,
            policy,
            team,
            limits,
            json,
        } => {
            let loaded = Loaded::new(&wasm, config.as_deref(), policy.as_deref(), &limits)?;
            let (records, cut) = authoring::replay::load(&log)?;
            if cut > 0 {
                eprintln!(
                    "note: the last line of {} was cut short and is left out",
                    log.display()
                );
            }
            let filter = authoring::replay::Filter {
                policy: policy.or(loaded.entry),
                team,
            };
            let replayed = runtime.block_on(authoring::replay::run(
                &loaded.policy,
                &records,
                &filter,
                sample,
            ));
            if json {
                report::json(&mut out, &replayed)?;
            } else {
                report::replay(&mut out, &replayed, palette)?;
            }
            true
        }
    };
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

fn serve(source: ConfigSource, admin_listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(telemetry::metrics::BUCKETS)
        .context("cannot set the histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    telemetry::metrics::describe();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(8)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(source, admin_listen, metrics))
}

/// Bind and serve at once (not ready), load the policies, open the gate, then run until SIGINT
/// or SIGTERM and drain.
async fn run(
    source: ConfigSource,
    admin_listen: Option<SocketAddr>,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    // Signals are ours from the start: a SIGHUP or SIGTERM while policies load must not kill the
    // process with the signal's default action.
    let mut signals = Signals::new().context("cannot listen for signals")?;
    let config_path = source.path.clone();
    let config = source
        .load()
        .with_context(|| format!("cannot start with config {}", config_path.display()))?;
    // Everything that can be checked before the (possibly long) load is checked first.
    let admin = match &config.admin {
        Some(admin) => {
            let token = admin_token(&ProcessEnv, &admin.token_env)?;
            let addr = admin_listen.unwrap_or(admin.listen);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for the admin API on {addr}"))?;
            Some((listener, token))
        }
        None => None,
    };
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let tls = match &config.server.tls {
        Some(files) => Some(
            RustlsConfig::from_pem_file(&files.cert_path, &files.key_path)
                .await
                .with_context(|| {
                    format!(
                        "cannot load the TLS certificate {} and key {}",
                        files.cert_path.display(),
                        files.key_path.display()
                    )
                })?,
        ),
        None => None,
    };
    // Histograms are summed up in the background, whether or not anyone scrapes them.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let gate = Gate::new(config.server.metrics.then(|| metrics.clone()));
    let handle = Handle::new();
    let server = tokio::spawn(server::serve(
        listener,
        server::router(gate.clone(), config.max_body_bytes),
        Listening {
            tls: tls.clone(),
            max_header_bytes: config.server.max_header_bytes,
            handle: handle.clone(),
        },
    ));
    tracing::info!(
        "accepting connections on {scheme}://{addr}; not ready until the policies are loaded"
    );

    let started = tokio::select! {
        started = App::start(source, Arc::new(ProcessEnv)) => started,
        () = signals.shutdown() => {
            tracing::info!("stopped while loading the policies");
            handle.shutdown();
            return Ok(());
        }
    };
    let app = match started {
        Ok(app) => Arc::new(app),
        Err(e) => {
            handle.shutdown();
            return Err(e)
                .with_context(|| format!("cannot start with config {}", config_path.display()));
        }
    };
    let (stop_tx, stop) = signal_watch::channel(false);
    let admin = match admin {
        Some((listener, token)) => {
            let addr = listener
                .local_addr()
                .context("admin listener has no address")?;
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "the admin API listens on {addr}, beyond loopback: keep that network private"
                );
            }
            tracing::info!("admin API listening on http://{addr}");
            let router = admin::router(app.clone(), token, Some(metrics));
            let mut stop = stop.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            Some(tokio::spawn(admin::serve(listener, router, stopped)))
        }
        None => None,
    };
    if let Err(e) = watch::spawn(app.clone()) {
        handle.shutdown();
        return Err(e).context("cannot watch the policy files");
    }
    let snapshot = app.snapshot();
    let policies: Vec<String> = snapshot
        .policies
        .values()
        .map(|slot| slot.live().version().to_string())
        .collect();
    gate.open(app.clone());
    tracing::info!(
        policies = %policies.join(","),
        teams = snapshot.teams.len(),
        models = snapshot.config.models.len(),
        "switchyard listening on {scheme}://{addr}"
    );
    drop(snapshot);

    signals.serve(&app, tls.as_ref()).await;
    let drain = Duration::from_millis(app.snapshot().config.server.drain_timeout_ms);
    tracing::info!(
        "shutting down: refusing new connections, letting in-flight requests finish for up to {} ms",
        drain.as_millis()
    );
    gate.drain();
    handle.graceful_shutdown(Some(drain));
    let _ = stop_tx.send(true);
    server
        .await
        .context("server task failed")?
        .context("server failed")?;
    // Streams cut at the deadline end at once; their log lines and metrics are written then.
    gate.settle(Duration::from_secs(2)).await;
    // Their decision records too: wait until the decision log has them on disk.
    if let Some(decisions) = &app.snapshot().decision_log {
        let decisions = decisions.clone();
        let flushed =
            tokio::task::spawn_blocking(move || decisions.flush(Duration::from_secs(5))).await;
        if !matches!(flushed, Ok(true)) {
            tracing::warn!("the decision log was not flushed in time");
        }
    }
    if let Some(admin) = admin {
        match tokio::time::timeout(drain, admin).await {
            Ok(done) => done
                .context("admin task failed")?
                .context("admin server failed")?,
            Err(_) => tracing::warn!("the admin API's connections did not finish in time"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The admin token from the environment variable `var`.
fn admin_token(env: &dyn Env, var: &str) -> anyhow::Result<AdminToken> {
    let Some(secret) = env.var(var).filter(|v| !v.is_empty()) else {
        bail!("admin API: environment variable {var} is not set; it must hold the admin token");
    };
    AdminToken::new(&secret).with_context(|| {
        format!("admin API: the token in {var} must be at least {MIN_TOKEN_LEN} characters")
    })
}

/// The process's signals, taken over at start-up.
struct Signals {
    hangup: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on SIGINT or SIGTERM.
    async fn shutdown(&mut self) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.terminate.recv() => {}
        }
    }

    /// Until SIGINT or SIGTERM: on every SIGHUP, re-read the config, and the TLS certificate
    /// and key when TLS is on.
    async fn serve(&mut self, app: &App, tls: Option<&RustlsConfig>) {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = self.terminate.recv() => return,
                _ = self.hangup.recv() => {}
            }
            // The outcome is logged and counted by the reload itself.
            let _ = app.reload_config("signal").await;
            let (Some(tls), Some(files)) = (tls, app.snapshot().config.server.tls.clone()) else {
                continue;
            };
            match tls
                .reload_from_pem_file(&files.cert_path, &files.key_path)
                .await
            {
                Ok(()) => tracing::info!(
                    "TLS certificate reloaded from {}",
                    files.cert_path.display()
                ),
                Err(e) => tracing::warn!(
                    "TLS certificate not reloaded, the old one stays: {} and {}: {e}",
                    files.cert_path.display(),
                    files.key_path.display()
                ),
            }
        }
    }
}
