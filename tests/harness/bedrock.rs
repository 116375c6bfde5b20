//! A mock of AWS Bedrock's runtime on a loopback port: it verifies the SigV4 signature of every
//! request against the test's own credentials, as AWS does (a request whose signature does not
//! verify, whose key it does not know, or whose date is more than five minutes off gets AWS's
//! 403 and error type), and answers Converse and ConverseStream in their real wire formats: JSON,
//! and event-stream frames with their CRCs. It can throttle (429 `ThrottlingException`) or break
//! a stream after its first text. It answers with text, or, when given tools and no tool result
//! yet, with a call of the first tool; and InvokeModel of a Titan or Cohere embedding model with
//! [`bedrock_vector`]s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::loopback::Loopback;

/// How the mock answers a request whose signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BedrockBehaviour {
    Answer,
    /// 429 `ThrottlingException`.
    Throttle,
    /// A stream that sends its start and first text, then breaks the connection.
    BreakStream,
}

/// One request whose signature verified.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The path as sent, e.g. `/model/anthropic.claude-v2%3A1/converse`.
    pub path: String,
    pub access_key: String,
    pub session_token: Option<String>,
    pub body: Value,
}

struct Shared {
    region: String,
    /// Access key id to secret key.
    keys: HashMap<String, String>,
    behaviour: Mutex<BedrockBehaviour>,
    signed: Mutex<Vec<Signed>>,
    refused: Mutex<Vec<String>>,
}

/// The mock; stopped when dropped.
pub struct BedrockMock {
    /// Its base URL, for a provider's `base_url`.
    pub url: String,
    shared: Arc<Shared>,
    _server: Loopback,
}

