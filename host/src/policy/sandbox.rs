//! What one decision's store holds, and everything a policy can reach from inside it.
//!
//! A [`Sandbox`] is created for every decision and dropped with its store, so nothing carries
//! over from one request to the next. It grants the policy exactly:
//! - the `host` interface: log lines (capped in size and number) and the text of the current
//!   request's messages (capped at [`SandboxLimits::max_message_chars`]);
//! - WASI 0.2 with nothing in it: no preopened directories, no environment or arguments, every
//!   socket address denied, stdin closed, stdout discarded, stderr kept (capped) to explain a
//!   trap, and clocks that read zero, so a decision cannot depend on the time (a guest that
//!   sleeps through `wasi:io/poll` is stopped by the decision's deadline timer); `wasi:random`
//!   is seeded by the host;
//! - linear memory up to [`SandboxLimits::memory_bytes`]; growing past it traps, and the
//!   sandbox remembers that it was the cause.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::wit::{self, LogLevel};
use crate::api::ChatRequest;

/// Longest log line a policy may write; longer ones are cut.
const MAX_LOG_LINE: usize = 1024;
/// Most log lines one decision may write; later ones are dropped.
const MAX_LOG_LINES: u32 = 32;
/// How much of a policy's stderr (e.g. a panic message) is kept.
const STDERR_CAPACITY: usize = 4096;
/// Most elements a policy's tables may grow to (function tables of ordinary guests hold a few
/// hundred; this stops a guest from growing a table without bound).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Per-decision limits, from the policy's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Linear memory one instance may use, in bytes.
    pub memory_bytes: usize,
    /// Time a decision (instantiation and call) may take.
    pub deadline: Duration,
    /// Most characters of one message `host.message-text` returns.
    pub max_message_chars: u32,
}

/// The data of one decision's store.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    request: Arc<ChatRequest>,
    request_id: Arc<str>,
    policy: Arc<str>,
    limits: SandboxLimits,
    log_lines: u32,
    /// Set when the policy tried to grow memory past its cap.
    pub memory_denied: bool,
}

impl Sandbox {
    pub fn new(
        request: Arc<ChatRequest>,
        request_id: Arc<str>,
        policy: Arc<str>,
        limits: SandboxLimits,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            stderr,
            request,
            request_id,
            policy,
            limits,
            log_lines: 0,
            memory_denied: false,
        }
    }

    /// What the policy wrote to stderr (a panic message, typically), as one line: lines are
    /// joined with ` | ` and the standard backtrace hint is dropped.
    pub fn stderr(&self) -> String {
        let contents = self.stderr.contents();
        let text = String::from_utf8_lossy(&contents);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
            .collect();
        lines.join(" | ")
    }
}

/// A clock that always reads zero: time is not granted to policies.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for Sandbox {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            self.memory_denied = true;
            wasmtime::bail!(
                "policy memory cap of {} bytes reached",
                self.limits.memory_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl wit::switchyard::policy::types::Host for Sandbox {}

impl wit::switchyard::policy::host::Host for Sandbox {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        // Escaped, so a policy cannot forge log lines with newlines or terminal escapes.
        let message = super::truncated(message, MAX_LOG_LINE)
            .escape_debug()
            .to_string();
        let (policy, request_id) = (&*self.policy, &*self.request_id);
        match level {
            LogLevel::Debug => {
                tracing::debug!(target: "switchyard::policy_log", policy, request_id, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "switchyard::policy_log", policy, request_id, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "switchyard::policy_log", policy, request_id, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "switchyard::policy_log", policy, request_id, "{message}")
            }
        }
    }

    fn message_text(&mut self, index: u32, max_chars: u32) -> Option<String> {
        let cap = max_chars.min(self.limits.max_message_chars) as usize;
        self.request.message_text(index as usize, cap)
    }
}
