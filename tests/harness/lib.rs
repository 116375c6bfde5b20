//! # End-to-end test harness
//!
//! Tests start the real `switchyard` binary ([`Proxy`]) on port 0 with a config written for the
//! test ([`ConfigBuilder`]), against in-process mock upstreams ([`MockUpstream`]) that speak the
//! OpenAI wire format, or answer with the exact bytes a test scripts (Anthropic's format), and
//! record what they received; and mocks of AWS Bedrock ([`BedrockMock`], which verifies every
//! request's SigV4 signature) and Google's Gemini API ([`GeminiMock`]) in their wire formats. Policies are the real components built
//! from `plugins/` by `cargo xtask test` ([`policy_wasm`]).

mod assistant;
mod bedrock;
mod gemini;
mod loopback;
mod mock;
pub mod poll;
mod proxy;
mod redis_server;
mod registry_server;

use std::path::PathBuf;

pub use assistant::WEATHER_JSON;
pub use bedrock::{BedrockBehaviour, BedrockMock, Signed, bedrock_text, bedrock_vector};
pub use gemini::{GeminiBehaviour, GeminiMock, GeminiReceived, gemini_text};
pub use mock::{Behaviour, MockUpstream, Received, embedding_of};
pub use proxy::{ADMIN_TOKEN, ConfigBuilder, Exit, Proxy, Reply, TEST_HEADERS};
pub use redis_server::Redis;
pub use registry_server::Registry;