impl BedrockMock {
    /// A mock of `region` that knows these access keys and their secrets.
    pub async fn start(region: &str, keys: &[(&str, &str)]) -> Self {
        let shared = Arc::new(Shared {
            region: region.into(),
            keys: keys
                .iter()
                .map(|(k, s)| (k.to_string(), s.to_string()))
                .collect(),
            behaviour: Mutex::new(BedrockBehaviour::Answer),
            signed: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = Loopback::serve(app).await;
        let url = format!("http://{}", server.addr);
        Self {
            url,
            shared,
            _server: server,
        }
    }

    pub fn set(&self, behaviour: BedrockBehaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// The requests whose signature verified, in order.
    pub fn signed(&self) -> Vec<Signed> {
        self.shared.signed.lock().unwrap().clone()
    }

    /// Why each refused request was refused (AWS's error type), in order.
    pub fn refused(&self) -> Vec<String> {
        self.shared.refused.lock().unwrap().clone()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("", |p| p.as_str()).to_string();
    let (access_key, session_token) = match verify(&shared, &path, &headers, &body) {
        Ok(who) => who,
        Err((kind, message)) => {
            shared.refused.lock().unwrap().push(kind.to_string());
            return aws_error(StatusCode::FORBIDDEN, kind, &message);
        }
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.signed.lock().unwrap().push(Signed {
        path: path.clone(),
        access_key,
        session_token,
        body: body.clone(),
    });
    let Some((model, operation)) = model_and_operation(uri.path()) else {
        return aws_error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "unknown operation",
        );
    };
    let behaviour = *shared.behaviour.lock().unwrap();
    match (behaviour, operation.as_str()) {
        (BedrockBehaviour::Throttle, _) => aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        (_, "invoke") => {
            let (answer, counted) = embeddings(&body, &model);
            let counted = counted.to_string();
            (
                [
                    ("content-type", "application/json"),
                    ("x-amzn-bedrock-input-token-count", counted.as_str()),
                ],
                answer.to_string(),
            )
                .into_response()
        }
        (_, "converse") => {
            let answer = answer(&body, &model);
            (
                [
                    ("content-type", "application/json"),
                    ("x-amzn-requestid", "req-1"),
                ],
                answer.to_string(),
            )
                .into_response()
        }
        (behaviour, "converse-stream") => {
            let mut frames: Vec<Result<Bytes, std::io::Error>> = stream_events(&body, &model)
                .iter()
                .map(|(kind, payload)| Ok(frame(kind, payload)))
                .collect();
            let broken = behaviour == BedrockBehaviour::BreakStream;
            if broken {
                frames.truncate(2);
            }
            // A break comes once the first frames are on their way.
            let end = futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(std::io::Error::other("connection broken"))
            })
            .filter(move |_| std::future::ready(broken));
            let body = Body::from_stream(futures_util::stream::iter(frames).chain(end));
            Response::builder()
                .header("content-type", "application/vnd.amazon.eventstream")
                .header("x-amzn-requestid", "req-2")
                .body(body)
                .expect("response")
        }
        _ => aws_error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "unknown operation",
        ),
    }
}

/// AWS's error answer: the type in `x-amzn-ErrorType`, the message in the body.
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let kind = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-amzn-errortype", kind.as_str()),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// The model id (decoded) and the operation of `/model/{id}/{operation}`.
fn model_and_operation(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/model/")?;
    let (model, operation) = rest.rsplit_once('/')?;
    let model = percent_encoding::percent_decode_str(model)
        .decode_utf8()
        .ok()?;
    Some((model.into_owned(), operation.to_string()))
}

type Refusal = (&'static str, String);

/// The access key and session token of a request whose signature verifies.
fn verify(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Option<String>), Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let invalid = |message: &str| ("InvalidSignatureException", message.to_string());
    let authorization = header("authorization").ok_or((
        "MissingAuthenticationTokenException",
        "Missing Authentication Token".to_string(),
    ))?;
    let credential = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .and_then(|rest| rest.split(',').next())
        .ok_or_else(|| invalid("Authorization header requires a Credential"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, _date, region, service, "aws4_request"] = scope[..] else {
        return Err(invalid("Credential should be scoped correctly"));
    };
    if region != shared.region || service != "bedrock" {
        return Err(invalid(
            "Credential should be scoped to a valid region and service",
        ));
    }
    let secret = shared.keys.get(access_key).ok_or((
        "UnrecognizedClientException",
        "The security token included in the request is invalid.".to_string(),
    ))?;
    let time = header("x-amz-date")
        .and_then(parse_amz_date)
        .ok_or_else(|| invalid("Authorization header requires an x-amz-date"))?;
    let skew = SystemTime::now()
        .duration_since(time)
        .unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Err(invalid("Signature expired"));
    }
    let token = header("x-amz-security-token").map(str::to_string);
    let signed_names: Vec<&str> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .ok_or_else(|| invalid("Authorization header requires SignedHeaders"))?
        .split(';')
        .collect();
    let signed: Vec<(&str, &str)> = signed_names
        .iter()
        .filter(|name| !matches!(**name, "x-amz-date" | "x-amz-security-token"))
        .filter_map(|name| Some((*name, header(name)?)))
        .collect();
    let host = header("host").ok_or_else(|| invalid("no host"))?;
    let url = format!("http://{host}{path}");
    let credentials = Credentials::new(access_key, secret, token.clone(), None, "mock");
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let request = SignableRequest::new("POST", &url, signed.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| invalid(&e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| invalid(&e.to_string()))?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.to_string());
    if expected.as_deref() != Some(authorization) {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok((access_key.to_string(), token))
}

/// `20261203T101500Z` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    if text.len() != 16 {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let time = aws_smithy_types::DateTime::from_str(
        &rfc3339,
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()?;
    SystemTime::try_from(time).ok()
}

/// The vector the mock embeds text number `index` in: `dimensions` numbers, the first the index.
pub fn bedrock_vector(index: usize, dimensions: usize) -> Vec<f32> {
    (0..dimensions)
        .map(|d| if d == 0 { index as f32 } else { 0.5 })
        .collect()
}

/// An InvokeModel answer of an embedding model: Titan's (one text, a token count) or Cohere's
/// (a list of texts, by embedding type), and the input tokens counted (5 a text for Cohere), which
/// Bedrock sends in a header.
fn embeddings(body: &Value, model: &str) -> (Value, usize) {
    if model.contains("titan-embed") {
        let dimensions = body["dimensions"].as_u64().unwrap_or(4) as usize;
        let tokens = body["inputText"].as_str().unwrap_or_default().len() / 4 + 1;
        let answer =
            json!({"embedding": bedrock_vector(0, dimensions), "inputTextTokenCount": tokens});
        return (answer, tokens);
    }
    let texts = body["texts"].as_array().cloned().unwrap_or_default();
    let vectors: Vec<Vec<f32>> = (0..texts.len()).map(|i| bedrock_vector(i, 4)).collect();
    let count = 5 * texts.len();
    let answer = json!({"id": "emb-1", "response_type": "embeddings_by_type", "texts": texts,
        "embeddings": {"float": vectors}});
    (answer, count)
}

/// The first tool's name, when the request offers tools and holds no tool result yet.
fn tool_to_call(body: &Value) -> Option<&str> {
    let has_result = body["messages"].as_array().into_iter().flatten().any(|m| {
        m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b.get("toolResult").is_some())
    });
    if has_result {
        return None;
    }
    body["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str()
}

/// The text the mock answers `model` with.
pub fn bedrock_text(model: &str) -> String {
    format!("Bedrock's {model} says hello.")
}

fn answer(body: &Value, model: &str) -> Value {
    let usage =
        json!({"inputTokens": 21, "outputTokens": 9, "totalTokens": 30, "cacheReadInputTokens": 4});
    let (content, stop) = match tool_to_call(body) {
        Some(tool) => (
            json!([{"toolUse": {"toolUseId": "tooluse_1", "name": tool, "input": {"city": "Paris"}}}]),
            "tool_use",
        ),
        None => (json!([{"text": bedrock_text(model)}]), "end_turn"),
    };
    json!({"output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 12}})
}

/// The events of a ConverseStream answer: type and payload.
fn stream_events(body: &Value, model: &str) -> Vec<(&'static str, Value)> {
    let mut events = vec![(
        "messageStart",
        json!({"role": "assistant", "p": "abcdefgh"}),
    )];
    let stop = match tool_to_call(body) {
        Some(tool) => {
            events.extend([
                (
                    "contentBlockStart",
                    json!({"contentBlockIndex": 0,
                    "start": {"toolUse": {"toolUseId": "tooluse_1", "name": tool}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"city\":"}}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
                ),
            ]);
            "tool_use"
        }
        None => {
            let text = bedrock_text(model);
            let (first, second) = text.split_at(text.len() / 2);
            events.extend([
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": first}}),
                ),
                (
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": second}}),
                ),
            ]);
            "end_turn"
        }
    };
    events.extend([
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        ("messageStop", json!({"stopReason": stop})),
        (
            "metadata",
            json!({"usage": {"inputTokens": 21, "outputTokens": 9, "totalTokens": 30},
            "metrics": {"latencyMs": 12}}),
        ),
    ]);
    events
}

/// One event-stream frame of an event.
fn frame(kind: &str, payload: &Value) -> Bytes {
    let string = |s: &str| HeaderValue::String(s.to_string().into());
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(":event-type", string(kind)))
        .add_header(Header::new(":content-type", string("application/json")))
        .add_header(Header::new(":message-type", string("event")));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).expect("frame encodes");
    Bytes::from(out)
}
