//! Watching a streamed answer after it was committed to the client, and accounting for it.
//!
//! Events pass through as each one completes, never buffered beyond the event being received.
//! Once the first byte has gone to the client there is no failing over, but there is no silent
//! truncation either: a stream that stalls (no data for the idle timeout), breaks, or ends without
//! its closing `data: [DONE]` gets a final SSE error event in OpenAI's shape,
//! `data: {"error": {...}}`, and a log line naming the request and model.
//!
//! The usage event at the end of an OpenAI-format stream (`"choices": [], "usage": {...}`) is read
//! for accounting; when the proxy asked for it and the client did not, it is taken out of what
//! the client sees. When the stream ends, however it ends (the client going away included), a
//! [`StreamSummary`] is sent to whoever keeps the request's books. Dropping the stream drops the
//! upstream response with it, which closes that connection.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::oneshot;

use super::usage::Usage;

/// How a streamed answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// With `data: [DONE]`.
    Done,
    /// Nothing arrived for the idle timeout.
    Stalled,
    /// The upstream connection broke.
    Cut,
    /// The upstream ended without `data: [DONE]`.
    Unfinished,
    /// The client went away first.
    ClientGone,
}

impl StreamEnd {
    /// A stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Stalled => "stalled",
            Self::Cut => "cut",
            Self::Unfinished => "unfinished",
            Self::ClientGone => "client-gone",
        }
    }
}

/// What a finished stream tells the request's books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSummary {
    pub end: StreamEnd,
    /// The usage event's figures, when one came.
    pub usage: Option<Usage>,
    /// Time from the start of the stream to its first byte.
    pub first_byte: Option<Duration>,
}

/// What to do with the stream's usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageEvent {
    /// The client asked for it: read it and pass it on.
    Pass,
    /// Only the proxy asked for it: read it and take it out.
    Take,
}

/// The request a stream belongs to and how to watch it.
#[derive(Debug)]
pub struct StreamContext {
    pub request_id: Arc<str>,
    pub model: String,
    /// Longest quiet time between chunks before the stream counts as stalled.
    pub idle: Duration,
    pub usage_event: UsageEvent,
    /// Where the summary goes when the stream ends.
    pub summary: oneshot::Sender<StreamSummary>,
}

type Upstream<E> = Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>;

struct State<E> {
    upstream: Upstream<E>,
    request_id: Arc<str>,
    model: String,
    idle: Duration,
    usage_event: UsageEvent,
    summary: Option<oneshot::Sender<StreamSummary>>,
    started: Instant,
    first_byte: Option<Duration>,
    /// Bytes of the event being received.
    pending: BytesMut,
    usage: Option<Usage>,
    saw_done: bool,
    finished: bool,
}

/// `upstream`'s events for the client, followed by an error event if it stalls, breaks or ends
/// unfinished; the summary goes to `context.summary` at the end.
pub fn guarded<E: Display + Send + 'static>(
    upstream: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    context: StreamContext,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let state = State {
        upstream: Box::pin(upstream),
        request_id: context.request_id,
        model: context.model,
        idle: context.idle,
        usage_event: context.usage_event,
        summary: Some(context.summary),
        started: Instant::now(),
        first_byte: None,
        pending: BytesMut::new(),
        usage: None,
        saw_done: false,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let out = state.next_output().await;
        Some((Ok(out), state))
    })
}

impl<E: Display> State<E> {
    /// The next bytes for the client: whole events, or the stream's last bytes and error event.
    async fn next_output(&mut self) -> Bytes {
        loop {
            let next = tokio::time::timeout(self.idle, self.upstream.next()).await;
            let (end, message) = match next {
                Ok(Some(Ok(chunk))) => {
                    self.first_byte
                        .get_or_insert_with(|| self.started.elapsed());
                    self.pending.extend_from_slice(&chunk);
                    let events = self.complete_events();
                    if events.is_empty() {
                        continue;
                    }
                    return events;
                }
                Ok(None) if self.saw_done || self.pending_is_done() => {
                    return self.finish(StreamEnd::Done, None);
                }
                Ok(None) => (
                    StreamEnd::Unfinished,
                    "the upstream ended the stream before it was complete".to_string(),
                ),
                Ok(Some(Err(e))) => (
                    StreamEnd::Cut,
                    format!("the upstream stream broke off ({e})"),
                ),
                Err(_) => (
                    StreamEnd::Stalled,
                    format!(
                        "the upstream stream stalled: nothing for {} ms",
                        self.idle.as_millis()
                    ),
                ),
            };
            return self.finish(end, Some(message));
        }
    }

    /// Split the complete events off `pending`, keeping those the client gets.
    fn complete_events(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        while let Some(end) = event_end(&self.pending) {
            let event = self.pending.split_to(end);
            if self.inspect(&event) {
                out.extend_from_slice(&event);
            }
        }
        out.freeze()
    }

    /// Learn from one event; false when it is the usage event the client did not ask for.
    fn inspect(&mut self, event: &[u8]) -> bool {
        let data = data_of(event);
        if data == b"[DONE]" {
            self.saw_done = true;
            return true;
        }
        if !contains(data, b"\"usage\"") {
            return true;
        }
        #[derive(Deserialize)]
        struct Chunk {
            #[serde(default)]
            choices: Option<Vec<IgnoredAny>>,
            #[serde(default)]
            usage: Option<Usage>,
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
            return true;
        };
        let Some(usage) = chunk.usage else {
            return true;
        };
        self.usage = Some(usage);
        let usage_only = chunk.choices.is_none_or(|c| c.is_empty());
        !(usage_only && self.usage_event == UsageEvent::Take)
    }

