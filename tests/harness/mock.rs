//! A mock upstream on a loopback port that records every request: it answers as an
//! OpenAI-compatible server, as a small agent in whichever API its path names (`assistant`), or
//! with exactly the bytes a test scripts. It accepts a POST on any path (and, as an assistant, a
//! GET of a response it made), over HTTP/1.1 or HTTP/2.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;

use super::loopback::Loopback;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use super::assistant;

/// How the mock answers.
#[derive(Clone)]
pub enum Behaviour {
    /// A `chat.completion` (or, for `stream: true`, an SSE stream) from this mock.
    Answer,
    /// This status with an OpenAI-style error body.
    Status(u16),
    /// This status (429 or 503) with `Retry-After: SECONDS` and an OpenAI-style error body.
    RetryAfter(u16, u64),
    /// This status while the counter is above zero (counting it down), then answers.
    FailTimes(u16, Arc<AtomicUsize>),
    /// Stream: send the first event, then wait for `gate` before sending the rest.
    GatedStream(Arc<Notify>),
    /// Stream: send the first event, then nothing more, keeping the connection open.
    StallAfterFirst,
    /// Stream: send the first event, wait for `gate`, then break the connection.
    CutAfterFirst(Arc<Notify>),
    /// Accept the request and never answer.
    Hang,
    /// Hold a conversation in the API the path names (see `assistant`), keeping the Responses
    /// API responses it makes for follow-ups and `GET /responses/{id}`.
    Assistant,
    /// A 200 SSE stream of these events (each sent as written), then nothing more, keeping the
    /// connection open.
    SseThenHold(Vec<Bytes>),
    /// Exactly this answer: the status, the content type, and the body sent in these pieces (one
    /// write each, as a server streams events).
    Fixed {
        status: u16,
        content_type: &'static str,
        pieces: Vec<Bytes>,
    },
}

