//! The proxy process as a library: from a config to a running proxy, and back down.
//!
//! [`serve`] checks what can be checked first (the config, the admin token, the TLS files),
//! binds the client listener (and the admin listener) and serves at once, answering 503 until
//! the policies are loaded, so an orchestrator can tell a live process from a ready one. In the
//! background it loads the config, compiles and canaries every policy, then opens the gate and
//! starts the admin API and the policy-file watcher. [`Running::reload`] re-reads the config
//! (and the TLS files). When the `shutdown` future resolves the proxy drains: `/readyz` turns
//! 503, new connections are refused, in-flight requests and streams get `server.drain_timeout_ms`
//! to finish; streams still running then are cut with an error event for their clients; their
//! settlement and log lines are written and the decision log flushed before
//! [`Running::stopped`] returns. The binary turns signals into these calls.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, watch as signal};
use tokio::task::JoinHandle;

use crate::admin::{self, AdminToken, MIN_TOKEN_LEN};
use crate::config::{Config, ConfigError, Env};
use crate::control::{App, ConfigSource, StartError, rollout, watch};
use crate::server::{self, Gate, Listening};

/// How long a stream cut at the drain deadline has to send its error event before the
/// connections close.
const CUT_GRACE: Duration = Duration::from_millis(500);

/// What the proxy serves, and with what.
pub struct Options {
    pub source: ConfigSource,
    /// Run the admin API here instead of the config's `admin.listen`.
    pub admin_listen: Option<SocketAddr>,
    /// The installed metrics recorder's handle, for `GET /metrics`.
    pub metrics: PrometheusHandle,
    /// Where environment variables (API keys, the admin token) are read.
    pub env: Arc<dyn Env + Send + Sync>,
}

/// Why the proxy could not start, or stopped with a failure. None is retryable as it is: the
/// config, the environment or the machine must change.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for the admin API on {addr}: {source}")]
    AdminListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin API: {0}")]
    AdminToken(String),
    #[error("cannot load the TLS certificate {cert} and key {key}: {source}")]
    Tls {
        cert: String,
        key: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot watch the policy files: {0}")]
    Watch(#[source] notify_debouncer_mini::notify::Error),
    #[error("the {what} server failed: {source}")]
    Server {
        what: &'static str,
        source: std::io::Error,
    },
}

/// A proxy serving on its listeners.
pub struct Running {
    /// The client listener's address.
    pub addr: SocketAddr,
    /// The admin API's address, when it is on.
    pub admin_addr: Option<SocketAddr>,
    /// Whether the client listener speaks TLS.
    pub tls: bool,
    reloads: mpsc::UnboundedSender<()>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Re-read the config, and the TLS certificate and key when TLS is on; what it did is
    /// logged and counted (a reload before the policies are loaded waits for them).
    pub fn reload(&self) {
        let _ = self.reloads.send(());
    }

    /// A handle that asks for reloads, for a signal handler.
    pub fn reloader(&self) -> impl Fn() + Send + 'static {
        let reloads = self.reloads.clone();
        move || {
            let _ = reloads.send(());
        }
    }

    /// Wait until the proxy has stopped: `shutdown` resolved and the drain finished, or it
    /// failed to start or to serve.
    pub async fn stopped(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ServeError::Server {
                what: "proxy",
                source: std::io::Error::other(e),
            }),
        }
    }
}

/// The listeners, bound, and what serving them needs.
struct Bound {
    config: Config,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: Option<RustlsConfig>,
    admin: Option<AdminListener>,
}

/// The admin API's listener, bound, and its token.
struct AdminListener {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    token: AdminToken,
}

/// Bind and start serving (not ready until the policies are loaded); stop and drain once
/// `shutdown` resolves.
pub async fn serve(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    let bound = bind(&options).await?;
    let (reloads, reload_requests) = mpsc::unbounded_channel();
    let (addr, tls) = (bound.addr, bound.tls.is_some());
    let admin_addr = bound.admin.as_ref().map(|admin| admin.addr);
    let task = tokio::spawn(run(options, bound, shutdown, reload_requests));
    Ok(Running {
        addr,
        admin_addr,
        tls,
        reloads,
        task,
    })
}

