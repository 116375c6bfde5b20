//! The floor under the gateway benchmark: a reverse proxy with nothing of Switchyard's in it.
//!
//! `bench/gateway.py` runs this beside Switchyard to show what the HTTP stack costs on its own,
//! so the gap to nginx can be split into the stack's share and Switchyard's (auth, parsing, the
//! policy decision, the upstream engine, telemetry). It forwards every request's body to one
//! upstream URL and hands the answer back, on the same runtime settings as the proxy (a
//! multi-threaded tokio runtime with `event_interval(8)`), in one of two builds:
//! - `axum-reqwest`: the stack Switchyard is built on, an axum router served by `axum-server`
//!   and a pooled `reqwest` client;
//! - `hyper`: hyper's own HTTP/1 server and `hyper-util`'s pooled client, without the router,
//!   tower layers and redirect handling above them.
//!
//! It reads no config and writes no log: `bare_proxy MODE LISTEN UPSTREAM_URL`.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, listen, upstream] = args.as_slice() else {
        bail!("usage: bare_proxy axum-reqwest|hyper LISTEN UPSTREAM_URL");
    };
    let listen: SocketAddr = listen.parse().context("LISTEN")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(8)
        .build()?;
    match mode.as_str() {
        "axum-reqwest" => runtime.block_on(axum_reqwest(listen, upstream.clone())),
        "hyper" => runtime.block_on(bare_hyper(listen, upstream.parse()?)),
        other => bail!("unknown mode `{other}`"),
    }
}

async fn axum_reqwest(listen: SocketAddr, upstream: String) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().build()?;
    let forward = move |body: Bytes| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move {
            let answer = client
                .post(&upstream)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await;
            match answer {
                Ok(answer) => {
                    let status = answer.status();
                    let bytes = answer.bytes().await.unwrap_or_default();
                    (status, [(CONTENT_TYPE, "application/json")], bytes)
                }
                Err(_) => (
                    axum::http::StatusCode::BAD_GATEWAY,
                    [(CONTENT_TYPE, "application/json")],
                    Bytes::new(),
                ),
            }
        }
    };
    let app = axum::Router::new().fallback(axum::routing::post(forward));
    axum_server::bind(listen)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

async fn bare_hyper(listen: SocketAddr, upstream: hyper::Uri) -> anyhow::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move {
                let body = request.into_body().collect().await?.to_bytes();
                let forwarded = Request::post(upstream)
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                    .expect("a request from valid parts");
                let answer = match client.request(forwarded).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        return Ok::<_, hyper::Error>(
                            Response::builder()
                                .status(502)
                                .body(Full::new(Bytes::new()))
                                .expect("a response from valid parts"),
                        );
                    }
                };
                let (parts, body) = answer.into_parts();
                let bytes = body.collect().await?.to_bytes();
                Ok(Response::from_parts(parts, Full::new(bytes)))
            }
        });
        tokio::spawn(async move {
            let _closed: Result<(), Infallible> = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
                .or(Ok(()));
        });
    }
}
