//! Watching a streamed answer after it was committed to the client.
//!
//! Once the first byte of a stream has gone to the client there is no failing over, but there is
//! no silent truncation either: an upstream stream that stalls (no data for the idle timeout),
//! breaks, or ends without its closing `data: [DONE]` gets a final SSE error event in OpenAI's
//! shape, `data: {"error": {...}}`, and a log line naming the request and model. Chunks pass
//! through as they arrive, never buffered. Dropping the stream (the client went away) drops the
//! upstream response with it, which closes that connection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// How an OpenAI-compatible stream ends when it ends well.
const DONE: &[u8] = b"data: [DONE]";
/// Bytes of the stream's end kept to look for [`DONE`].
const TAIL: usize = 32;

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// What the log line and error event of a broken stream name.
#[derive(Debug, Clone)]
pub struct StreamContext {
    pub request_id: Arc<str>,
    pub model: String,
    /// Longest quiet time between chunks before the stream counts as stalled.
    pub idle: Duration,
}

struct State {
    upstream: Upstream,
    context: StreamContext,
    tail: Vec<u8>,
    finished: bool,
}

/// `upstream`'s chunks, followed by an error event if it stalls, breaks or ends unfinished.
pub fn guarded(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    context: StreamContext,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let state = State {
        upstream: Box::pin(upstream),
        context,
        tail: Vec::with_capacity(TAIL * 2),
        finished: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let next = tokio::time::timeout(state.context.idle, state.upstream.next()).await;
        let fault = match next {
            Ok(Some(Ok(chunk))) => {
                state.remember(&chunk);
                return Some((Ok(chunk), state));
            }
            Ok(None) if state.ended_well() => return None,
            Ok(None) => (
                "upstream_stream_unfinished",
                "the upstream ended the stream before it was complete".to_string(),
            ),
            Ok(Some(Err(e))) => (
                "upstream_stream_cut",
                format!("the upstream stream broke off ({})", innermost(&e)),
            ),
            Err(_) => (
                "upstream_stream_stalled",
                format!(
                    "the upstream stream stalled: nothing for {} ms",
                    state.context.idle.as_millis()
                ),
            ),
        };
        let (code, message) = fault;
        tracing::warn!(
            request_id = %state.context.request_id,
            model = %state.context.model,
            code,
            "{message}; the client gets an error event"
        );
        state.finished = true;
        Some((Ok(error_event(code, &message)), state))
    })
}

impl State {
    fn remember(&mut self, chunk: &[u8]) {
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    fn ended_well(&self) -> bool {
        self.tail.trim_ascii_end().ends_with(DONE)
    }
}

/// An SSE event carrying an OpenAI-style error.
pub fn error_event(code: &str, message: &str) -> Bytes {
    let error = serde_json::json!({"error": {
        "message": message,
        "type": "server_error",
        "param": null,
        "code": code,
    }});
    Bytes::from(format!("data: {error}\n\n"))
}

fn innermost(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(idle_ms: u64) -> StreamContext {
        StreamContext {
            request_id: "r".into(),
            model: "m".into(),
            idle: Duration::from_millis(idle_ms),
        }
    }

    async fn collect(chunks: Vec<&'static [u8]>, then_stall: bool) -> Vec<u8> {
        let items = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        let upstream: Upstream = if then_stall {
            Box::pin(items.chain(futures_util::stream::pending()))
        } else {
            Box::pin(items)
        };
        let out: Vec<_> = guarded(upstream, context(20)).collect().await;
        out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect()
    }

    #[tokio::test]
    async fn a_finished_stream_passes_through_unchanged() {
        let body = collect(
            vec![b"data: {\"a\":1}\n\n", b"data: [DO", b"NE]\n\n"],
            false,
        )
        .await;
        assert_eq!(body, b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
    }

    #[tokio::test]
    async fn an_unfinished_or_stalled_stream_ends_with_an_error_event() {
        let body = collect(vec![b"data: {\"a\":1}\n\n"], false).await;
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.starts_with("data: {\"a\":1}\n\ndata: {\"error\":"),
            "{text}"
        );
        assert!(
            text.contains("\"code\":\"upstream_stream_unfinished\""),
            "{text}"
        );

        let body = collect(vec![b"data: {\"a\":1}\n\n"], true).await;
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains("\"code\":\"upstream_stream_stalled\""),
            "{text}"
        );
        assert!(text.ends_with("\n\n"));
    }
}
