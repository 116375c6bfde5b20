//! An in-process HTTP server on a free loopback port, for the mocks: the app is served until
//! the [`Loopback`] is dropped.

use std::net::SocketAddr;

use axum::Router;

/// A served app; stopped when dropped.
pub struct Loopback {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Loopback {
    /// Serve `app` on a free port of 127.0.0.1.
    pub async fn serve(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock server");
        });
        Self { addr, task }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.task.abort();
    }
}
