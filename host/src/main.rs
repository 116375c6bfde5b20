//! The `switchyard` command line: `switchyard serve --config FILE`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::config::{Config, ProcessEnv};
use switchyard::server::{self, App};
use switchyard::telemetry::{self, LogFormat};

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
    /// Run the proxy.
    Serve {
        /// The TOML config file.
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Listen on this address instead of the config's `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
    }
}

fn serve(path: PathBuf, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut config = Config::load(&path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(8)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = App::new(config, &ProcessEnv).with_context(|| format!("cannot start with config {}", path.display()))?;
        let listener = tokio::net::TcpListener::bind(app.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", app.config.listen))?;
        let addr = listener.local_addr().context("listener has no address")?;
        tracing::info!(policy = %app.policy.version(), models = app.catalog.len(), "switchyard listening on http://{addr}");
        server::serve(listener, Arc::new(app), shutdown_signal())
            .await
            .context("server failed")
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing in-flight requests");
}
