//! # hostile-policy: untrusted code doing its worst, on request
//!
//! The sandbox tests send `x-hostile: BEHAVIOUR` (and `x-hostile-arg: ARG` where one is needed),
//! both allow-listed in their config. Without the header it routes to the first catalog model, so
//! it passes the canary like any policy and misbehaves only on live traffic.
//!
//! | behaviour | what it does |
//! |---|---|
//! | `loop` | loops forever |
//! | `spin` | loops ARG times, then decides |
//! | `alloc` | allocates and touches ARG bytes (default 1 GiB) |
//! | `grow` | grows its memory a page at a time, forever |
//! | `panic`, `unreachable` | traps |
//! | `recurse` | overflows its stack by deep recursion |
//! | `empty-route`, `unknown-model`, `many-targets`, `huge-reason` | returns nonsense |
//! | `alias` | returns ARG targets (default 120) whose model strings all point at one 1 MiB block |
//! | `huge-log` | passes one ARG-byte string (default 8 MiB) to `host.log`, a thousand times |
//! | `forge` | puts a line break and a fake log line into its error (ARG `error`), a target's model (`model`), a panic message (`panic`) or a rejection (`reject`) |
//! | `read-file` | reads the file ARG (default `/etc/passwd`) and says what happened |
//! | `connect` | opens a TCP connection to ARG and says what happened |
//! | `env` | reads the environment variable ARG and says what happened |
//! | `read-past-cap` | asks the host for far more message text than the cap |
//! | `chatty` | prints ARG bytes to stdout and to stderr, then a 20 KB line to stdout |
//! | `random`, `clock` | reports a random number, or the time, in its reason |
//! | `count` | reports how many decisions this instance has made, state kept in a global |
//! | `keep` | keeps an 8 KiB block in a global, allocates and frees more, and reports whether every block it kept is intact |

use std::hint::black_box;

use switchyard_sdk::bindings::switchyard::policy::host;
use switchyard_sdk::{
    Catalog, Decision, Policy, Request, RequestExt, Route, Target, reject, route,
};

struct Hostile;

/// A route to `models` with `reason`.
fn to(models: &[&str], reason: impl Into<String>) -> Result<Decision, String> {
    Ok(route(models.iter().copied(), reason))
}

/// Recurses until the stack runs out (the bound is never reached).
fn recurse(depth: u64) -> u64 {
    if depth == black_box(u64::MAX) {
        return 0;
    }
    let pad = black_box([depth; 64]);
    1 + recurse(black_box(pad[7]) + 1) + pad[3]
}

