//! Watching a streamed answer after it was committed to the client, and accounting for it.
//!
//! Events pass through as each one completes, never buffered beyond the event being received;
//! when the upstream speaks the other API than the client, each event is translated on the way
//! (`api::translate`). Once the first byte has gone to the client there is no failing over, but
//! there is no silent truncation either: a stream that stalls (no data for the idle timeout),
//! breaks, or ends without its closing event (`data: [DONE]`, Anthropic's `message_stop`) gets a
//! final SSE error event in the client's API shape and a log line naming the request and model;
//! so does a stream the proxy cuts at its drain deadline. An error event the upstream sends
//! itself is passed on (translated) and ends the stream there, without a second one.
//!
//! Usage is read for accounting from the upstream's own events: the usage event at the end of an
//! OpenAI-format stream (`"choices": [], "usage": {...}`), taken out of what the client sees when
//! only the proxy asked for it; Anthropic's `message_start` and `message_delta`. When the stream
//! ends, however it ends (the client going away included), a [`StreamSummary`] is sent to
//! whoever keeps the request's books. A Responses client's completed stream first has the
//! response it made kept ([`Keep`]), so a follow-up naming it finds it. Dropping the stream drops the
//! upstream response with it, which closes that connection.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio_util::sync::CancellationToken;

use super::health::StreamWatch;
use super::usage::Usage;
use crate::api::Wire;
use crate::api::translate::{MadeResponse, ResponseFrame, StreamTranslator};

/// How a streamed answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// With `data: [DONE]`.
    Done,
    /// Nothing arrived for the idle timeout.
    Stalled,
    /// The upstream connection broke.
    Cut,
    /// The upstream ended without its closing event.
    Unfinished,
    /// The upstream sent an error event.
    UpstreamError,
    /// The proxy cut it at its drain deadline, while shutting down.
    Drained,
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
            Self::UpstreamError => "upstream-error",
            Self::Drained => "drained",
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
    /// When the first event with content (text or a tool call) arrived.
    pub first_token_at: Option<Instant>,
}

/// Keeps the response a Responses client's answer made (for follow-ups), given the catalog model
/// that made it, before the client hears that it is complete.
pub type Keep = Box<dyn FnOnce(MadeResponse, String) -> BoxFuture<'static, ()> + Send>;

/// What to do with the stream's usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageEvent {
    /// The client asked for it: read it and pass it on.
    Pass,
    /// Only the proxy asked for it: read it and take it out.
    Take,
}

/// The request a stream belongs to and how to watch it.
pub struct StreamContext {
    pub request_id: Arc<str>,
    pub model: String,
    /// Longest quiet time between chunks before the stream counts as stalled.
    pub idle: Duration,
    pub usage_event: UsageEvent,
    /// The upstream's API.
    pub upstream: Wire,
    /// The client's API, and whether an OpenAI client asked for the usage event.
    pub client: Wire,
    pub client_usage: bool,
    /// For a Responses client, the response its answer makes, and what keeps it.
    pub frame: Option<ResponseFrame>,
    pub keep: Option<Keep>,
    /// The model's health, told about the stream; `None` for an in-process provider.
    pub watch: Option<StreamWatch>,
    /// The provider's concurrency permit, held until the stream ends.
    pub slot: Option<OwnedSemaphorePermit>,
    /// Where the summary goes when the stream ends.
    pub summary: oneshot::Sender<StreamSummary>,
    /// Cancelled at the proxy's drain deadline: the stream then ends at once, with an error
    /// event for its client.
    pub cut: CancellationToken,
}

type Upstream<E> = Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>;

struct State<E> {
    upstream: Upstream<E>,
    request_id: Arc<str>,
    model: String,
    idle: Duration,
    usage_event: UsageEvent,
    upstream_wire: Wire,
    translator: StreamTranslator,
    keep: Option<Keep>,
    watch: Option<StreamWatch>,
    _slot: Option<OwnedSemaphorePermit>,
    summary: Option<oneshot::Sender<StreamSummary>>,
    cut: CancellationToken,
    started: Instant,
    first_byte: Option<Duration>,
    /// Bytes of the event being received.
    pending: BytesMut,
    usage: Option<Usage>,
    /// When the first event with content (text or a tool call) arrived.
    first_token_at: Option<Instant>,
    finished: bool,
}

/// The translator from the upstream's events to the client's.
fn translator(context: &StreamContext) -> StreamTranslator {
    let created = crate::clock::unix_secs();
    match (&context.frame, context.upstream) {
        (Some(frame), from) if from != Wire::Responses => {
            StreamTranslator::to_responses(from, frame.clone(), created)
        }
        _ => StreamTranslator::new(
            context.upstream,
            context.client,
            context.client_usage,
            created,
        ),
    }
}