    fn pending_is_done(&self) -> bool {
        data_of(&self.pending) == b"[DONE]"
    }

    /// End the stream: its last incomplete bytes, an error event if `fault` says why, and the
    /// summary.
    fn finish(&mut self, end: StreamEnd, fault: Option<String>) -> Bytes {
        self.finished = true;
        let mut out = std::mem::take(&mut self.pending);
        if let Some(message) = fault {
            let code = match end {
                StreamEnd::Stalled => "upstream_stream_stalled",
                StreamEnd::Cut => "upstream_stream_cut",
                _ => "upstream_stream_unfinished",
            };
            tracing::warn!(
                request_id = %self.request_id,
                model = %self.model,
                code,
                "{message}; the client gets an error event"
            );
            out.extend_from_slice(&error_event(code, &message));
        }
        self.send_summary(end);
        out.freeze()
    }

    fn send_summary(&mut self, end: StreamEnd) {
        if let Some(summary) = self.summary.take() {
            let _ = summary.send(StreamSummary {
                end,
                usage: self.usage,
                first_byte: self.first_byte,
            });
        }
    }
}

impl<E> Drop for State<E> {
    fn drop(&mut self) {
        // Dropped before it finished: the client went away.
        if let Some(summary) = self.summary.take() {
            let _ = summary.send(StreamSummary {
                end: StreamEnd::ClientGone,
                usage: self.usage,
                first_byte: self.first_byte,
            });
        }
    }
}

/// The end of the first complete event in `buf` (after its blank line), if there is one.
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|at| at + 2);
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The payload of an event's `data:` line, trimmed.
fn data_of(event: &[u8]) -> &[u8] {
    let event = event.trim_ascii();
    event
        .strip_prefix(b"data:")
        .map_or(event, |data| data.trim_ascii())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// The client's bytes and the summary of a stream of `chunks` (then silence if `stall`).
    async fn run(
        chunks: Vec<&'static [u8]>,
        stall: bool,
        usage_event: UsageEvent,
    ) -> (String, StreamSummary) {
        let items = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(Bytes::from(c))),
        );
        let upstream: Upstream<Infallible> = if stall {
            Box::pin(items.chain(futures_util::stream::pending()))
        } else {
            Box::pin(items)
        };
        let (tx, rx) = oneshot::channel();
        let context = StreamContext {
            request_id: "r".into(),
            model: "m".into(),
            idle: Duration::from_millis(20),
            usage_event,
            summary: tx,
        };
        let out: Vec<_> = guarded(upstream, context).collect().await;
        let text: Vec<u8> = out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        (String::from_utf8(text).unwrap(), rx.await.unwrap())
    }

    const USAGE: &[u8] =
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n";

    #[tokio::test]
    async fn events_pass_whole_and_the_usage_event_is_read() {
        let chunks = vec![
            &b"data: {\"a\":1}\n\nda"[..],
            b"ta: {\"b\":2}\n\n",
            USAGE,
            b"data: [DO",
            b"NE]\n\n",
        ];
        let (text, summary) = run(chunks.clone(), false, UsageEvent::Take).await;
        assert_eq!(
            text,
            "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(summary.end, StreamEnd::Done);
        assert_eq!(
            summary.usage,
            Some(Usage {
                input_tokens: 7,
                output_tokens: 3
            })
        );
        assert!(summary.first_byte.is_some());
        let (text, _) = run(chunks, false, UsageEvent::Pass).await;
        assert!(
            text.contains("\"usage\""),
            "the client asked for it: {text}"
        );
    }

    #[tokio::test]
    async fn an_unfinished_or_stalled_stream_ends_with_an_error_event() {
        let (text, summary) = run(vec![b"data: {\"a\":1}\n\n"], false, UsageEvent::Take).await;
        assert!(
            text.starts_with("data: {\"a\":1}\n\ndata: {\"error\":"),
            "{text}"
        );
        assert!(
            text.contains("\"code\":\"upstream_stream_unfinished\""),
            "{text}"
        );
        assert_eq!(summary.end, StreamEnd::Unfinished);

        let (text, summary) = run(vec![b"data: {\"a\":1}\n\n"], true, UsageEvent::Take).await;
        assert!(
            text.contains("\"code\":\"upstream_stream_stalled\""),
            "{text}"
        );
        assert!(text.ends_with("\n\n"));
        assert_eq!(summary.end, StreamEnd::Stalled);
    }

    #[tokio::test]
    async fn a_dropped_stream_reports_the_client_gone() {
        let (tx, rx) = oneshot::channel();
        let upstream = futures_util::stream::pending::<Result<Bytes, Infallible>>();
        let context = StreamContext {
            request_id: "r".into(),
            model: "m".into(),
            idle: Duration::from_secs(60),
            usage_event: UsageEvent::Take,
            summary: tx,
        };
        drop(guarded(upstream, context));
        assert_eq!(rx.await.unwrap().end, StreamEnd::ClientGone);
    }
}
