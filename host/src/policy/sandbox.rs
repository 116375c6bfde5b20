//! What one decision's store holds, and everything a policy can reach from inside it.
//!
//! A [`Sandbox`] is created for every decision (or ahead of it, for a spare instance, which
//! [`Sandbox::serve`] points at its one request) and dropped with its store, so nothing carries
//! over from one request to the next (unless the policy's config opts into `reuse_instances`,
//! when [`Sandbox::renew`] points a kept instance at the next request). It grants the policy exactly:
//! - the `host` interface: log lines (capped in size and number), the text of the current
//!   request's messages (capped at [`SandboxLimits::max_message_chars`]), the request's team
//!   budget standing, and the time-to-first-token estimate of a model the team may use;
//! - WASI 0.2 with nothing in it: no preopened directories, no environment or arguments, TCP,
//!   UDP and name lookup off and every socket address denied, stdin empty, stdout and stderr
//!   captured (capped) into the policy's log, clocks that read zero, so a decision cannot depend
//!   on the time (a guest that sleeps through `wasi:io/poll` is stopped by the decision's deadline
//!   timer), and `wasi:random` seeded from the request id unless the policy asks for the
//!   system's randomness, so a decision can be replayed;
//! - linear memory up to [`SandboxLimits::memory_bytes`]; growing past it traps, and the
//!   sandbox remembers that it was the cause. Instances, tables and memories are capped too.

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::LiveView;
use super::output::{self, CapturedOutput};
use super::untrusted;
use super::wit::{self, LogLevel};
use crate::api::ClientRequest;

/// Longest log line kept of what a policy writes; longer ones are cut.
const MAX_LOG_LINE: usize = 1024;
/// Most bytes a policy may pass the host in one call: a log line (of which [`MAX_LOG_LINE`] are
/// kept), a model id, one write to stdout or stderr (the write permit a guest is granted). A call
/// that passes more fails without the host copying it.
pub const MAX_HOST_CALL_BYTES: usize = output::WRITE_PERMIT;
/// Most log lines one decision may write; later ones are dropped.
const MAX_LOG_LINES: u32 = 32;
/// How much of a policy's stdout and of its stderr (e.g. a panic message) is kept, each.
const OUTPUT_CAPACITY: usize = 4096;
/// Most elements a policy's tables may grow to (function tables of ordinary guests hold a few
/// hundred; this stops a guest from growing a table without bound).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Most random bytes one `wasi:random` call returns (the WASI default is 64 MiB, which a hostile
/// guest could ask the host to allocate on every call).
const MAX_RANDOM_BYTES: u64 = 64 * 1024;
/// Core instances, tables and memories one policy instance may create. Components built by
/// ordinary toolchains use a few of each (a Rust policy: 3 core instances, 1 memory); the
/// pooling allocator reserves this many per slot, so these caps fit the pool by construction.
/// Core instances are 40, not 32, because a Python policy built by componentize-py 0.25.1 has 38
/// (its interpreter and each dynamically linked library are a core module apiece; measured on
/// `plugins/python-keyword-router`); a JavaScript one built by componentize-js 0.23.0 has 3. The
/// pool only counts core instances (it reserves memories and tables), so this costs no memory.
pub const MAX_CORE_INSTANCES: usize = 40;
pub const MAX_TABLES: usize = 16;
pub const MAX_MEMORIES: usize = 2;

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

/// Where `host.message-text` reads message text from: the live request, or text recorded with a
/// decision.
pub trait MessageSource: Send + Sync {
    /// Up to `max_chars` characters of message `index`'s text.
    fn message_text(&self, index: usize, max_chars: usize) -> Option<String>;
}

impl MessageSource for ClientRequest {
    fn message_text(&self, index: usize, max_chars: usize) -> Option<String> {
        ClientRequest::message_text(self, index, max_chars)
    }
}