impl Policy for Hostile {
    fn decide(req: &Request, catalog: &Catalog) -> Result<Decision, String> {
        let first = catalog.iter().next().ok_or("empty catalog")?.id.as_str();
        let arg = req.header("x-hostile-arg").unwrap_or_default();
        let Some(behaviour) = req.header("x-hostile") else {
            return to(&[first], "well behaved");
        };
        match behaviour {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "spin" => {
                let rounds: u64 = arg.parse().map_err(|_| "spin wants a count")?;
                let mut n = 0u64;
                for i in 0..rounds {
                    n = black_box(n.wrapping_add(i));
                }
                to(&[first], format!("spun {rounds} rounds ({})", n % 7))
            }
            "alloc" => {
                let bytes: usize = arg.parse().unwrap_or(1 << 30);
                let mut block = vec![0u8; bytes];
                block[bytes / 2] = 1;
                to(&[first], format!("allocated {}", black_box(block).len()))
            }
            "grow" => loop {
                if !grow_one_page() {
                    return to(&[first], "memory would not grow");
                }
            },
            "panic" => panic!("hostile policy panics on purpose"),
            "unreachable" => unreachable_instruction(),
            "recurse" => to(&[first], format!("depth {}", recurse(0))),
            "empty-route" => to(&[], "nowhere"),
            "unknown-model" => to(&["no-such-model"], "a model nobody has"),
            "many-targets" => to(&vec![first; 10_000], "ten thousand targets"),
            "huge-reason" => to(&[first], "x".repeat(10 << 20)),
            "alias" => Ok(aliased(arg.parse().unwrap_or(120))),
            "huge-log" => {
                let line = "L".repeat(arg.parse().unwrap_or(8 << 20));
                for _ in 0..1000 {
                    host::log(host::LogLevel::Info, &line);
                }
                to(&[first], "logged")
            }
            "forge" => forge(arg),
            "read-file" => {
                let path = if arg.is_empty() { "/etc/passwd" } else { arg };
                let result = std::fs::read_to_string(path);
                to(
                    &[first],
                    format!("read-file: {}", outcome(result.map(|t| t.len()))),
                )
            }
            "connect" => {
                let result = std::net::TcpStream::connect(arg);
                to(
                    &[first],
                    format!("connect: {}", outcome(result.map(|_| "connected"))),
                )
            }
            "env" => {
                let result = std::env::var(arg);
                to(&[first], format!("env: {}", outcome(result)))
            }
            "read-past-cap" => {
                let text = req.message_text(0, u32::MAX).unwrap_or_default();
                to(&[first], format!("read {} chars", text.chars().count()))
            }
            "chatty" => {
                let bytes: usize = arg.parse().unwrap_or(100_000);
                let line = "chatter ".repeat(16);
                let mut written = 0;
                while written < bytes {
                    println!("{line}");
                    eprintln!("{line}");
                    written += line.len() + 1;
                }
                // One line longer than a guest may hand the host at once: the standard library
                // writes it in pieces of the size the host permits.
                let long = "long ".repeat(4000);
                println!("{long}");
                written += long.len() + 1;
                to(&[first], format!("printed {written} bytes"))
            }
            "random" => {
                let n = getrandom::u64().map_err(|e| e.to_string())?;
                to(&[first], format!("random {n}"))
            }
            "count" => {
                static DECISIONS: std::sync::atomic::AtomicU32 =
                    std::sync::atomic::AtomicU32::new(0);
                let n = DECISIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                to(&[first], format!("decision {n} of this instance"))
            }
            "keep" => {
                // Blocks kept from earlier decisions of a reused instance, each filled with its
                // index: the SDK's arena must neither hand them out again nor move them.
                static KEPT: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
                let mut kept = KEPT.lock().map_err(|e| e.to_string())?;
                let intact = kept
                    .iter()
                    .enumerate()
                    .all(|(i, block)| block.iter().all(|&b| b == i as u8));
                let index = kept.len() as u8;
                kept.push(vec![index; 8 << 10]);
                let churn: Vec<String> = (0..64).map(|i| format!("churn {i}")).collect();
                let reason = format!("kept {}, intact {intact}", kept.len());
                to(
                    &[first],
                    black_box(churn).len().to_string() + " churned, " + &reason,
                )
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?;
                to(&[first], format!("clock {}", now.as_secs()))
            }
            other => Err(format!("unknown behaviour {other}")),
        }
    }
}

/// A line that, unescaped, would end the proxy's log line and start a forged one.
const FORGED: &str = "x\nFORGED level=INFO\r";

/// Smuggle [`FORGED`] out through `channel`.
fn forge(channel: &str) -> Result<Decision, String> {
    match channel {
        "error" => Err(FORGED.into()),
        "model" => to(&[FORGED], "forged model"),
        "panic" => panic!("{FORGED}"),
        "reject" => Ok(reject(403, FORGED)),
        other => Err(format!(
            "forge wants error, model, panic or reject, not {other}"
        )),
    }
}

/// A route of `count` targets whose model strings are one 1 MiB block, aliased: what a guest
/// writing the canonical ABI by hand can return. The host sees `count` MiB of strings in a
/// guest that holds 1 MiB.
fn aliased(count: usize) -> Decision {
    let block = std::mem::ManuallyDrop::new("m".repeat(1 << 20));
    let targets = (0..count)
        .map(|_| Target {
            // SAFETY: deliberately not: every String claims the same block. The bindings only
            // pass each one's pointer and length to the host and forget it; none is dropped
            // before the host has read the decision.
            model: unsafe {
                String::from_raw_parts(block.as_ptr().cast_mut(), block.len(), block.capacity())
            },
            timeout_ms: None,
            max_output_tokens: None,
        })
        .collect();
    Decision::Route(Route {
        targets,
        reason: format!("{count} aliased targets"),
    })
}

/// Grow linear memory by one page; false when it would not grow. (Built natively, for the
/// workspace's lints, there is no linear memory.)
fn grow_one_page() -> bool {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_grow(0, 1) != usize::MAX;
    #[cfg(not(target_arch = "wasm32"))]
    false
}

/// Execute WebAssembly's `unreachable` instruction.
fn unreachable_instruction() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort()
}

/// `ok: VALUE` or `denied: ERROR`.
fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(value) => format!("ok: {value:?}"),
        Err(e) => format!("denied: {e}"),
    }
}

switchyard_sdk::export_policy!(Hostile);
