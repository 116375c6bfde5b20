//! Google's Gemini API: a model's URLs, and its stream (`streamGenerateContent?alt=sse`) split
//! into its SSE events as they arrive, each chunk translated into Anthropic Messages events,
//! which the stream watcher then handles as any Anthropic stream.
//!
//! Gemini ends a stream by closing it; the closing Messages events are sent then, if a chunk
//! said the answer was finished. A connection that breaks is an error of the stream itself: the
//! watcher ends the client's stream with an error event in the client's API.

use std::fmt::Display;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::Url;

use super::dialect::{Events, events_of};
use super::stream::{data_of, event_end};
use crate::api::translate::GeminiEvents;

/// The `generateContent` URL of `model` under `base` (`streamGenerateContent` with SSE when
/// `stream`).
pub fn url(base: &Url, model: &str, stream: bool) -> Result<Url, String> {
    let base = base.as_str().trim_end_matches('/');
    let model = percent_encoding::utf8_percent_encode(model, super::bedrock::LABEL);
    let operation = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    Url::parse(&format!("{base}/models/{model}:{operation}")).map_err(|e| e.to_string())
}

/// The longest event kept while waiting for its end: a stream sending more without a blank line
/// is broken.
const MAX_EVENT_BYTES: usize = 16 << 20;

/// What the splitting keeps between chunks.
struct Splitting<S> {
    upstream: S,
    buffer: BytesMut,
    translator: GeminiEvents,
    /// The upstream has ended, and the closing events were sent.
    ended: bool,
}

/// The Messages SSE events of a Gemini stream.
pub fn gemini_sse<E: Display + 'static>(
    upstream: impl Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    translator: GeminiEvents,
) -> impl Stream<Item = Result<Bytes, String>> + Send {
    events_of(Splitting {
        upstream,
        buffer: BytesMut::new(),
        translator,
        ended: false,
    })
}

impl<S, E> Events for Splitting<S>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Display + 'static,
{
    async fn next_events(&mut self) -> Option<Result<Bytes, String>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(end) = event_end(&self.buffer) {
                let event = self.buffer.split_to(end);
                match self.translator.chunk(data_of(&event)) {
                    Ok(events) if events.is_empty() => continue,
                    Ok(events) => return Some(Ok(events.into())),
                    Err(error) => return Some(Err(error)),
                }
            }
            if self.buffer.len() > MAX_EVENT_BYTES {
                return Some(Err(format!(
                    "a Gemini stream event is longer than {MAX_EVENT_BYTES} bytes"
                )));
            }
            match self.upstream.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => return Some(Err(error.to_string())),
                None => {
                    let rest = std::mem::take(&mut self.buffer);
                    let mut events = self.translator.chunk(data_of(&rest)).unwrap_or_default();
                    events.extend(self.translator.finish());
                    self.ended = true;
                    return (!events.is_empty()).then(|| Ok(events.into()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn split(chunks: Vec<&'static str>) -> Vec<Result<String, String>> {
        let upstream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        gemini_sse(upstream, GeminiEvents::new("msg_t".into(), "m".into()))
            .map(|item| item.map(|b| String::from_utf8(b.to_vec()).expect("UTF-8")))
            .collect()
            .await
    }

    #[test]
    fn urls_name_the_model_and_the_operation() {
        let base = Url::parse("https://generativelanguage.googleapis.com/v1beta").expect("URL");
        assert_eq!(
            url(&base, "gemini-2.5-flash", true).expect("URL").as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url(&base, "gemini-2.5-pro", false).expect("URL").path(),
            "/v1beta/models/gemini-2.5-pro:generateContent"
        );
    }

    #[tokio::test]
    async fn events_split_anywhere_end_with_the_closing_events() {
        let out = split(vec![
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n",
            "\r\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" there\"}]},\"finishReason\":\"STOP\"}],",
            "\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2}}\r\n\r\n",
        ])
        .await;
        let text: String = out.into_iter().map(|i| i.expect("no error")).collect();
        assert!(text.starts_with("event: message_start\n"), "{text}");
        assert!(text.contains("\" there\""), "{text}");
        assert!(
            text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_stream_without_a_finish_reason_gets_no_closing_events() {
        let out = split(vec![
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\n\n",
        ])
        .await;
        let text: String = out.into_iter().map(|i| i.expect("no error")).collect();
        assert!(!text.contains("message_stop"), "{text}");
    }
}
