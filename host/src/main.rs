//! The `switchyard` command line: `switchyard serve --config FILE`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use switchyard::admin::{self, AdminToken, MIN_TOKEN_LEN};
use switchyard::config::{Env, ProcessEnv};
use switchyard::control::{App, ConfigSource, watch};
use switchyard::server;
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy. SIGHUP re-reads the config; SIGINT or SIGTERM stops it.
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
    telemetry::init(cli.log_format);
    match cli.command {
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
    }
}

fn serve(source: ConfigSource, admin_listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(8)
        .build()
        .context("cannot start the async runtime")?;
    let config_path = source.path.clone();
    runtime.block_on(async move {
        let app = App::start(source, Arc::new(ProcessEnv))
            .await
            .with_context(|| format!("cannot start with config {}", config_path.display()))?;
        let app = Arc::new(app);
        let snapshot = app.snapshot();
        let (stop_tx, stop) = signal_watch::channel(false);
        let stopped = move || {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };

        let admin = match &snapshot.config.admin {
            Some(config) => {
                let token = admin_token(&ProcessEnv, &config.token_env)?;
                let addr = admin_listen.unwrap_or(config.listen);
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for the admin API on {addr}"))?;
                let addr = listener.local_addr().context("admin listener has no address")?;
                if !addr.ip().is_loopback() {
                    tracing::warn!("the admin API listens on {addr}, beyond loopback: keep that network private");
                }
                tracing::info!("admin API listening on http://{addr}");
                let router = admin::router(app.clone(), token, Some(metrics));
                Some(tokio::spawn(admin::serve(listener, router, stopped())))
            }
            None => None,
        };

        let listener = tokio::net::TcpListener::bind(snapshot.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", snapshot.config.listen))?;
        let addr = listener.local_addr().context("listener has no address")?;
        watch::spawn(app.clone()).context("cannot watch the policy files")?;
        tokio::spawn(reload_on_sighup(app.clone()));
        let policies: Vec<String> = snapshot
            .policies
            .values()
            .map(|slot| slot.live().version().to_string())
            .collect();
        tracing::info!(
            policies = %policies.join(","),
            teams = snapshot.teams.len(),
            models = snapshot.config.models.len(),
            "switchyard listening on http://{addr}"
        );
        drop(snapshot);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        server::serve(listener, app, stopped())
            .await
            .context("server failed")?;
        if let Some(admin) = admin {
            admin
                .await
                .context("admin task failed")?
                .context("admin server failed")?;
        }
        Ok(())
    })
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

/// Re-read the config on every SIGHUP.
async fn reload_on_sighup(app: Arc<App>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; reload through the admin API instead");
        return;
    };
    while hangup.recv().await.is_some() {
        // The outcome is logged and counted by the reload itself.
        let _ = app.reload_config("signal").await;
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
    tracing::info!("shutting down: finishing in-flight requests");
}