/// Message texts kept apart from a request (a decision record's); `None` for a message whose text
/// was not kept.
impl MessageSource for Vec<Option<String>> {
    fn message_text(&self, index: usize, max_chars: usize) -> Option<String> {
        let text = self.get(index)?.as_deref()?;
        Some(text.chars().take(max_chars).collect())
    }
}

/// A log line a policy wrote, kept when the decision is traced instead of logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// `debug`, `info`, `warn` or `error` for `host.log`; `stdout` or `stderr` for WASI output.
    pub level: &'static str,
    pub message: String,
}

/// What the host functions of one decision answer from.
pub struct HostData {
    /// The request's message text (`message-text`).
    pub request: Arc<dyn MessageSource>,
    pub request_id: Arc<str>,
    /// The request's team, whose catalog bounds `first-token-ms`.
    pub team: Option<Arc<str>>,
    /// The team's budget standing (`team-budget`).
    pub budget: Option<wit::Budget>,
    /// Live figures (`first-token-ms`).
    pub live: Option<Arc<dyn LiveView>>,
    /// What the request asks for (`request-operation`).
    pub operation: wit::Operation,
}

impl HostData {
    /// What a spare instance's sandbox holds until it serves a decision: no request, no team.
    pub fn none() -> Self {
        Self {
            request: Arc::new(Vec::<Option<String>>::new()),
            request_id: Arc::from(""),
            team: None,
            budget: None,
            live: None,
            operation: wit::Operation::OpenaiChat,
        }
    }
}

/// The data of one decision's store.
pub struct Sandbox {
    /// Built on the policy's first WASI call: most policies make none, and building it costs
    /// every decision a few allocations and two random generators.
    wasi: Option<WasiCtx>,
    /// Whether `wasi:random` is seeded from the request id (else it is the system's).
    seeded: bool,
    table: ResourceTable,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
    host: HostData,
    policy: Arc<str>,
    limits: SandboxLimits,
    log_lines: u32,
    /// Set when the policy tried to grow memory past its cap.
    pub memory_denied: bool,
    /// The largest linear memory the policy grew to, in bytes.
    pub memory_peak: usize,
    /// Log lines kept for a traced decision; `None` sends them to the proxy's log.
    captured: Option<Vec<PolicyLog>>,
    /// Set by the policy's first call of a host or WASI function.
    pub called_host: bool,
}

impl Sandbox {
    /// A sandbox for one decision; `seeded` makes `wasi:random` deterministic (seeded from the
    /// request id). A `traced` sandbox keeps the policy's log lines ([`Sandbox::take_logs`])
    /// instead of logging them.
    pub fn new(
        host: HostData,
        policy: Arc<str>,
        limits: SandboxLimits,
        seeded: bool,
        traced: bool,
    ) -> Self {
        Self {
            wasi: None,
            seeded,
            table: ResourceTable::new(),
            stdout: CapturedOutput::new(OUTPUT_CAPACITY),
            stderr: CapturedOutput::new(OUTPUT_CAPACITY),
            host,
            policy,
            limits,
            log_lines: 0,
            memory_denied: false,
            memory_peak: 0,
            captured: traced.then(Vec::new),
            called_host: false,
        }
    }

    /// The WASI context the policy sees: nothing granted, output captured, clocks frozen.
    fn wasi_ctx(&self) -> WasiCtx {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(self.stdout.clone())
            .stderr(self.stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES);
        if self.seeded {
            let seed = seed_of(&self.host.request_id);
            wasi.secure_random(StdRng::seed_from_u64(seed))
                .insecure_random(StdRng::seed_from_u64(!seed))
                .insecure_random_seed(u128::from(seed));
        }
        wasi.build()
    }

    /// Make a reused instance's sandbox serve the decision `host` is for: its request, team and
    /// budget, a fresh log-line count and output buffers. `wasi:random` keeps its state.
    pub fn renew(&mut self, host: HostData) {
        self.host = host;
        self.log_lines = 0;
        self.memory_denied = false;
        self.stdout.clear();
        self.stderr.clear();
    }

