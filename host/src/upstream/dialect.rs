//! Upstream APIs the proxy reaches by way of Anthropic Messages: AWS Bedrock's Converse and
//! Google's Gemini. To the rest of the proxy such a provider speaks Messages; here, its request
//! body is translated from Messages, the request is authorized (Bedrock's SigV4; Gemini's key
//! is an ordinary header), and its answer, error or stream comes back as Messages, which the
//! usual translation then hands to the client in its own API. This module only dispatches;
//! translations live in `api::translate`, framings in `bedrock` and `gemini`.

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::Url;

use super::attempt::AttemptError;
use super::bedrock::{self, Bedrock};
use super::gemini;
use crate::api::translate::{self, EmbeddingFamily};
use crate::api::{ApiError, ClientRequest, Operation, Wire};

/// What an answer's head says that its translation needs.
#[derive(Debug)]
pub struct AnswerHead {
    /// The id its message gets.
    message_id: String,
    /// Bedrock's error type (`x-amzn-ErrorType`).
    error_type: Option<String>,
    /// The input tokens Bedrock counted (`x-amzn-bedrock-input-token-count`).
    input_tokens: Option<u64>,
}

/// An upstream API reached by way of Anthropic Messages.
#[derive(Debug)]
pub enum Dialect {
    /// AWS Bedrock's Converse API, with the provider's region and credentials.
    Bedrock(Box<Bedrock>),
    /// Google's Gemini API (`generateContent`).
    Gemini,
}

/// Gemini's API when the config names no `base_url`.
pub const GEMINI_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";

impl Dialect {
    /// Where a request for `model` goes (streamed when `stream`).
    pub fn url(&self, base: &Url, model: &str, stream: bool) -> Result<Url, String> {
        match self {
            Self::Bedrock(_) => Bedrock::url(base, model, stream),
            Self::Gemini => gemini::url(base, model, stream),
        }
    }

    /// Where embeddings requests for `model` go: Bedrock's InvokeModel of a Titan or Cohere
    /// model. Gemini's embeddings are not served.
    pub fn embeddings_url(&self, base: &Url, model: &str) -> Result<Url, String> {
        match self {
            Self::Bedrock(_) if EmbeddingFamily::of(model).is_some() => {
                Bedrock::invoke_url(base, model)
            }
            Self::Bedrock(_) => Err(
                "a Bedrock embedding model must be Amazon Titan Text Embeddings (`amazon.titan-embed-text-*`) or Cohere Embed (`cohere.embed-*`)"
                    .into(),
            ),
            Self::Gemini => Err(
                "a `gemini` provider serves chat models only; embeddings through it are not supported yet"
                    .into(),
            ),
        }
    }

    /// A Messages body in this API.
    pub fn request(&self, messages: &[u8]) -> Result<Bytes, ApiError> {
        match self {
            Self::Bedrock(_) => translate::anthropic_to_converse(messages),
            Self::Gemini => translate::anthropic_to_gemini(messages),
        }
        .map(Bytes::from)
    }

    /// Add what authorizes a POST of `body` to `url` to its `headers`.
    pub async fn authorize(
        &self,
        url: &Url,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), AttemptError> {
        match self {
            // Boxed: signing (which may fetch credentials) is a future of kilobytes, and every
            // future that awaits this one, up to the request's, would otherwise be that large
            // and be copied whole at each level, for every request to any provider.
            Self::Bedrock(bedrock) => Box::pin(bedrock.sign(url, headers, body))
                .await
                .map_err(|e| AttemptError::Auth(e.to_string())),
            Self::Gemini => Ok(()),
        }
    }

    /// An embeddings request (OpenAI's body) for `model` in this API: Bedrock's InvokeModel of
    /// a Titan or Cohere model.
    pub fn embeddings_request(&self, body: &[u8], model: &str) -> Result<Bytes, ApiError> {
        let family = match self {
            Self::Bedrock(_) => EmbeddingFamily::of(model),
            Self::Gemini => None,
        }
        .ok_or_else(|| ApiError::invalid(Some("model"), "this model serves no embeddings"))?;
        translate::embeddings_to_invoke(body, family).map(Bytes::from)
    }

    /// What an answer's head says that its body's translation needs, taken before the body is
    /// read.
    pub fn head(&self, headers: &HeaderMap) -> AnswerHead {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        AnswerHead {
            message_id: message_id(self, headers),
            error_type: header("x-amzn-errortype").map(str::to_owned),
            input_tokens: header("x-amzn-bedrock-input-token-count").and_then(|v| v.parse().ok()),
        }
    }

