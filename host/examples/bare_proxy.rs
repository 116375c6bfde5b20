//! The floor under the gateway benchmark: a reverse proxy with nothing of Switchyard's in it.
//!
//! `bench/gateway.py` runs this beside Switchyard to show what the HTTP stack costs on its own,
//! so the gap to nginx can be split into the stack's share and Switchyard's (auth, parsing, the
//! policy decision, the upstream engine, telemetry). It forwards every request's body to one
//! upstream URL and hands the answer back, on the same runtime settings as the proxy (a
//! multi-threaded tokio runtime with `event_interval(8)`). `MODE` is `SERVER-CLIENT`:
//! - server `axum`: an axum router served by `axum-server`, as Switchyard serves; `hyper`:
//!   hyper's own HTTP/1 connection, no router and no protocol detection;
//! - client `reqwest`: a pooled `reqwest` client, as Switchyard forwards; `hyper`:
//!   `hyper-util`'s pooled client, without reqwest's redirect and retry layers.
//!
//! It reads no config and writes no log: `bare_proxy MODE LISTEN UPSTREAM_URL`. It exits on
//! SIGTERM through `main`'s return, so a build instrumented for profile-guided optimization
//! (`cargo xtask dist --floor`) writes its profile.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, listen, upstream] = args.as_slice() else {
        bail!("usage: bare_proxy axum-reqwest|axum-hyper|hyper-reqwest|hyper-hyper LISTEN URL");
    };
    let listen: SocketAddr = listen.parse().context("LISTEN")?;
    let (server, client) = mode.split_once('-').context("MODE is SERVER-CLIENT")?;
    let forward = Arc::new(match client {
        "reqwest" => Forward::Reqwest(reqwest::Client::new(), upstream.clone()),
        "hyper" => {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client = Client::builder(TokioExecutor::new()).build(connector);
            Forward::Hyper(Box::new(client), upstream.parse().context("URL")?)
        }
        other => bail!("unknown client `{other}`"),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(8)
        .build()?;
    match server {
        "axum" => runtime.block_on(until_terminated(axum_server(listen, forward))),
        "hyper" => runtime.block_on(until_terminated(hyper_server(listen, forward))),
        other => bail!("unknown server `{other}`"),
    }
}

/// Run `server` until it fails or the process gets SIGTERM.
async fn until_terminated(server: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    tokio::select! {
        served = server => served,
        _ = terminate.recv() => Ok(()),
    }
}

/// The upstream client, and where it sends every request.
enum Forward {
    Reqwest(reqwest::Client, String),
    Hyper(Box<Client<HttpConnector, Full<Bytes>>>, hyper::Uri),
}

impl Forward {
    /// Post `body` upstream: the answer's status and body (502 and nothing when it fails).
    async fn send(&self, body: Bytes) -> (StatusCode, Bytes) {
        let answer = match self {
            Forward::Reqwest(client, url) => {
                let sent = client
                    .post(url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(answer) => {
                        let status = answer.status();
                        answer.bytes().await.map(|bytes| (status, bytes)).ok()
                    }
                    Err(_) => None,
                }
            }
            Forward::Hyper(client, uri) => {
                let request = Request::post(uri.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                    .expect("a request from valid parts");
                match client.request(request).await {
                    Ok(answer) => {
                        let (parts, body) = answer.into_parts();
                        let bytes = body.collect().await.map(|b| b.to_bytes());
                        bytes.map(|bytes| (parts.status, bytes)).ok()
                    }
                    Err(_) => None,
                }
            }
        };
        answer.unwrap_or((StatusCode::BAD_GATEWAY, Bytes::new()))
    }
}

async fn axum_server(listen: SocketAddr, forward: Arc<Forward>) -> anyhow::Result<()> {
    let handler = move |body: Bytes| {
        let forward = forward.clone();
        async move {
            let (status, bytes) = forward.send(body).await;
            (status, [(CONTENT_TYPE, "application/json")], bytes)
        }
    };
    let app = axum::Router::new().fallback(axum::routing::post(handler));
    axum_server::bind(listen)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

async fn hyper_server(listen: SocketAddr, forward: Arc<Forward>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let forward = forward.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let forward = forward.clone();
            async move {
                let body = request.into_body().collect().await?.to_bytes();
                let (status, bytes) = forward.send(body).await;
                let response = Response::builder()
                    .status(status)
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(bytes))
                    .expect("a response from valid parts");
                Ok::<_, hyper::Error>(response)
            }
        });
        tokio::spawn(async move {
            // A connection that fails ends; the others go on.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
