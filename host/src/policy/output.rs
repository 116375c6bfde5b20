//! What a policy writes to stdout and stderr: kept up to a cap, the rest counted and dropped.
//!
//! A guest never sees a full or failing stream (Rust's `println!` panics on a write error, so a
//! chatty policy would otherwise trap): every write succeeds, and what is past the cap is only
//! counted. After each decision the sandbox turns what was kept into log lines.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a guest may write in one call before it must wait (it never waits long). A guest
/// that writes more in one call than it was permitted fails the call.
pub const WRITE_PERMIT: usize = 4096;

#[derive(Debug, Default)]
struct Buffer {
    kept: BytesMut,
    dropped: usize,
}

/// A capped in-memory stdout or stderr; clones share the buffer.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CapturedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            buffer: Arc::default(),
        }
    }

    /// What was kept, and how many bytes were dropped past the cap.
    pub fn contents(&self) -> (Bytes, usize) {
        let buffer = self.buffer.lock().expect("output lock");
        (buffer.kept.clone().freeze(), buffer.dropped)
    }

    /// Forget what was written, for the next decision of a reused instance.
    pub fn clear(&self) {
        *self.buffer.lock().expect("output lock") = Buffer::default();
    }

    fn keep(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().expect("output lock");
        let room = self.cap.saturating_sub(buffer.kept.len());
        let kept = bytes.len().min(room);
        buffer.kept.extend_from_slice(&bytes[..kept]);
        buffer.dropped += bytes.len() - kept;
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let mut out = CapturedOutput::new(8);
        out.write(Bytes::from_static(b"hello ")).unwrap();
        out.write(Bytes::from_static(b"world!")).unwrap();
        assert_eq!(out.check_write().unwrap(), WRITE_PERMIT, "never full");
        let (kept, dropped) = out.contents();
        assert_eq!((&kept[..], dropped), (&b"hello wo"[..], 4));
    }
}