/// `upstream`'s events for the client, followed by an error event if it stalls, breaks or ends
/// unfinished; the summary goes to `context.summary` at the end.
pub fn guarded<E: Display + Send + 'static>(
    upstream: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    context: StreamContext,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let translator = translator(&context);
    let state = State {
        upstream: Box::pin(upstream),
        request_id: context.request_id,
        model: context.model,
        idle: context.idle,
        usage_event: context.usage_event,
        upstream_wire: context.upstream,
        translator,
        keep: context.keep,
        watch: context.watch,
        _slot: context.slot,
        summary: Some(context.summary),
        cut: context.cut,
        started: Instant::now(),
        first_byte: None,
        pending: BytesMut::new(),
        usage: None,
        first_token_at: None,
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
            let next = tokio::select! {
                biased;
                () = self.cut.cancelled() => {
                    let message = "the proxy is shutting down and cut the stream at its drain deadline";
                    return self.finish(StreamEnd::Drained, Some(message.into()));
                }
                next = tokio::time::timeout(self.idle, self.upstream.next()) => next,
            };
            let (end, message) = match next {
                Ok(Some(Ok(chunk))) => match self.chunk(&chunk).await {
                    Some(out) => return out,
                    None => continue,
                },
                Ok(None) => return self.ended().await,
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

    /// The client's bytes for an upstream chunk: the events it completes, and the stream's end
    /// after an error event (the upstream has nothing more to say, and a client that stops at
    /// the error may go away). `None` while no event is complete.
    async fn chunk(&mut self, chunk: &[u8]) -> Option<Bytes> {
        self.first_byte
            .get_or_insert_with(|| self.started.elapsed());
        self.pending.extend_from_slice(chunk);
        let events = self.complete_events();
        self.keep_made().await;
        if self.translator.upstream_error() {
            let mut out = BytesMut::from(events);
            out.extend_from_slice(&self.finish(StreamEnd::UpstreamError, None));
            return Some(out.freeze());
        }
        (!events.is_empty()).then_some(events)
    }

    /// The client's last bytes once the upstream's stream has ended: a last event (which may lack
    /// its blank line), then the end, which says whether the stream was complete.
    async fn ended(&mut self) -> Bytes {
        let last = if self.pending.trim_ascii().is_empty() {
            Bytes::new()
        } else {
            self.pending.extend_from_slice(b"\n\n");
            self.complete_events()
        };
        self.keep_made().await;
        let (end, fault) = if self.translator.upstream_error() {
            (StreamEnd::UpstreamError, None)
        } else if self.translator.complete() {
            (StreamEnd::Done, None)
        } else {
            (
                StreamEnd::Unfinished,
                Some("the upstream ended the stream before it was complete".into()),
            )
        };
        let mut out = BytesMut::from(last);
        out.extend_from_slice(&self.finish(end, fault));
        out.freeze()
    }

    /// Once the stream is complete, keep the response it made, before its last events go out.
    async fn keep_made(&mut self) {
        if self.keep.is_none() || !self.translator.complete() {
            return;
        }
        if let (Some(keep), Some(made)) = (self.keep.take(), self.translator.made_response()) {
            keep(made, self.model.clone()).await;
        }
    }

    /// Split the complete events off `pending`, keeping those the client gets.
    fn complete_events(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        while let Some(end) = event_end(&self.pending) {
            let event = self.pending.split_to(end);
            let data = data_of(&event);
            if self.first_token_at.is_none() && carries_token(self.upstream_wire, data) {
                let now = Instant::now();
                self.first_token_at = Some(now);
                if let Some(watch) = &self.watch {
                    watch.first_token(now);
                }
            }
            let keep = match self.upstream_wire {
                Wire::Openai => self.inspect_openai(data),
                Wire::Anthropic => {
                    self.inspect_anthropic(data);
                    true
                }
                Wire::Responses => {
                    self.inspect_responses(data);
                    true
                }
            };
            if keep {
                out.extend_from_slice(&self.translator.event(&event));
            }
        }
        out.freeze()
    }

    /// Read the usage of Anthropic's `message_start` (input) and `message_delta` (output so far).
    fn inspect_anthropic(&mut self, data: &[u8]) {
        if !contains(data, b"\"usage\"") {
            return;
        }
        #[derive(Deserialize)]
        struct Message {
            usage: Option<Usage>,
        }
        #[derive(Deserialize)]
        struct Event {
            message: Option<Message>,
            usage: Option<Usage>,
        }
        let Ok(event) = serde_json::from_slice::<Event>(data) else {
            return;
        };
        let seen = self.usage.unwrap_or_default();
        if let Some(start) = event.message.and_then(|m| m.usage) {
            self.usage = Some(Usage {
                input_tokens: start.input_tokens,
                output_tokens: seen.output_tokens.max(start.output_tokens),
            });
        }
        if let Some(delta) = event.usage {
            self.usage = Some(Usage {
                input_tokens: if delta.input_tokens > 0 {
                    delta.input_tokens
                } else {
                    seen.input_tokens
                },
                output_tokens: delta.output_tokens,
            });
        }
    }

    /// Read the usage of a Responses stream's last event (`response.completed`, or
    /// `.incomplete`).
    fn inspect_responses(&mut self, data: &[u8]) {
        if !contains(data, b"\"usage\":{") {
            return;
        }
        #[derive(Deserialize)]
        struct Response {
            usage: Option<Usage>,
        }
        #[derive(Deserialize)]
        struct Event {
            response: Option<Response>,
        }
        if let Ok(Event {
            response: Some(Response { usage: Some(usage) }),
        }) = serde_json::from_slice::<Event>(data)
        {
            self.usage = Some(usage);
        }
    }

    /// Learn from one OpenAI event; false when it is the usage event the client did not ask for.
    fn inspect_openai(&mut self, data: &[u8]) -> bool {
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

    /// End the stream: an error event if `fault` says why, the model's health told how it
    /// ended, and the summary. The bytes of an event left incomplete by a fault are dropped: half
    /// an event (of the upstream's API, when translating) would only garble the error event.
    fn finish(&mut self, end: StreamEnd, fault: Option<String>) -> Bytes {
        self.finished = true;
        let mut out = BytesMut::new();
        if let Some(watch) = &self.watch {
            watch.ended(Instant::now(), end == StreamEnd::Done);
        }
        if let Some(message) = fault {
            let message = match self.pending.len() {
                0 => message,
                n => format!("{message}; {n} bytes of an incomplete event were dropped"),
            };
            let code = match end {
                StreamEnd::Stalled => "upstream_stream_stalled",
                StreamEnd::Cut => "upstream_stream_cut",
                StreamEnd::Drained => "proxy_draining",
                _ => "upstream_stream_unfinished",
            };
            tracing::warn!(
                request_id = %self.request_id,
                model = %self.model,
                code,
                "{message}; the client gets an error event"
            );
            out.extend_from_slice(&self.translator.error_event(code, &message));
        } else if end == StreamEnd::UpstreamError {
            tracing::warn!(
                request_id = %self.request_id,
                model = %self.model,
                "the upstream ended the stream with an error event; it was passed on"
            );
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
                first_token_at: self.first_token_at,
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
                first_token_at: self.first_token_at,
            });
        }
    }
}

