//! The client-facing listener: plain HTTP or TLS (HTTP/1.1 and HTTP/2, by ALPN with TLS), with
//! capped request heads and a graceful shutdown that refuses new connections at once and lets
//! in-flight requests and streams finish within the drain time.

use std::net::SocketAddr;

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

/// How the listener serves.
pub struct Listening {
    /// TLS, when on; reload it with [`RustlsConfig::reload_from_pem_file`].
    pub tls: Option<RustlsConfig>,
    /// Largest request head, in bytes (at least 8192).
    pub max_header_bytes: usize,
    /// Stops the server: `graceful_shutdown(Some(drain))` refuses new connections and waits
    /// for in-flight ones up to the drain time.
    pub handle: Handle<SocketAddr>,
}

/// Serve `router` on `listener` until `listening.handle` shuts it down.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    listening: Listening,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let app = router.into_make_service();
    // hyper answers 431 to a request head past these; its buffer cannot be under 8 KiB.
    let head = listening.max_header_bytes.max(8192);
    let head_list = u32::try_from(listening.max_header_bytes).unwrap_or(u32::MAX);
    match listening.tls {
        Some(tls) => {
            let mut server = axum_server::from_tcp_rustls(listener, tls)?.handle(listening.handle);
            server.http_builder().http1().max_buf_size(head);
            server
                .http_builder()
                .http2()
                .max_header_list_size(head_list);
            server.serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.handle(listening.handle);
            server.http_builder().http1().max_buf_size(head);
            server
                .http_builder()
                .http2()
                .max_header_list_size(head_list);
            server.serve(app).await
        }
    }
}
