//! A mock OpenAI-compatible upstream on a loopback port that records every request.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Notify;

/// How the mock answers.
#[derive(Clone)]
pub enum Behaviour {
    /// A `chat.completion` (or, for `stream: true`, an SSE stream) from this mock.
    Answer,
    /// This status with an OpenAI-style error body.
    Status(u16),
    /// This status (429 or 503) with `Retry-After: SECONDS` and an OpenAI-style error body.
    RetryAfter(u16, u64),
    /// Stream: send the first event, then wait for `gate` before sending the rest.
    GatedStream(Arc<Notify>),
    /// Accept the request and never answer.
    Hang,
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

struct Shared {
    name: String,
    behaviour: Mutex<Behaviour>,
    received: Mutex<Vec<Received>>,
}

/// A running mock upstream; it stops when dropped.
pub struct MockUpstream {
    /// Base URL to put in a provider's `base_url` (ends in `/v1`).
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Number of content events in a streamed answer.
const STREAM_EVENTS: usize = 4;

impl MockUpstream {
    /// Start a mock named `name` (the name appears in its answers).
    pub async fn start(name: &str) -> Self {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            behaviour: Mutex::new(Behaviour::Answer),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock server");
        });
        Self { url, shared, task }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The `model` of every request received so far.
    pub fn models_received(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.body["model"].as_str().unwrap_or("<none>").to_string())
            .collect()
    }

    /// The exact non-streaming answer this mock gives for `model`.
    pub fn answer_bytes(&self, model: &str) -> Bytes {
        answer(&self.shared.name, model)
    }

    /// The exact SSE events this mock streams for `model`, `[DONE]` last.
    pub fn stream_events(&self, model: &str) -> Vec<Bytes> {
        stream_events(&self.shared.name, model)
    }
}

fn answer(name: &str, model: &str) -> Bytes {
    let body = serde_json::json!({
        "id": format!("chatcmpl-{name}"),
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("answer from {name} for {model}")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    });
    Bytes::from(body.to_string())
}

fn stream_events(name: &str, model: &str) -> Vec<Bytes> {
    let mut events: Vec<Bytes> = (0..STREAM_EVENTS)
        .map(|i| {
            let chunk = serde_json::json!({
                "id": format!("chatcmpl-{name}"),
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": format!("part{i} ")}, "finish_reason": null}]
            });
            Bytes::from(format!("data: {chunk}\n\n"))
        })
        .collect();
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    shared
        .received
        .lock()
        .unwrap()
        .push(Received { headers, body });
    let behaviour = shared.behaviour.lock().unwrap().clone();
    match behaviour {
        Behaviour::Status(code) => error(&shared.name, code),
        Behaviour::RetryAfter(code, seconds) => {
            let mut response = error(&shared.name, code);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
            response
        }
        Behaviour::Answer if !stream => (
            [(header::CONTENT_TYPE, "application/json")],
            answer(&shared.name, &model),
        )
            .into_response(),
        Behaviour::Answer => sse(stream_events(&shared.name, &model), None),
        Behaviour::GatedStream(gate) => sse(stream_events(&shared.name, &model), Some(gate)),
        Behaviour::Hang => std::future::pending().await,
    }
}

/// An OpenAI-style error answer with `code`.
fn error(name: &str, code: u16) -> Response {
    let status = StatusCode::from_u16(code).expect("status");
    let error = serde_json::json!({"error": {"message": format!("{name} says {code}"), "type": "server_error", "param": null, "code": null}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        error.to_string(),
    )
        .into_response()
}

fn sse(events: Vec<Bytes>, gate: Option<Arc<Notify>>) -> Response {
    let stream = futures_util::stream::unfold(
        (events.into_iter(), gate, 0usize),
        |(mut events, gate, sent)| async move {
            let event = events.next()?;
            if sent == 1
                && let Some(gate) = &gate
            {
                gate.notified().await;
            }
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (events, gate, sent + 1),
            ))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}
