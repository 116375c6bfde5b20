//! The [`Gate`]: what the client-facing routes serve from, and whether they may.
//!
//! The listener is bound and served before the policies load, so an orchestrator can tell a
//! live process from a ready one: the gate holds the app once it has started. Until then, and
//! again once the process drains, the routes answer 503. It also tracks the work a request
//! leaves behind when it is answered (a stream's settlement and log line), which a drain waits
//! for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::task::TaskTracker;

use crate::control::App;

/// What the client-facing routes serve from.
pub struct Gate {
    app: OnceLock<Arc<App>>,
    draining: AtomicBool,
    /// Set when `GET /metrics` is served on this listener too.
    pub(super) metrics: Option<PrometheusHandle>,
    /// Work a request leaves behind when it is answered: a stream's log line and accounting,
    /// written when the stream ends.
    pub(super) tasks: TaskTracker,
}

impl Gate {
    /// A closed gate; `metrics` also serves `GET /metrics` on the client-facing listener.
    pub fn new(metrics: Option<PrometheusHandle>) -> Arc<Self> {
        Arc::new(Self {
            app: OnceLock::new(),
            draining: AtomicBool::new(false),
            metrics,
            tasks: TaskTracker::new(),
        })
    }

    /// The app has started: serve it.
    pub fn open(&self, app: Arc<App>) {
        let _ = self.app.set(app);
    }

    /// The process is shutting down: report not ready, while in-flight requests finish.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Wait up to `limit` for the work requests left behind (see `tasks`); after a drain.
    pub async fn settle(&self, limit: Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} stream log lines were not written before exit",
                self.tasks.len()
            );
        }
    }

    /// The app, once it has started.
    pub(super) fn app(&self) -> Option<&Arc<App>> {
        self.app.get()
    }

    /// `Ok` while ready to serve; else why not.
    pub(super) fn readiness(&self) -> Result<(), &'static str> {
        if self.app.get().is_none() {
            Err("starting: policies are loading")
        } else if self.draining.load(Ordering::SeqCst) {
            Err("draining: shutting down")
        } else {
            Ok(())
        }
    }
}