/// Everything that can be checked before the (possibly long) load, then the listeners.
async fn bind(options: &Options) -> Result<Bound, ServeError> {
    let config = options.source.load()?;
    let admin = match &config.admin {
        Some(admin) => {
            let token = admin_token(&*options.env, &admin.token_env)?;
            let addr = options.admin_listen.unwrap_or(admin.listen);
            let listen_error = |source| ServeError::AdminListen { addr, source };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(listen_error)?;
            let addr = listener.local_addr().map_err(listen_error)?;
            Some(AdminListener {
                listener,
                addr,
                token,
            })
        }
        None => None,
    };
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let tls = match &config.server.tls {
        Some(files) => Some(
            RustlsConfig::from_pem_file(&files.cert_path, &files.key_path)
                .await
                .map_err(|source| ServeError::Tls {
                    cert: files.cert_path.display().to_string(),
                    key: files.key_path.display().to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    Ok(Bound {
        config,
        listener,
        addr,
        tls,
        admin,
    })
}

/// The admin token from the environment variable `var`.
fn admin_token(env: &dyn Env, var: &str) -> Result<AdminToken, ServeError> {
    let Some(secret) = env.var(var).filter(|v| !v.is_empty()) else {
        return Err(ServeError::AdminToken(format!(
            "environment variable {var} is not set; it must hold the admin token"
        )));
    };
    AdminToken::new(&secret).ok_or_else(|| {
        ServeError::AdminToken(format!(
            "the token in {var} must be at least {MIN_TOKEN_LEN} characters"
        ))
    })
}

/// Serve `bound` (not ready), load the policies, open the gate, serve reloads until `shutdown`,
/// then drain.
async fn run(
    options: Options,
    bound: Bound,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut reloads: mpsc::UnboundedReceiver<()>,
) -> Result<(), ServeError> {
    let Bound {
        config,
        listener,
        addr,
        tls,
        admin,
    } = bound;
    keep_metrics_summed(options.metrics.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let gate = Gate::new(config.server.metrics.then(|| options.metrics.clone()));
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

    let mut shutdown = std::pin::pin!(shutdown);
    let Some(app) = load(options.source, options.env, shutdown.as_mut(), &handle).await? else {
        return Ok(());
    };
    let (stop_admin, admin_stopped) = signal::channel(false);
    let admin = admin.map(|admin| serve_admin(admin, &app, options.metrics, admin_stopped));
    if let Err(e) = watch::spawn(app.clone()) {
        handle.shutdown();
        return Err(ServeError::Watch(e));
    }
    rollout::spawn(app.clone());
    gate.open(app.clone());
    announce(&app, scheme, addr);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = reloads.recv() => reload(&app, tls.as_ref()).await,
        }
    }
    drain(&app, &gate, &handle).await;
    let _ = stop_admin.send(true);
    server
        .await
        .map_err(|e| ServeError::Server {
            what: "client",
            source: std::io::Error::other(e),
        })?
        .map_err(|source| ServeError::Server {
            what: "client",
            source,
        })?;
    finish(&app, &gate, admin).await
}

/// The app, its policies loaded; `None` when `shutdown` came first. Unless the app started, the
/// client listener is shut down.
async fn load(
    source: ConfigSource,
    env: Arc<dyn Env + Send + Sync>,
    shutdown: Pin<&mut impl Future<Output = ()>>,
    handle: &Handle<SocketAddr>,
) -> Result<Option<Arc<App>>, ServeError> {
    let started = tokio::select! {
        started = App::start(source, env) => started,
        () = shutdown => {
            tracing::info!("stopped while loading the policies");
            handle.shutdown();
            return Ok(None);
        }
    };
    started.map(|app| Some(Arc::new(app))).map_err(|e| {
        handle.shutdown();
        e.into()
    })
}

/// Histograms are summed up in the background, whether or not anyone scrapes them.
fn keep_metrics_summed(metrics: PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    });
}

/// Serve the admin API until `stopped` turns true.
fn serve_admin(
    admin: AdminListener,
    app: &Arc<App>,
    metrics: PrometheusHandle,
    mut stopped: signal::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let addr = admin.addr;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the admin API listens on {addr}, beyond loopback: keep that network private"
        );
    }
    tracing::info!("admin API listening on http://{addr}");
    let router = admin::router(app.clone(), admin.token, Some(metrics));
    let stopped = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::spawn(admin::serve(admin.listener, router, stopped))
}

/// Log that the proxy is ready, with what it serves.
fn announce(app: &App, scheme: &str, addr: SocketAddr) {
    let snapshot = app.snapshot();
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
}

/// Re-read the config and, when TLS is on, the certificate and key.
async fn reload(app: &App, tls: Option<&RustlsConfig>) {
    // The outcome is logged and counted by the reload itself.
    let _ = app.reload_config("signal").await;
    let (Some(tls), Some(files)) = (tls, app.snapshot().config.server.tls.clone()) else {
        return;
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

/// Stop taking requests and let those in flight finish for the drain time; then cut the
/// streams still running, which end with an error event for their clients.
async fn drain(app: &App, gate: &Gate, handle: &Handle<SocketAddr>) {
    let drain = Duration::from_millis(app.snapshot().config.server.drain_timeout_ms);
    tracing::info!(
        "shutting down: refusing new connections, letting in-flight requests finish for up to {} ms",
        drain.as_millis()
    );
    gate.drain();
    handle.graceful_shutdown(Some(drain + CUT_GRACE));
    let snapshot = app.snapshot();
    tokio::spawn(async move {
        tokio::time::sleep(drain).await;
        snapshot.upstreams.cut_streams();
    });
}

/// After the client listener stopped: write what streams left, flush the decision log, make the
/// fleet's settlements, and let the admin API's connections finish.
async fn finish(
    app: &App,
    gate: &Gate,
    admin: Option<JoinHandle<std::io::Result<()>>>,
) -> Result<(), ServeError> {
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
    // The fleet's settlements of what was served.
    if let Some(fleet) = app.snapshot().fleet.clone() {
        fleet.flush(Duration::from_secs(5)).await;
    }
    if let Some(admin) = admin {
        let drain = Duration::from_millis(app.snapshot().config.server.drain_timeout_ms);
        match tokio::time::timeout(drain, admin).await {
            Ok(Ok(result)) => result.map_err(|source| ServeError::Server {
                what: "admin",
                source,
            })?,
            Ok(Err(e)) => {
                return Err(ServeError::Server {
                    what: "admin",
                    source: std::io::Error::other(e),
                });
            }
            Err(_) => tracing::warn!("the admin API's connections did not finish in time"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}
