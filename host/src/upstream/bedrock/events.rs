//! ConverseStream's answer: AWS event-stream frames (each with its prelude and message CRCs,
//! checked by `aws-smithy-eventstream`) decoded as they arrive and translated into Anthropic
//! Messages SSE events, which the stream watcher then handles as any Anthropic stream.
//!
//! An exception frame (throttling, a model error, ...) becomes an Anthropic `error` event, which
//! ends the stream as an upstream error event does. A frame that fails its checksum, or a
//! connection that ends inside a frame, is an error of the stream itself: the watcher ends the
//! client's stream with an error event in the client's API.

use std::fmt::Display;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::super::dialect::{Events, events_of};
use crate::api::translate::ConverseEvents;

/// The longest frame accepted (AWS's own limit is 16 MiB).
const MAX_FRAME_BYTES: usize = 16 << 20;

/// What the decoding keeps between chunks.
struct Decoding<S> {
    upstream: S,
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
    translator: ConverseEvents,
}

/// The SSE events of a ConverseStream answer, as Anthropic Messages events from `translator`.
pub fn converse_sse<E: Display + 'static>(
    upstream: impl Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    translator: ConverseEvents,
) -> impl Stream<Item = Result<Bytes, String>> + Send {
    events_of(Decoding {
        upstream,
        buffer: BytesMut::new(),
        decoder: MessageFrameDecoder::new(),
        translator,
    })
}

impl<S, E> Events for Decoding<S>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Display + 'static,
{
    async fn next_events(&mut self) -> Option<Result<Bytes, String>> {
        loop {
            match self.whole_frame() {
                Err(error) => return Some(Err(error)),
                Ok(false) => {}
                Ok(true) => match self.decoder.decode_frame(&mut self.buffer) {
                    Ok(DecodedFrame::Complete(message)) => match self.translate(&message) {
                        Ok(events) if events.is_empty() => continue,
                        Ok(events) => return Some(Ok(events.into())),
                        Err(error) => return Some(Err(error)),
                    },
                    Ok(DecodedFrame::Incomplete) => {}
                    Err(error) => return Some(Err(format!("bad event-stream frame: {error}"))),
                },
            }
            match self.upstream.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => return Some(Err(error.to_string())),
                None if self.buffer.is_empty() => return None,
                None => return Some(Err("the stream ended inside an event-stream frame".into())),
            }
        }
    }
}

impl<S> Decoding<S> {
    /// Whether the buffer holds a whole frame, read by its length before the decoder takes any
    /// of it; an error for a frame longer than [`MAX_FRAME_BYTES`].
    fn whole_frame(&self) -> Result<bool, String> {
        let Some(length) = self.buffer.first_chunk::<4>() else {
            return Ok(false);
        };
        let length = u32::from_be_bytes(*length) as usize;
        if length > MAX_FRAME_BYTES {
            return Err(format!(
                "an event-stream frame of {length} bytes is longer than {MAX_FRAME_BYTES}"
            ));
        }
        Ok(self.buffer.len() >= length)
    }

    /// One frame's SSE events: its event translated, or an error event for an exception.
    fn translate(&mut self, message: &Message) -> Result<Vec<u8>, String> {
        match header(message, ":message-type") {
            Some("event") => {
                let kind = header(message, ":event-type").unwrap_or_default();
                self.translator.event(kind, message.payload())
            }
            Some("exception") => {
                let kind = header(message, ":exception-type").unwrap_or("exception");
                Ok(self.translator.exception(kind, message.payload()))
            }
            _ => {
                let code = header(message, ":error-code").unwrap_or("error");
                let text = header(message, ":error-message").unwrap_or_default();
                let payload = serde_json::json!({ "message": format!("{code}: {text}") });
                Ok(self
                    .translator
                    .exception(code, payload.to_string().as_bytes()))
            }
        }
    }
}

/// A string header of an event-stream message.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    use super::*;

    fn frame(kind: &str, name: &str, payload: &str) -> Vec<u8> {
        let (type_header, name_header) = match kind {
            "event" => (":event-type", name),
            _ => (":exception-type", name),
        };
        let message = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String(kind.to_string().into()),
            ))
            .add_header(Header::new(
                type_header,
                HeaderValue::String(name_header.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).expect("encodes");
        out
    }

    async fn decode(chunks: Vec<Vec<u8>>) -> Vec<Result<String, String>> {
        let upstream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        let translator = ConverseEvents::new("msg_t".into(), "m".into());
        converse_sse(upstream, translator)
            .map(|item| item.map(|b| String::from_utf8(b.to_vec()).expect("UTF-8")))
            .collect()
            .await
    }

    #[tokio::test]
    async fn frames_split_anywhere_decode_in_order() {
        let mut bytes = frame("event", "messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(frame(
            "event",
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ));
        bytes.extend(frame(
            "event",
            "messageStop",
            r#"{"stopReason":"end_turn"}"#,
        ));
        bytes.extend(frame(
            "event",
            "metadata",
            r#"{"usage":{"inputTokens":3,"outputTokens":1}}"#,
        ));
        let chunks: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
        let out = decode(chunks).await;
        let text: String = out.iter().map(|i| i.clone().expect("no error")).collect();
        assert!(text.starts_with("event: message_start\n"), "{text}");
        assert!(text.contains("event: content_block_start\n"), "{text}");
        assert!(
            text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_exception_frame_is_an_error_event() {
        let out = decode(vec![frame(
            "exception",
            "throttlingException",
            r#"{"message":"slow"}"#,
        )])
        .await;
        let text = out[0].clone().expect("an event");
        assert!(text.starts_with("event: error\n"), "{text}");
        assert!(text.contains("rate_limit_error"), "{text}");
    }

    #[tokio::test]
    async fn a_bad_checksum_or_a_cut_frame_is_a_stream_error() {
        let mut bytes = frame("event", "messageStart", r#"{"role":"assistant"}"#);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let out = decode(vec![bytes]).await;
        assert!(
            out[0]
                .as_ref()
                .is_err_and(|e| e.contains("bad event-stream frame")),
            "{out:?}"
        );
        let cut = frame("event", "messageStart", r#"{"role":"assistant"}"#)[..20].to_vec();
        let out = decode(vec![cut]).await;
        assert_eq!(
            out,
            [Err(
                "the stream ended inside an event-stream frame".to_string()
            )]
        );
    }
}
