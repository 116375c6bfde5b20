//! The `switchyard` command line: `switchyard serve --config FILE` runs the proxy;
//! `switchyard policy new|check|test|replay` are the policy author's tools (`authoring`).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use switchyard::admin::client::{AdminClient, CandidateBody};
use switchyard::authoring::{self, CatalogSource, LimitOverrides, report, scaffold};
use switchyard::config::{Config, EngineConfig, ProcessEnv};
use switchyard::control::ConfigSource;
use switchyard::policy::candidate::{Mode, Sticky};
use switchyard::proxy;
use switchyard::registry;
use switchyard::telemetry::{self, LogFormat, LogWriter};
use tokio::signal::unix::{SignalKind, signal};

/// jemalloc rather than glibc's malloc: 8.5% less CPU a request in the closed loop
/// (`bench/compare.py`), for about 3 MiB more resident memory (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Write, check, test and replay routing policies; push, pull and deploy them.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// See the fleet of replicas sharing a `[state]`.
    #[command(subcommand)]
    Fleet(FleetCommand),
}

#[derive(Subcommand)]
enum FleetCommand {
    /// The deployed version of each policy, and every live replica with the version it runs,
    /// its last heartbeat and the last deploy it refused.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RolloutAction {
    /// Check a candidate and start trying it.
    Start {
        /// A component file (`.wasm`), or an OCI reference (`REGISTRY/REPOSITORY:TAG` or
        /// `...@sha256:...`).
        source: String,
        /// Decide in the shadow of live traffic, on SHARE (0 to 1, default 1) of the policy's
        /// requests.
        #[arg(long, value_name = "SHARE", num_args = 0..=1, default_missing_value = "1", conflicts_with = "split", require_equals = true)]
        shadow: Option<f64>,
        /// Decide and serve PERCENT (e.g. `5` or `5%`) of the policy's requests, chosen by a
        /// hash of `--sticky`, so one user sees one version; the policy's `rollout` rule may
        /// step it up, promote or abort it.
        #[arg(long, value_name = "PERCENT", value_parser = percent)]
        split: Option<f64>,
        /// What keeps a user in one arm of a split: `key` (the client key), `user` (the
        /// request's `metadata.user`) or `header:NAME`.
        #[arg(long, requires = "split")]
        sticky: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// How the candidate's decisions compare with the live version's.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Put the candidate live (and in the policy's file).
    Promote {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Stop trying the candidate; prints its last figures.
    Abort {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

impl RolloutAction {
    fn admin(&self) -> &AdminArgs {
        match self {
            Self::Start { admin, .. }
            | Self::Status { admin, .. }
            | Self::Promote { admin }
            | Self::Abort { admin } => admin,
        }
    }
}

/// How to reach a running replica's admin API.
#[derive(clap::Args)]
struct AdminArgs {
    /// The replica's admin API, e.g. `http://127.0.0.1:9090`.
    #[arg(long, env = "SWITCHYARD_ADMIN_URL")]
    admin: String,
    /// The admin token.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

impl AdminArgs {
    fn client(&self) -> anyhow::Result<AdminClient> {
        Ok(AdminClient::new(&self.admin, self.token.clone())?)
    }
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
        /// The Switchyard SDK (`plugins/sdk` of a checkout) to depend on; default the SDK and
        /// contract this binary carries, written into the new crate.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Push a component to an OCI registry in the Wasm OCI layout (config
    /// `application/vnd.wasm.config.v0+json`, one `application/wasm` layer), after the checks of
    /// `policy check`, and print its digest. Credentials: `SWITCHYARD_REGISTRY_USERNAME` and
    /// `SWITCHYARD_REGISTRY_PASSWORD`, else a docker-style `config.json`.
    Push {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// Where to push it: `REGISTRY/REPOSITORY:TAG`.
        reference: String,
        /// Speak plain HTTP to the registry (a private network or loopback), not HTTPS.
        #[arg(long)]
        plain_http: bool,
    },
    /// Pull a component from an OCI registry, verified against its digests, into a file, and
    /// print its digest.
    Pull {
        /// `REGISTRY/REPOSITORY:TAG` or `REGISTRY/REPOSITORY@sha256:...`.
        reference: String,
        /// The file to write the component to.
        #[arg(long)]
        out: PathBuf,
        /// Speak plain HTTP to the registry (a private network or loopback), not HTTPS.
        #[arg(long)]
        plain_http: bool,
    },
    /// Make an OCI artifact the version of a policy: recorded in the fleet's state for every
    /// replica to fetch, check and put live (or refuse, keeping its version), or, on a replica
    /// without `[state]`, put live there. Prints the digest the reference resolved to. A rollback
    /// is a deploy of the previous digest (`fleet status` shows it).
    Deploy {
        /// The policy's name.
        name: String,
        /// `REGISTRY/REPOSITORY:TAG` (resolved to its digest now) or `...@sha256:...`.
        reference: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Try a candidate version beside a policy's live one before it goes live: `start` checks it
    /// (the checks and canary of any new version) and has it decide in the shadow of live
    /// traffic, never acted on; `status` shows how its decisions compare with the live
    /// version's (agreement, live -> candidate models, projected cost, failures, decision
    /// time); `promote` puts it live; `abort` drops it.
    Rollout {
        /// The policy's name.
        name: String,
        #[command(subcommand)]
        action: RolloutAction,
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
    Replay(ReplayArgs),
}

/// What `policy replay` replays, and against which limits.
#[derive(clap::Args)]
struct ReplayArgs {
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
        Command::Policy(_) | Command::Fleet(_) => ("warn", LogWriter::Inline),
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
        Command::Fleet(command) => fleet_command(command),
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

/// What a `policy` or `fleet` command writes to and waits on: standard output with its colours,
/// and a runtime for the calls it makes.
struct Terminal {
    out: std::io::StdoutLock<'static>,
    palette: report::Palette,
    runtime: tokio::runtime::Runtime,
}

impl Terminal {
    fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let stdout = std::io::stdout();
        Ok(Self {
            palette: palette(&stdout),
            out: stdout.lock(),
            runtime,
        })
    }
}

/// Run a `switchyard policy` command; exit 1 when a check or a case fails.
fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    let mut term = Terminal::new()?;
    let passed = match command {
        PolicyCommand::New { name, dir, sdk } => {
            new_policy(&mut term, &name, dir, sdk).map(|()| true)
        }
        PolicyCommand::Push {
            wasm,
            reference,
            plain_http,
        } => push(&mut term, &wasm, &reference, plain_http).map(|()| true),
        PolicyCommand::Pull {
            reference,
            out,
            plain_http,
        } => pull(&mut term, &reference, &out, plain_http).map(|()| true),
        PolicyCommand::Deploy {
            name,
            reference,
            admin,
        } => deploy(&mut term, &name, &reference, &admin).map(|()| true),
        PolicyCommand::Rollout { name, action } => rollout(&mut term, &name, action).map(|()| true),
        PolicyCommand::Check { wasm, json } => check(&mut term, &wasm, json),
        PolicyCommand::Test {
            wasm,
            cases,
            setup,
            json,
        } => test_cases(&mut term, &wasm, &cases, setup, json),
        PolicyCommand::Replay(args) => replay(&mut term, args).map(|()| true),
    }?;
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

/// `policy new NAME`: scaffold a policy crate, and say what to run next.
fn new_policy(
    term: &mut Terminal,
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let sdk = match sdk {
        Some(path) => scaffold::SdkSource::Path(
            std::fs::canonicalize(&path)
                .with_context(|| format!("cannot find the SDK at {}", path.display()))?,
        ),
        None => scaffold::SdkSource::Bundled,
    };
    scaffold::create(&dir, name, &sdk)?;
    let dir = dir.display();
    writeln!(term.out, "created policy `{name}` in {dir}; next:")?;
    writeln!(term.out, "  cd {dir} && cargo test")?;
    writeln!(term.out, "  cargo build --target wasm32-wasip2 --release")?;
    writeln!(
        term.out,
        "  switchyard policy test target/wasm32-wasip2/release/{}.wasm --cases cases.jsonl --catalog catalog.json",
        name.replace('-', "_")
    )?;
    Ok(())
}

/// How to reach a registry: over plain HTTP when asked to, else HTTPS.
fn access(plain_http: bool) -> registry::Access {
    if plain_http {
        registry::Access::plain_http()
    } else {
        registry::Access::default()
    }
}

/// `policy push WASM REFERENCE`: check the component as the proxy would, push it, print its
/// digest.
fn push(
    term: &mut Terminal,
    wasm: &std::path::Path,
    reference: &str,
    plain_http: bool,
) -> anyhow::Result<()> {
    let settings = authoring::settings_for(wasm, None, LimitOverrides::default())?;
    authoring::load(wasm, settings, &EngineConfig::default(), &ProcessEnv)?;
    let component =
        std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let digest = term
        .runtime
        .block_on(registry::push(
            reference,
            &component,
            &access(plain_http),
            &ProcessEnv,
        ))
        .with_context(|| format!("cannot push {} to {reference}", wasm.display()))?;
    Ok(writeln!(term.out, "{digest}")?)
}

/// `policy pull REFERENCE --out FILE`: write the verified component, print its digest.
fn pull(
    term: &mut Terminal,
    reference: &str,
    file: &std::path::Path,
    plain_http: bool,
) -> anyhow::Result<()> {
    let pulled = term
        .runtime
        .block_on(registry::pull(reference, &access(plain_http), &ProcessEnv))
        .with_context(|| format!("cannot pull {reference}"))?;
    std::fs::write(file, &pulled.component)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(writeln!(term.out, "{}", pulled.digest)?)
}

/// `policy deploy NAME REFERENCE`, through the admin API: print the digest, and on stderr what
/// became of it and how to roll it back.
fn deploy(
    term: &mut Terminal,
    name: &str,
    reference: &str,
    admin: &AdminArgs,
) -> anyhow::Result<()> {
    let answer = term
        .runtime
        .block_on(admin.client()?.deploy(name, reference))?;
    let whom = match answer.status.as_str() {
        "live" => "live on this replica",
        _ => "recorded; every replica fetches, checks and activates it",
    };
    writeln!(term.out, "{}", answer.digest)?;
    eprintln!("{name}: {} {whom}", answer.reference);
    if let Some(previous) = answer.previous {
        eprintln!("to roll back: switchyard policy deploy {name} {previous}");
    }
    Ok(())
}

/// `policy check WASM`: describe the component, or say why the proxy would refuse it (false).
fn check(term: &mut Terminal, wasm: &std::path::Path, json: bool) -> anyhow::Result<bool> {
    let settings = authoring::settings_for(wasm, None, LimitOverrides::default())?;
    match authoring::load(wasm, settings, &EngineConfig::default(), &ProcessEnv) {
        Ok(policy) => {
            let size = std::fs::metadata(wasm).map_or(0, |m| m.len());
            let described = authoring::check::describe(&policy, size);
            if json {
                report::json(&mut term.out, &described)?;
            } else {
                report::check(&mut term.out, &described, term.palette)?;
            }
            Ok(true)
        }
        Err(authoring::ToolError::Policy { path, source }) => {
            let message = format!("{} would be refused: {source}", path.display());
            if json {
                let refused = serde_json::json!({
                    "path": path, "refused": {"kind": source.kind(), "message": message}
                });
                report::json(&mut term.out, &refused)?;
            } else {
                eprintln!("{message}");
            }
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// `policy test WASM --cases FILE`: run the cases; false when one fails.
fn test_cases(
    term: &mut Terminal,
    wasm: &std::path::Path,
    cases: &std::path::Path,
    setup: Setup,
    json: bool,
) -> anyhow::Result<bool> {
    let cases = switchyard::policy::cases::load(cases).map_err(anyhow::Error::msg)?;
    let loaded = Loaded::new(
        wasm,
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
    let results = term.runtime.block_on(authoring::cases::run(
        &loaded.policy,
        &cases,
        &catalogs,
        &teams,
    ));
    if json {
        report::json(&mut term.out, &results)?;
    } else {
        report::cases(&mut term.out, &results, term.palette)?;
    }
    Ok(results.iter().all(|r| r.passed))
}

/// `policy replay WASM --log FILE`: how the candidate would have decided the logged requests.
fn replay(term: &mut Terminal, args: ReplayArgs) -> anyhow::Result<()> {
    let loaded = Loaded::new(
        &args.wasm,
        args.config.as_deref(),
        args.policy.as_deref(),
        &args.limits,
    )?;
    let (records, cut) = authoring::replay::load(&args.log)?;
    if cut > 0 {
        eprintln!(
            "note: the last line of {} was cut short and is left out",
            args.log.display()
        );
    }
    let filter = authoring::replay::Filter {
        policy: args.policy.or(loaded.entry),
        team: args.team,
    };
    let replayed = term.runtime.block_on(authoring::replay::run(
        &loaded.policy,
        &records,
        &filter,
        args.sample,
    ));
    if args.json {
        report::json(&mut term.out, &replayed)?;
    } else {
        report::replay(&mut term.out, &replayed, term.palette)?;
    }
    Ok(())
}

/// `policy rollout NAME ACTION`, through the admin API.
fn rollout(term: &mut Terminal, name: &str, action: RolloutAction) -> anyhow::Result<()> {
    let client = action.admin().client()?;
    let runtime = &term.runtime;
    let status = match action {
        RolloutAction::Start {
            source,
            shadow,
            split,
            sticky,
            ..
        } => {
            let mode = match (shadow, split) {
                (Some(sample), _) => Mode::Shadow { sample },
                (None, Some(percent)) => Mode::Split {
                    percent,
                    sticky: Sticky::try_from(sticky.unwrap_or_else(|| "key".into()))
                        .map_err(anyhow::Error::msg)?,
                },
                (None, None) => {
                    bail!("say how to try the candidate: --shadow [SHARE] or --split PERCENT")
                }
            };
            let path = std::path::Path::new(&source);
            let body = if path.is_file() {
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {source}"))?;
                CandidateBody::Component(bytes)
            } else {
                CandidateBody::Reference(source)
            };
            runtime.block_on(client.start_candidate(name, body, &mode))?
        }
        RolloutAction::Status { json: true, .. } => {
            let status = runtime.block_on(client.candidate(name))?;
            return Ok(report::json(&mut term.out, &status)?);
        }
        RolloutAction::Status { json: false, .. } => runtime.block_on(client.candidate(name))?,
        RolloutAction::Promote { .. } => {
            let live = runtime.block_on(client.promote_candidate(name))?;
            writeln!(term.out, "{name}: {} live", report::safe(&live.version))?;
            if let Some(warning) = live.warning {
                eprintln!("warning: {}", report::safe(&warning));
            }
            return Ok(());
        }
        RolloutAction::Abort { .. } => runtime.block_on(client.abort_candidate(name))?,
    };
    Ok(report::rollout(&mut term.out, &status, term.palette)?)
}

/// A percentage, `5` or `5%`.
fn percent(text: &str) -> Result<f64, String> {
    text.trim_end_matches('%')
        .parse::<f64>()
        .map_err(|e| format!("`{text}` is not a percentage: {e}"))
}

/// Colours for people, when `stdout` is a terminal and `NO_COLOR` is unset.
fn palette(stdout: &std::io::Stdout) -> report::Palette {
    report::Palette::new(
        stdout.is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

/// Run a `switchyard fleet` command.
fn fleet_command(command: FleetCommand) -> anyhow::Result<()> {
    let FleetCommand::Status { admin, json } = command;
    let mut term = Terminal::new()?;
    let status = term.runtime.block_on(admin.client()?.fleet())?;
    if json {
        report::json(&mut term.out, &status)?;
    } else {
        report::fleet(&mut term.out, &status, term.palette)?;
    }
    Ok(())
}

/// Run the proxy until SIGINT or SIGTERM, re-reading its config on SIGHUP.
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
    let config_path = source.path.clone();
    runtime.block_on(async {
        // Signals are ours from the start: a SIGHUP or SIGTERM while policies load must not kill
        // the process with the signal's default action.
        let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        let options = proxy::Options {
            source,
            admin_listen,
            metrics,
            env: Arc::new(ProcessEnv),
        };
        let started = |e| {
            anyhow::Error::new(e).context(format!(
                "cannot start with config {}",
                config_path.display()
            ))
        };
        let running = proxy::serve(options, shutdown).await.map_err(started)?;
        let reload = running.reloader();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                reload();
            }
        });
        running.stopped().await.map_err(started)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