impl Behaviour {
    /// A JSON answer with `status`.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::Fixed {
            status,
            content_type: "application/json",
            pieces: vec![Bytes::from(body.to_string())],
        }
    }

    /// A 200 SSE stream of these events, each sent as written (with its blank line).
    pub fn sse(events: &[String]) -> Self {
        Self::Fixed {
            status: 200,
            content_type: "text/event-stream",
            pieces: events.iter().map(|e| Bytes::from(e.clone())).collect(),
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path and query, e.g. `/v1/messages`.
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

struct Shared {
    name: String,
    behaviour: Mutex<Behaviour>,
    received: Mutex<Vec<Received>>,
    /// Streamed answers whose connection went away before they were sent whole.
    streams_abandoned: AtomicUsize,
    /// The Responses API responses the assistant made.
    kept: assistant::Kept,
}

/// A running mock upstream; it stops when dropped.
pub struct MockUpstream {
    /// Base URL to put in a provider's `base_url` (ends in `/v1`).
    pub url: String,
    shared: Arc<Shared>,
    _server: Loopback,
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
            streams_abandoned: AtomicUsize::new(0),
            kept: assistant::Kept::default(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = Loopback::serve(app).await;
        let url = format!("http://{}/v1", server.addr);
        Self {
            url,
            shared,
            _server: server,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Forget the requests received so far.
    pub fn clear(&self) {
        self.shared.received.lock().unwrap().clear();
    }

    /// How many streamed answers were dropped unfinished (the client went away).
    pub fn streams_abandoned(&self) -> usize {
        self.shared.streams_abandoned.load(Ordering::SeqCst)
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

    /// The exact SSE events this mock streams for `model`, `[DONE]` last, when not asked for
    /// usage.
    pub fn stream_events(&self, model: &str) -> Vec<Bytes> {
        stream_events(&self.shared.name, model, false)
    }

    /// The same with the usage event (`stream_options.include_usage`) before `[DONE]`: 5 input
    /// and 5 output tokens.
    pub fn stream_events_with_usage(&self, model: &str) -> Vec<Bytes> {
        stream_events(&self.shared.name, model, true)
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

/// An embeddings `list` for `request`: input `i` gets the vector [`embedding_of`]`(i)` (as floats,
/// or base64 when asked), usage 7 prompt tokens.
fn embeddings(model: &str, request: &serde_json::Value) -> Bytes {
    use base64::Engine;
    let inputs = match &request["input"] {
        serde_json::Value::Array(items) if items.iter().all(|i| !i.is_number()) => items.len(),
        _ => 1,
    };
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<serde_json::Value> = (0..inputs)
        .map(|i| {
            let vector = embedding_of(i);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                serde_json::json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(vector)
            };
            serde_json::json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let body = serde_json::json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 7, "total_tokens": 7}
    });
    Bytes::from(body.to_string())
}

/// The vector a mock answers for input `index` of an embeddings request.
pub fn embedding_of(index: usize) -> Vec<f32> {
    vec![0.25 * (index + 1) as f32, -0.5, 0.125]
}

fn stream_events(name: &str, model: &str, usage: bool) -> Vec<Bytes> {
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
    if usage {
        let chunk = serde_json::json!({
            "id": format!("chatcmpl-{name}"),
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
        });
        events.push(Bytes::from(format!("data: {chunk}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let assistant = body.clone();
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let usage = body["stream_options"]["include_usage"] == true;
    shared.received.lock().unwrap().push(Received {
        path: uri.path_and_query().map_or("", |p| p.as_str()).to_string(),
        version,
        headers,
        body,
    });
    let mut behaviour = shared.behaviour.lock().unwrap().clone();
    if let Behaviour::FailTimes(code, left) = &behaviour {
        let failing = left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        behaviour = if failing {
            Behaviour::Status(*code)
        } else {
            Behaviour::Answer
        };
    }
    match behaviour {
        Behaviour::Assistant if method == Method::GET => {
            let id = uri.path().rsplit('/').next().unwrap_or_default();
            assistant::retrieve(id, &shared.kept)
        }
        Behaviour::Assistant => {
            assistant::answer(&shared.name, uri.path(), &assistant, &shared.kept)
        }
        _ if method != Method::POST => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        Behaviour::Status(code) => error(&shared.name, code),
        Behaviour::RetryAfter(code, seconds) => {
            let mut response = error(&shared.name, code);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
            response
        }
        Behaviour::Answer if uri.path().ends_with("/embeddings") => (
            [(header::CONTENT_TYPE, "application/json")],
            embeddings(
                &model,
                &shared.received.lock().unwrap().last().unwrap().body,
            ),
        )
            .into_response(),
        Behaviour::Answer if !stream => (
            [(header::CONTENT_TYPE, "application/json")],
            answer(&shared.name, &model),
        )
            .into_response(),
        Behaviour::Answer => sse(&shared, &model, usage, Hold::None),
        Behaviour::GatedStream(gate) => sse(&shared, &model, usage, Hold::Gate(gate)),
        Behaviour::StallAfterFirst => sse(&shared, &model, usage, Hold::Forever),
        Behaviour::CutAfterFirst(gate) => sse(&shared, &model, usage, Hold::Cut(gate)),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::SseThenHold(events) => {
            let events = futures_util::StreamExt::chain(
                futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>)),
                futures_util::stream::pending(),
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(events))
                .expect("response")
        }
        Behaviour::Fixed {
            status,
            content_type,
            pieces,
        } => {
            let pieces = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, Infallible>));
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from_stream(pieces))
                .expect("response")
        }
        Behaviour::FailTimes(..) => unreachable!("resolved above"),
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

/// What a streamed answer does after its first event.
enum Hold {
    None,
    Gate(Arc<Notify>),
    Forever,
    Cut(Arc<Notify>),
}

/// Counts a streamed answer as abandoned if it is dropped before it is done.
struct Unfinished {
    shared: Arc<Shared>,
    done: bool,
}

impl Unfinished {
    fn mark_done(&mut self) {
        self.done = true;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.done {
            self.shared.streams_abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn sse(shared: &Arc<Shared>, model: &str, usage: bool, hold: Hold) -> Response {
    let events = stream_events(&shared.name, model, usage);
    let unfinished = Unfinished {
        shared: shared.clone(),
        done: false,
    };
    let stream = futures_util::stream::unfold(
        (events.into_iter(), hold, 0usize, unfinished),
        |(mut events, hold, sent, mut unfinished)| async move {
            if sent == 1 {
                match &hold {
                    Hold::None => {}
                    Hold::Gate(gate) => gate.notified().await,
                    Hold::Forever => std::future::pending().await,
                    Hold::Cut(gate) => {
                        gate.notified().await;
                        unfinished.mark_done();
                        let cut = std::io::Error::other("the mock cuts the stream");
                        return Some((Err(cut), (events, Hold::None, usize::MAX, unfinished)));
                    }
                }
            }
            if sent == usize::MAX {
                return None;
            }
            let Some(event) = events.next() else {
                unfinished.mark_done();
                return None;
            };
            Some((Ok(event), (events, hold, sent + 1, unfinished)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}
