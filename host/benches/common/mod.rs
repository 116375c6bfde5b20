//! What the policy benchmarks share: where the built policies are, a config with a catalog of 8
//! models (even ones `cheap`, odd ones `reasoning` and `tools`, prices rising) bound to one team,
//! and a request of 6 messages; and the proxy's allocator.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use switchyard::config::Config;

/// The proxy's own allocator (`main.rs`), so that what the host allocates around a decision costs
/// what it costs in the proxy.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The folder of the built policy components: `BENCH_WASM` if set (to compare policies built
/// another way), else `cargo xtask plugins`' output.
pub fn policies() -> PathBuf {
    std::env::var("BENCH_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/wasm")
        })
}

/// A config whose one `[[policies]]` entry is `policy` (TOML lines after the table header), bound
/// to team `t` with fallback `m0`, and 8 echo-served models `m0` to `m7`.
pub fn config(policy: &str) -> Config {
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\n[[policies]]\n{policy}\n\
         [[teams]]\nname = \"t\"\npolicy = \"{}\"\nfallback = [\"m0\"]\n\
         [[providers]]\nname = \"echo\"\nkind = \"echo\"\n",
        policy_name(policy)
    );
    for i in 0..8 {
        let tags = if i % 2 == 0 {
            "[\"cheap\"]"
        } else {
            "[\"reasoning\", \"tools\"]"
        };
        toml.push_str(&format!(
            "[[models]]\nid = \"m{i}\"\nprovider = \"echo\"\ninput_cost_per_mtok = {}\noutput_cost_per_mtok = {}\ncontext_window = 128000\ntags = {tags}\n",
            0.1 + i as f64,
            0.4 + 4.0 * i as f64
        ));
    }
    Config::parse(&toml, Path::new("bench.toml")).expect("bench config")
}

/// The `name = "..."` of a policy table's lines.
fn policy_name(policy: &str) -> &str {
    policy
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the policy table names the policy")
}

/// A chat-completions body of 6 messages (system, user, assistant in turn), about 500 characters
/// each.
pub fn body() -> Bytes {
    let messages: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            let role = ["system", "user", "assistant"][i % 3];
            serde_json::json!({"role": role, "content": format!("message {i}: {}", "lorem ipsum dolor sit amet ".repeat(18))})
        })
        .collect();
    Bytes::from(serde_json::json!({"model": "auto", "messages": messages}).to_string())
}
