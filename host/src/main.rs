//! The `switchyard` command line: `switchyard serve --config FILE`.

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
use switchyard::config::{Env, ProcessEnv};
use switchyard::control::{App, ConfigSource, watch};
use switchyard::server::{self, Gate, Listening};
use switchyard::telemetry::{self, LogFormat};
use tokio::sync::watch as signal_watch;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Edge proxy for LLM traffic, routed by WebAssembly policies"
)]
struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let export = telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref())
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
    };
    if let Some(export) = export {
        export.shutdown();
    }
    result
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
    let config_path = source.path.clone();
    let config = source
        .load()
        .with_context(|| format!("cannot start with config {}", config_path.display()))?;
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

    let app = match App::start(source, Arc::new(ProcessEnv)).await {
        Ok(app) => Arc::new(app),
        Err(e) => {
            handle.shutdown();
            return Err(e)
                .with_context(|| format!("cannot start with config {}", config_path.display()));
        }
    };
    gate.open(app.clone());
    let snapshot = app.snapshot();
    let (stop_tx, stop) = signal_watch::channel(false);
    let admin = match &snapshot.config.admin {
        Some(config) => {
            let token = admin_token(&ProcessEnv, &config.token_env)?;
            let addr = admin_listen.unwrap_or(config.listen);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for the admin API on {addr}"))?;
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
    watch::spawn(app.clone()).context("cannot watch the policy files")?;
    tokio::spawn(reload_on_sighup(app.clone(), tls));
    let policies: Vec<String> = snapshot
        .policies
        .values()
        .map(|slot| slot.live().version().to_string())
        .collect();
    tracing::info!(
        policies = %policies.join(","),
        teams = snapshot.teams.len(),
        models = snapshot.config.models.len(),
        "switchyard listening on {scheme}://{addr}"
    );
    drop(snapshot);

    shutdown_signal().await;
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
    if let Some(admin) = admin {
        admin
            .await
            .context("admin task failed")?
            .context("admin server failed")?;
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

/// Re-read the config, and the TLS certificate and key when TLS is on, on every SIGHUP.
async fn reload_on_sighup(app: Arc<App>, tls: Option<RustlsConfig>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; reload through the admin API instead");
        return;
    };
    while hangup.recv().await.is_some() {
        // The outcome is logged and counted by the reload itself.
        let _ = app.reload_config("signal").await;
        let (Some(tls), Some(files)) = (&tls, app.snapshot().config.server.tls.clone()) else {
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = term.recv() => {}
    }
}