/// The cargo target folder this test binary was built into.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test binary>
    exe.ancestors()
        .nth(3)
        .expect("test binary sits in target/<profile>/deps")
        .to_path_buf()
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// `path`, which `cargo xtask test` prepares (`what` says how); a clear failure if it is missing.
fn prepared(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo xtask test`, which {what}",
        path.display()
    );
    path
}

/// A policy component built by `cargo xtask plugins`, by crate name with `_` for `-`.
pub fn policy_wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/wasm")
        .join(format!("{name}.wasm"));
    prepared(path, "builds the policies first")
}

/// A folder under the cargo target folder for test proxies to share as their compile cache
/// (`cache_dir`), so that a large component (a JavaScript or Python policy takes seconds to
/// compile) is compiled once per build of it, not at every proxy start.
pub fn shared_compile_cache() -> PathBuf {
    target_dir().join("policy-cache")
}

/// The proxy binary built next to this test binary.
pub fn proxy_binary() -> PathBuf {
    prepared(profile_dir().join("switchyard"), "builds the proxy first")
}

/// The gateway benchmark's floor (`host/examples/bare_proxy.rs`), built next to the proxy.
pub fn floor_binary() -> PathBuf {
    let floor = profile_dir().join("examples/bare_proxy");
    prepared(floor, "builds the floor first")
}

/// The cargo profile's folder this test binary was built into (`target/debug`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe.ancestors().nth(2).expect("profile folder");
    profile.to_path_buf()
}

/// The Python interpreter of the venv holding the official `openai` SDK.
pub fn sdk_python() -> PathBuf {
    prepared(
        target_dir().join("sdk-venv/bin/python"),
        "installs the openai SDK",
    )
}

/// The folder holding `node_modules/openai`, the official OpenAI Node SDK.
pub fn sdk_node_dir() -> PathBuf {
    let modules = prepared(
        target_dir().join("sdk-node/node_modules/openai"),
        "installs the openai SDK",
    );
    modules
        .ancestors()
        .nth(2)
        .expect("sdk-node folder")
        .to_path_buf()
}

/// A loopback port that is bound but not listening, so connecting to it is refused; the port
/// stays reserved (no other test can take it) while this value lives.
pub struct RefusedPort {
    /// Base URL to put in a provider's `base_url`.
    pub url: String,
    _socket: socket2::Socket,
}

impl RefusedPort {
    pub fn new() -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
        socket.bind(&any_port.into()).expect("bind");
        let port = socket
            .local_addr()
            .expect("addr")
            .as_socket()
            .expect("inet")
            .port();
        Self {
            url: format!("http://127.0.0.1:{port}/v1"),
            _socket: socket,
        }
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// How a policy version of `policy` built from `bytes` is shown: `policy@` and the first 12 hex
/// digits of the component's SHA-256.
pub fn policy_version(policy: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{policy}@{hex}")
}

/// A chat request body with one user message.
pub fn chat(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Replace the file at `path` with `bytes` as a deploy does: written beside it, then renamed over
/// it, so that a watcher sees one change, never a half-written file.
pub fn replace_file(path: &std::path::Path, bytes: &[u8]) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).expect("write the new file");
    std::fs::rename(&partial, path).expect("rename it over the old one");
}

/// The event names and the `data:` payloads (JSON, or `[DONE]` as a string) of an SSE body.
pub fn sse_data(body: &[u8]) -> (Vec<String>, Vec<serde_json::Value>) {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let mut names = Vec::new();
    let mut data = Vec::new();
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        for line in event.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                names.push(name.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push(serde_json::from_str(d).unwrap_or_else(|_| serde_json::json!(d)));
            }
        }
    }
    (names, data)
}

/// Run the Python SDK script `tests/sdk/NAME` with the proxy's base URL, a model and a key as
/// its arguments, and read the JSON it prints of what it saw.
pub fn run_python_sdk(name: &str, base: &str, model: &str, key: &str) -> serde_json::Value {
    let out = std::process::Command::new(sdk_python())
        .arg(workspace_root().join("tests/sdk").join(name))
        .args([base, model, key])
        .output()
        .expect("run the SDK script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// The `get_weather` function tool, as an OpenAI client declares it.
pub fn weather_function() -> serde_json::Value {
    serde_json::json!({"type": "function", "function": {"name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
}

/// The first tool call of an OpenAI chat answer that ended to call tools: its id, function name
/// and arguments (parsed).
pub fn first_tool_call(answer: &serde_json::Value) -> (String, String, serde_json::Value) {
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    let call = &choice["message"]["tool_calls"][0];
    let arguments = call["function"]["arguments"]
        .as_str()
        .expect("arguments as a string");
    (
        call["id"].as_str().expect("an id").to_string(),
        call["function"]["name"]
            .as_str()
            .expect("a name")
            .to_string(),
        serde_json::from_str(arguments).expect("JSON arguments"),
    )
}

/// Run both tool SDK scripts (`tools_openai.py`, `tools_anthropic.py`) against the proxy at
/// `base` for `model` with the team key `key`, and check what they saw: a call of
/// `get_weather` for Paris, then `text` once the call was answered, whole and streamed, as each
/// SDK reports them. Returns what each saw, for checks of the provider's own.
pub fn check_tool_sdks(base: &str, model: &str, key: &str, text: &str) -> [serde_json::Value; 2] {
    use serde_json::json;
    let openai = run_python_sdk("tools_openai.py", base, model, key);
    assert_eq!(openai["model_header"], model, "{openai}");
    assert_eq!(openai["call_name"], "get_weather", "{openai}");
    assert_eq!(openai["call_arguments"], json!({"city": "Paris"}));
    assert_eq!(openai["finish"], "tool_calls");
    assert_eq!(openai["answer"], text);
    assert_eq!(openai["stream_call_name"], "get_weather");
    assert_eq!(openai["stream_call_arguments"], json!({"city": "Paris"}));
    assert_eq!(openai["stream_finish"], "tool_calls");
    assert_eq!(openai["stream_text"], text);

    let anthropic = run_python_sdk("tools_anthropic.py", base, model, key);
    assert_eq!(anthropic["call_name"], "get_weather", "{anthropic}");
    assert_eq!(anthropic["call_input"], json!({"city": "Paris"}));
    assert_eq!(anthropic["stop_reason"], "tool_use");
    assert_eq!(anthropic["answer"], text);
    assert_eq!(anthropic["stream_call_name"], "get_weather");
    assert_eq!(anthropic["stream_call_input"], json!({"city": "Paris"}));
    assert_eq!(anthropic["stream_text"], text);
    assert_eq!(anthropic["stream_stop_reason"], "end_turn");
    [openai, anthropic]
}

/// The value of the sample `name` with exactly `labels` in a Prometheus exposition (parsed with
/// a parser, not grepped); for a histogram, its count.
pub fn metric(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = exposition.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a valid exposition");
    let found = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{exposition}"));
    match &found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(buckets) => {
            buckets.iter().map(|b| b.count).fold(0.0, f64::max)
        }
        other => panic!("{name}: {other:?}"),
    }
}
