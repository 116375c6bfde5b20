//! A mock of Google's Gemini API on a loopback port, in its real formats: `generateContent`
//! answers as JSON, `streamGenerateContent?alt=sse` as SSE chunks (`\r\n\r\n` between them), and
//! errors as Google's `{"error": {"code", "message", "status"}}`. It checks the key as Google
//! does (none: 403 `PERMISSION_DENIED`; a wrong one: 400 `INVALID_ARGUMENT`), can be exhausted
//! (429 `RESOURCE_EXHAUSTED`) or break a stream after its first text. It answers with text, or,
//! when given functions and no function response yet, with a call of the first function.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::loopback::Loopback;

/// How the mock answers a request with the right key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeminiBehaviour {
    Answer,
    /// 429 `RESOURCE_EXHAUSTED`.
    Exhausted,
    /// A stream that sends its first chunk, then breaks the connection.
    BreakStream,
}

/// One request the mock received with the right key.
#[derive(Debug, Clone)]
pub struct GeminiReceived {
    /// The path and query, e.g. `/v1beta/models/gemini-2.5-flash:generateContent`.
    pub path: String,
    pub body: Value,
}

struct Shared {
    key: String,
    behaviour: Mutex<GeminiBehaviour>,
    received: Mutex<Vec<GeminiReceived>>,
}

/// The mock; stopped when dropped.
pub struct GeminiMock {
    /// Its base URL, for a provider's `base_url`.
    pub url: String,
    shared: Arc<Shared>,
    _server: Loopback,
}

impl GeminiMock {
    /// A mock that takes the API key `key`.
    pub async fn start(key: &str) -> Self {
        let shared = Arc::new(Shared {
            key: key.into(),
            behaviour: Mutex::new(GeminiBehaviour::Answer),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = Loopback::serve(app).await;
        let url = format!("http://{}/v1beta", server.addr);
        Self {
            url,
            shared,
            _server: server,
        }
    }

    pub fn set(&self, behaviour: GeminiBehaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// The requests received with the right key, in order.
    pub fn received(&self) -> Vec<GeminiReceived> {
        self.shared.received.lock().unwrap().clone()
    }
}

/// The text the mock answers `model` with.
pub fn gemini_text(model: &str) -> String {
    format!("Gemini's {model} says hello.")
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        None => {
            return google_error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers.",
            );
        }
        Some(key) if key != shared.key => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
            );
        }
        Some(_) => {}
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path_and_query().map_or("", |p| p.as_str()).to_string();
    shared.received.lock().unwrap().push(GeminiReceived {
        path: path.clone(),
        body: body.clone(),
    });
    let Some((model, operation)) = uri
        .path()
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split_once(':'))
    else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method");
    };
    let behaviour = *shared.behaviour.lock().unwrap();
    match (behaviour, operation) {
        (GeminiBehaviour::Exhausted, _) => google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        ),
        (_, "generateContent") => (
            [("content-type", "application/json")],
            answer(&body, model).to_string(),
        )
            .into_response(),
        (behaviour, "streamGenerateContent") if uri.query() == Some("alt=sse") => {
            let mut chunks: Vec<Result<Bytes, std::io::Error>> = stream_chunks(&body, model)
                .into_iter()
                .map(|c| Ok(Bytes::from(format!("data: {c}\r\n\r\n"))))
                .collect();
            let broken = behaviour == GeminiBehaviour::BreakStream;
            if broken {
                chunks.truncate(1);
            }
            let end = futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(std::io::Error::other("connection broken"))
            })
            .filter(move |_| std::future::ready(broken));
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(
                    futures_util::stream::iter(chunks).chain(end),
                ))
                .expect("response")
        }
        _ => google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method"),
    }
}

fn google_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": kind}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The first function's name, when the request declares functions and holds no response yet.
fn function_to_call(body: &Value) -> Option<&str> {
    let answered = body["contents"].as_array().into_iter().flatten().any(|c| {
        c["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p.get("functionResponse").is_some())
    });
    if answered {
        return None;
    }
    body["tools"][0]["functionDeclarations"][0]["name"].as_str()
}

fn usage() -> Value {
    json!({"promptTokenCount": 21, "cachedContentTokenCount": 4, "candidatesTokenCount": 9, "totalTokenCount": 30})
}

fn answer(body: &Value, model: &str) -> Value {
    let part = match function_to_call(body) {
        Some(name) => json!({"functionCall": {"name": name, "args": {"city": "Paris"}}}),
        None => json!({"text": gemini_text(model)}),
    };
    json!({"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage(), "modelVersion": model, "responseId": "resp-1"})
}

/// The chunks of a streamed answer.
fn stream_chunks(body: &Value, model: &str) -> Vec<Value> {
    let chunk = |part: Value, last: bool| {
        let mut candidate = json!({"content": {"role": "model", "parts": [part]}, "index": 0});
        let mut chunk = json!({"modelVersion": model, "responseId": "resp-2"});
        if last {
            candidate["finishReason"] = "STOP".into();
            chunk["usageMetadata"] = usage();
        }
        chunk["candidates"] = json!([candidate]);
        chunk
    };
    match function_to_call(body) {
        Some(name) => vec![chunk(
            json!({"functionCall": {"name": name, "args": {"city": "Paris"}}}),
            true,
        )],
        None => {
            let text = gemini_text(model);
            let (first, second) = text.split_at(text.len() / 2);
            vec![
                chunk(json!({"text": first}), false),
                chunk(json!({"text": second}), true),
            ]
        }
    }
}