    /// An answer read whole to `req`, with its `status` and `head`: for a chat request, as
    /// Messages (an answer from `model`, or an error body); for embeddings, as OpenAI's list or
    /// error.
    pub fn answer(
        &self,
        status: StatusCode,
        head: &AnswerHead,
        bytes: &[u8],
        model: &str,
        req: &ClientRequest,
    ) -> Result<Bytes, AttemptError> {
        if req.operation == Operation::Embeddings {
            return embeddings_answer(status, head, bytes, model, req);
        }
        if !status.is_success() {
            return Ok(match self {
                Self::Bedrock(_) => {
                    let error_type = head.error_type.as_deref();
                    translate::converse_error(status.as_u16(), error_type, bytes)
                }
                Self::Gemini => translate::gemini_error(status.as_u16(), bytes),
            }
            .into());
        }
        let id = &head.message_id;
        match self {
            Self::Bedrock(_) => translate::converse_answer(bytes, model, id),
            Self::Gemini => translate::gemini_answer(bytes, model, id),
        }
        .map(Bytes::from)
        .map_err(AttemptError::BadAnswer)
    }

    /// A streamed answer's body as Messages SSE events.
    pub fn events(
        &self,
        response: reqwest::Response,
        model: &str,
    ) -> BoxStream<'static, Result<Bytes, String>> {
        let id = message_id(self, response.headers());
        let body = Box::pin(response.bytes_stream());
        match self {
            Self::Bedrock(_) => {
                let translator = translate::ConverseEvents::new(id, model.into());
                bedrock::converse_sse(body, translator).boxed()
            }
            Self::Gemini => {
                let translator = translate::GeminiEvents::new(id, model.into());
                gemini::gemini_sse(body, translator).boxed()
            }
        }
    }
}

/// A source of translated stream events: the next non-empty run of them, `None` at its end.
pub(super) trait Events: Send + 'static {
    fn next_events(&mut self) -> impl Future<Output = Option<Result<Bytes, String>>> + Send;
}

/// The events of `source`, ending after its end or its first error.
pub(super) fn events_of(
    source: impl Events,
) -> impl futures_util::Stream<Item = Result<Bytes, String>> + Send {
    futures_util::stream::unfold(Some(source), |source| async move {
        let mut source = source?;
        let item = source.next_events().await?;
        let more = item.is_ok();
        Some((item, more.then_some(source)))
    })
}

/// An InvokeModel embeddings answer as OpenAI's list, or its error in OpenAI's shape.
fn embeddings_answer(
    status: StatusCode,
    head: &AnswerHead,
    bytes: &[u8],
    model: &str,
    req: &ClientRequest,
) -> Result<Bytes, AttemptError> {
    if !status.is_success() {
        return Ok(translate::error_body(Wire::Openai, status, bytes).into());
    }
    let family = EmbeddingFamily::of(model)
        .ok_or_else(|| AttemptError::BadAnswer("not an embedding model".into()))?;
    let base64 = req.field("encoding_format") == Some(&b"\"base64\""[..]);
    let estimate = u64::from(req.estimated_input_tokens());
    let tokens = (head.input_tokens, estimate);
    translate::invoke_embeddings_answer(bytes, family, model, base64, tokens)
        .map(Bytes::from)
        .map_err(AttemptError::BadAnswer)
}

/// The id of a message this API answered: Bedrock's request id, which AWS's logs know it by, or
/// a fresh one.
fn message_id(dialect: &Dialect, headers: &HeaderMap) -> String {
    let request_id = headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .filter(|_| matches!(dialect, Dialect::Bedrock(_)));
    match request_id {
        Some(id) => format!("msg_bdrk_{id}"),
        None => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every attempt awaits `authorize`, so its future's size is added to every request's; the
    /// Bedrock signature's (kilobytes) must stay behind a box.
    #[test]
    fn authorizing_is_a_small_future() {
        let url = Url::parse("https://example.com/").expect("URL");
        let mut headers = HeaderMap::new();
        let authorizing = Dialect::Gemini.authorize(&url, &mut headers, b"{}");
        assert!(
            std::mem::size_of_val(&authorizing) <= 256,
            "{} bytes",
            std::mem::size_of_val(&authorizing)
        );
    }
}