/// Whether an event's data carries generated content: a non-empty text or a tool call (OpenAI),
/// a content block delta (Anthropic), a text or arguments delta (Responses). The first one
/// marks the time to first token.
fn carries_token(wire: Wire, data: &[u8]) -> bool {
    match wire {
        Wire::Openai => {
            let text = |at: usize| {
                let rest = data[at + b"\"content\":".len()..].trim_ascii_start();
                rest.len() > 1 && rest[0] == b'"' && rest[1] != b'"'
            };
            contains(data, b"\"tool_calls\"") || find(data, b"\"content\":").is_some_and(text)
        }
        Wire::Anthropic => contains(data, b"\"content_block_delta\""),
        Wire::Responses => {
            contains(data, b"\"response.output_text.delta\"")
                || contains(data, b"\"response.function_call_arguments.delta\"")
        }
    }
}

/// The end of the first complete event in `buf` (after its blank line), if there is one.
pub(super) fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|at| at + 2);
    // A CRLF stream ends its events earlier than any blank LF line could be found.
    let crlf = match lf {
        Some(at) if memchr::memchr(b'\r', &buf[..at]).is_none() => None,
        _ => memchr::memmem::find(buf, b"\r\n\r\n").map(|at| at + 4),
    };
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The payload of an event's (first) `data:` line, trimmed; empty without one.
pub(super) fn data_of(event: &[u8]) -> &[u8] {
    event
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"data:"))
        .map_or(&[][..], |data| data.trim_ascii())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
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
        run_between(chunks, stall, usage_event, Wire::Openai).await
    }

    /// [`run`] for an upstream and a client both speaking `wire`.
    async fn run_between(
        chunks: Vec<&'static [u8]>,
        stall: bool,
        usage_event: UsageEvent,
        wire: Wire,
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
            upstream: wire,
            client: wire,
            client_usage: false,
            frame: None,
            keep: None,
            watch: None,
            slot: None,
            summary: tx,
            cut: CancellationToken::new(),
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
    async fn anthropic_events_pass_whole_and_their_usage_is_read() {
        let chunks = vec![
            &b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":50,\"output_tokens\":1}}}\n\n"[..],
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":20}}\n\n",
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        let sent: String = chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let (text, summary) = run_between(chunks, false, UsageEvent::Pass, Wire::Anthropic).await;
        assert_eq!(text, sent);
        assert_eq!(summary.end, StreamEnd::Done);
        assert_eq!(
            summary.usage,
            Some(Usage {
                input_tokens: 50,
                output_tokens: 20
            })
        );

        let (text, summary) = run_between(
            vec![b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"],
            false,
            UsageEvent::Pass,
            Wire::Anthropic,
        )
        .await;
        assert_eq!(summary.end, StreamEnd::Unfinished, "no message_stop");
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        let data: serde_json::Value =
            serde_json::from_str(last.strip_prefix("event: error\ndata: ").unwrap()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"type": "error", "error": {"type": "api_error",
                "message": "the upstream ended the stream before it was complete"}})
        );
    }

    #[test]
    fn the_first_token_is_the_first_event_with_content() {
        for (wire, data, token) in [
            (
                Wire::Openai,
                &br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#[..],
                false,
            ),
            (
                Wire::Openai,
                br#"{"choices":[],"prompt_filter_results":[]}"#,
                false,
            ),
            (
                Wire::Openai,
                br#"{"choices":[{"delta":{"content": "Hi"}}]}"#,
                true,
            ),
            (
                Wire::Openai,
                br#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#,
                true,
            ),
            (
                Wire::Anthropic,
                br#"{"type":"message_start","message":{}}"#,
                false,
            ),
            (
                Wire::Anthropic,
                br#"{"type":"content_block_delta","index":0}"#,
                true,
            ),
        ] {
            assert_eq!(
                carries_token(wire, data),
                token,
                "{}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[tokio::test]
    async fn a_fault_drops_the_incomplete_event_before_the_error_event() {
        let (text, summary) = run(
            vec![b"data: {\"a\":1}\n\n", b"data: {\"cho"],
            true,
            UsageEvent::Take,
        )
        .await;
        assert_eq!(summary.end, StreamEnd::Stalled);
        let events: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(events.len(), 2, "{text}");
        assert_eq!(events[0], "data: {\"a\":1}");
        assert!(events[1].starts_with("data: {\"error\":"), "{text}");
        assert!(
            events[1].contains("11 bytes of an incomplete event were dropped"),
            "{text}"
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
            upstream: Wire::Openai,
            client: Wire::Openai,
            client_usage: false,
            frame: None,
            keep: None,
            watch: None,
            slot: None,
            summary: tx,
            cut: CancellationToken::new(),
        };
        drop(guarded(upstream, context));
        assert_eq!(rx.await.unwrap().end, StreamEnd::ClientGone);
    }

    #[tokio::test]
    async fn a_completed_responses_stream_is_kept_before_its_last_event_goes_out() {
        let kept = Arc::new(std::sync::Mutex::new(None));
        let seen = kept.clone();
        let keep: Keep = Box::new(move |made, model| {
            *seen.lock().unwrap() = Some((made, model));
            Box::pin(async {})
        });
        let events = [
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_up\"}}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_up\",\"usage\":{\"input_tokens\":4,\"output_tokens\":2}}}\n\n",
        ];
        let upstream = futures_util::stream::iter(
            events.map(|e| Ok::<_, Infallible>(Bytes::from_static(e.as_bytes()))),
        )
        .chain(futures_util::stream::pending());
        let (tx, rx) = oneshot::channel();
        let context = StreamContext {
            request_id: "r".into(),
            model: "m".into(),
            idle: Duration::from_millis(200),
            usage_event: UsageEvent::Pass,
            upstream: Wire::Responses,
            client: Wire::Responses,
            client_usage: false,
            frame: None,
            keep: Some(keep),
            watch: None,
            slot: None,
            summary: tx,
            cut: CancellationToken::new(),
        };
        let mut stream = Box::pin(guarded(upstream, context));
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"event: response.created"));
        assert!(kept.lock().unwrap().is_none(), "not complete yet");
        let last = stream.next().await.unwrap().unwrap();
        assert!(last.starts_with(b"event: response.completed"));
        assert_eq!(
            kept.lock().unwrap().clone(),
            Some((MadeResponse::Native("resp_up".into()), "m".to_string()))
        );
        drop(stream);
        let summary = rx.await.unwrap();
        assert_eq!(
            summary.usage.map(|u| (u.input_tokens, u.output_tokens)),
            Some((4, 2))
        );
    }
}