    /// Make a spare's sandbox serve the decision `host` is for. A spare is made traced, so that
    /// nothing is logged under no request; from here on its policy's log lines go to the log.
    /// (A spare whose policy called the host or WASI while it was instantiated is never used, so
    /// its WASI context, built on first use, is built now, from this request's id.)
    pub fn serve(&mut self, host: HostData) {
        debug_assert!(!self.called_host, "a spare that called out is never used");
        self.host = host;
        self.captured = None;
    }

    /// The log lines of a traced decision, and what it wrote to stdout and stderr, a line each.
    pub fn take_logs(&mut self) -> Vec<PolicyLog> {
        let mut logs = self.captured.take().unwrap_or_default();
        for (stream, output) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (kept, _) = output.contents();
            logs.extend(
                String::from_utf8_lossy(&kept)
                    .lines()
                    .map(|line| PolicyLog {
                        level: stream,
                        message: untrusted::log_line(line, MAX_LOG_LINE),
                    }),
            );
        }
        logs
    }

    /// Write what the policy printed to stdout and stderr into the log, a line per line printed
    /// (escaped, like its log lines), with a note of what was dropped past the cap.
    pub fn log_output(&self) {
        if self.captured.is_some() {
            return;
        }
        for (stream, output) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (kept, dropped) = output.contents();
            if kept.is_empty() {
                continue;
            }
            let (policy, request_id) = (&*self.policy, &*self.host.request_id);
            for line in String::from_utf8_lossy(&kept).lines() {
                let line = untrusted::log_line(line, MAX_LOG_LINE);
                tracing::info!(target: "switchyard::policy_log", policy, request_id, stream, "{line}");
            }
            if dropped > 0 {
                tracing::info!(target: "switchyard::policy_log", policy, request_id, stream, "({dropped} more bytes dropped)");
            }
        }
    }

    /// What the policy wrote to stderr (a panic message, typically), as one line: lines are
    /// joined with ` | ` and the standard backtrace hint is dropped.
    pub fn stderr(&self) -> String {
        let (contents, _) = self.stderr.contents();
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
        self.called_host = true;
        if self.wasi.is_none() {
            self.wasi = Some(self.wasi_ctx());
        }
        WasiCtxView {
            ctx: self.wasi.as_mut().expect("built above"),
            table: &mut self.table,
        }
    }
}

/// The `wasi:random` seed of the decision for `request_id`: the same request id gives the same
/// randomness, so a decision can be replayed.
fn seed_of(request_id: &str) -> u64 {
    let digest = Sha256::digest(request_id.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
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
        self.memory_peak = self.memory_peak.max(desired);
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

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

impl wit::switchyard::policy::types::Host for Sandbox {}

impl wit::switchyard::policy::host::Host for Sandbox {
    fn log(&mut self, level: LogLevel, message: String) {
        self.called_host = true;
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        if let Some(logs) = &mut self.captured {
            logs.push(PolicyLog {
                level: match level {
                    LogLevel::Debug => "debug",
                    LogLevel::Info => "info",
                    LogLevel::Warn => "warn",
                    LogLevel::Error => "error",
                },
                message: untrusted::log_line(&message, MAX_LOG_LINE),
            });
            return;
        }
        let message = untrusted::log_line(&message, MAX_LOG_LINE);
        let (policy, request_id) = (&*self.policy, &*self.host.request_id);
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
        self.called_host = true;
        let cap = max_chars.min(self.limits.max_message_chars) as usize;
        self.host.request.message_text(index as usize, cap)
    }

    fn team_budget(&mut self) -> Option<wit::Budget> {
        self.called_host = true;
        self.host.budget
    }

    fn first_token_ms(&mut self, model: String) -> Option<f32> {
        self.called_host = true;
        // Without a team (a canary or a test case with no team) the live view answers for its
        // own catalog.
        let team = self.host.team.as_deref().unwrap_or_default();
        self.host.live.as_ref()?.first_token_ms(team, &model)
    }

    fn request_operation(&mut self) -> wit::Operation {
        self.called_host = true;
        self.host.operation
    }
}
