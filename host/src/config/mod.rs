//! The proxy's configuration: a TOML file read once at start-up into typed structs.
//!
//! [`Config::load`] reads and parses the file, resolves relative paths against the file's folder,
//! and runs [`Config::validate`], which names the first bad field. Secrets are not stored here:
//! a provider names the environment variable that holds its key, and the upstream module reads it
//! through [`Env`]. This module touches only the file system (to read the config file).

mod env;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use env::{Env, ProcessEnv};

/// A configuration problem, always naming the file and, where it applies, the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the client-facing listener, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// The routing policy and what to do when it fails.
    pub policy: PolicyConfig,
    /// Upstream timeouts.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Where models are served from.
    pub providers: Vec<ProviderConfig>,
    /// The model catalog: every model a policy may route to.
    pub models: Vec<ModelConfig>,
}

/// The routing policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A name for the policy, shown in headers and logs.
    pub name: String,
    /// Path of the policy component (`.wasm`), relative to the config file's folder.
    pub path: PathBuf,
    /// Model ids tried in order when the policy fails (trap, deadline, error, invalid decision).
    pub fallback: Vec<String>,
    /// Time a decision (instantiating the policy and running it) may take, in milliseconds;
    /// guest code running past it is interrupted within about a millisecond.
    #[serde(default = "defaults::deadline_ms")]
    pub deadline_ms: u64,
    /// Linear memory a policy instance may use, in MiB.
    #[serde(default = "defaults::memory_mib")]
    pub memory_mib: u32,
    /// Most characters of one message the policy may read through `host.message-text`.
    #[serde(default = "defaults::max_message_chars")]
    pub max_message_chars: u32,
    /// Most decisions running at once; further requests wait for a free slot.
    #[serde(default = "defaults::max_concurrency")]
    pub max_concurrency: u32,
    /// Request headers the policy may see (lower case); all others are withheld. Headers that
    /// carry credentials (`authorization`, `x-api-key`, `cookie`, ...) cannot be listed.
    #[serde(default = "defaults::policy_headers")]
    pub headers: Vec<String>,
}

/// Timeouts towards upstream providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Time to establish a connection, in milliseconds.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time an attempt may take to answer (the whole body when not streaming, the response
    /// head when streaming), in milliseconds, unless the decision sets its own.
    #[serde(default = "defaults::attempt_timeout_ms")]
    pub attempt_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: defaults::connect_timeout_ms(),
            attempt_timeout_ms: defaults::attempt_timeout_ms(),
        }
    }
}

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...).
    Openai,
    /// Built in: answers in the OpenAI format with a short text naming the model; no network.
    Echo,
}

/// One upstream provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name that models refer to.
    pub name: String,
    /// Wire protocol.
    pub kind: ProviderKind,
    /// Base URL including the API prefix, e.g. `https://api.openai.com/v1` (kind `openai`).
    pub base_url: Option<String>,
    /// Environment variable holding the API key, sent as `Authorization: Bearer`; none sends no key.
    pub api_key_env: Option<String>,
}

/// One model of the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The id clients and policies use.
    pub id: String,
    /// Name of the provider serving it.
    pub provider: String,
    /// The model name sent upstream; defaults to `id`.
    pub upstream_model: Option<String>,
    /// US dollars per million input tokens.
    #[serde(default)]
    pub input_cost_per_mtok: f64,
    /// US dollars per million output tokens.
    #[serde(default)]
    pub output_cost_per_mtok: f64,
    /// Context window in tokens.
    pub context_window: u32,
    /// Capabilities a policy can select on, e.g. `cheap`, `reasoning`, `vision`, `tools`.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl ModelConfig {
    /// The model name sent upstream.
    pub fn upstream_model(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.id)
    }
}

/// Headers that carry client credentials: never shown to a policy.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
];

mod defaults {
    pub fn max_body_bytes() -> usize {
        8 * 1024 * 1024
    }
    pub fn deadline_ms() -> u64 {
        10
    }
    pub fn memory_mib() -> u32 {
        32
    }
    pub fn max_message_chars() -> u32 {
        16 * 1024
    }
    pub fn max_concurrency() -> u32 {
        128
    }
    pub fn policy_headers() -> Vec<String> {
        vec!["x-switchyard-hint".into()]
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn attempt_timeout_ms() -> u64 {
        120_000
    }
}

impl Config {
    /// Read, parse and validate the config file at `path`; relative paths inside it are
    /// resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        config.policy.path = dir.join(&config.policy.path);
        Ok(config)
    }

    /// Parse and validate config text; `path` is used only in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config
            .validate()
            .map_err(|(field, message)| ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                message,
            })?;
        Ok(config)
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.id == id)
    }

    /// Check every rule that the types alone do not; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: String, message: &str| Err((field, message.to_string()));
        if self.max_body_bytes == 0 {
            return bad("max_body_bytes".into(), "must be greater than 0");
        }
        let p = &self.policy;
        if p.name.trim().is_empty() {
            return bad("policy.name".into(), "must not be empty");
        }
        if !(1..=10_000).contains(&p.deadline_ms) {
            return bad("policy.deadline_ms".into(), "must be between 1 and 10000");
        }
        if !(1..=4096).contains(&p.memory_mib) {
            return bad("policy.memory_mib".into(), "must be between 1 and 4096");
        }
        if !(1..=10_000).contains(&p.max_concurrency) {
            return bad(
                "policy.max_concurrency".into(),
                "must be between 1 and 10000",
            );
        }
        for (i, h) in p.headers.iter().enumerate() {
            let valid = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return bad(
                    format!("policy.headers[{i}]"),
                    "must be a lower-case header name",
                );
            }
            if CREDENTIAL_HEADERS.contains(&h.as_str()) {
                return bad(
                    format!("policy.headers[{i}]"),
                    &format!("`{h}` carries credentials; policies never see it"),
                );
            }
        }
        if self.upstream.attempt_timeout_ms == 0 || self.upstream.connect_timeout_ms == 0 {
            return bad("upstream".into(), "timeouts must be greater than 0");
        }

        let mut providers = HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            let field = |name: &str| format!("providers[{i}].{name}");
            if !providers.insert(provider.name.as_str()) {
                return bad(
                    field("name"),
                    &format!("duplicate provider `{}`", provider.name),
                );
            }
            match (provider.kind, &provider.base_url) {
                (ProviderKind::Openai, None) => {
                    return bad(field("base_url"), "is required for kind `openai`");
                }
                (ProviderKind::Openai, Some(url)) => match reqwest::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    Ok(_) => return bad(field("base_url"), "must be an http or https URL"),
                    Err(e) => return bad(field("base_url"), &format!("is not a URL: {e}")),
                },
                (ProviderKind::Echo, Some(_)) => {
                    return bad(field("base_url"), "is not used by kind `echo`");
                }
                (ProviderKind::Echo, None) => {}
            }
            if provider.api_key_env.as_deref() == Some("") {
                return bad(field("api_key_env"), "must name an environment variable");
            }
        }

        if self.models.is_empty() {
            return bad("models".into(), "the catalog needs at least one model");
        }
        let mut ids = HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let field = |name: &str| format!("models[{i}].{name}");
            if model.id.trim().is_empty() {
                return bad(field("id"), "must not be empty");
            }
            if !ids.insert(model.id.as_str()) {
                return bad(field("id"), &format!("duplicate model `{}`", model.id));
            }
            if !providers.contains(model.provider.as_str()) {
                return bad(
                    field("provider"),
                    &format!("no provider named `{}`", model.provider),
                );
            }
            for (name, cost) in [
                ("input_cost_per_mtok", model.input_cost_per_mtok),
                ("output_cost_per_mtok", model.output_cost_per_mtok),
            ] {
                if !cost.is_finite() || cost < 0.0 {
                    return bad(field(name), "must be a finite number of dollars, 0 or more");
                }
            }
            if model.context_window == 0 {
                return bad(field("context_window"), "must be greater than 0");
            }
        }

        if p.fallback.is_empty() {
            return bad("policy.fallback".into(), "needs at least one model");
        }
        for (i, id) in p.fallback.iter().enumerate() {
            if !ids.contains(id.as_str()) {
                return bad(
                    format!("policy.fallback[{i}]"),
                    &format!("no model `{id}` in the catalog"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        listen = "127.0.0.1:0"
        [policy]
        name = "p"
        path = "p.wasm"
        fallback = ["m"]
        [[providers]]
        name = "echo"
        kind = "echo"
        [[models]]
        id = "m"
        provider = "echo"
        context_window = 1000
    "#;

    fn error_of(text: &str) -> String {
        Config::parse(text, Path::new("test.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::parse(MINIMAL, Path::new("test.toml")).unwrap();
        assert_eq!(c.policy.deadline_ms, 10);
        assert_eq!(c.policy.memory_mib, 32);
        assert_eq!(c.upstream.attempt_timeout_ms, 120_000);
        assert_eq!(c.model("m").unwrap().upstream_model(), "m");
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = error_of(&MINIMAL.replace(r#"fallback = ["m"]"#, r#"fallback = ["nope"]"#));
        assert_eq!(
            e,
            "config file test.toml: field `policy.fallback[0]`: no model `nope` in the catalog"
        );
        let e = error_of(&MINIMAL.replace(r#"provider = "echo""#, r#"provider = "x""#));
        assert!(
            e.contains("`models[0].provider`: no provider named `x`"),
            "{e}"
        );
        let e = error_of(&MINIMAL.replace("kind = \"echo\"", "kind = \"openai\""));
        assert!(e.contains("`providers[0].base_url`: is required"), "{e}");
        let e = error_of(&MINIMAL.replace("context_window = 1000", "context_window = 0"));
        assert!(e.contains("`models[0].context_window`"), "{e}");
        let e = error_of(&MINIMAL.replace("name = \"p\"", "name = \"p\"\ndeadline_ms = 0"));
        assert!(e.contains("`policy.deadline_ms`"), "{e}");
        let e = error_of(&MINIMAL.replace(
            "name = \"p\"",
            "name = \"p\"\nheaders = [\"x-hint\", \"authorization\"]",
        ));
        assert!(
            e.contains("`policy.headers[1]`: `authorization` carries credentials"),
            "{e}"
        );
    }

    #[test]
    fn syntax_and_unknown_fields_are_reported_with_the_file() {
        let e = error_of("listen = ");
        assert!(e.starts_with("config file test.toml is not valid:"), "{e}");
        let e = error_of(&MINIMAL.replace("[policy]", "[policy]\ncolour = \"red\""));
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = error_of(&MINIMAL.replace("127.0.0.1:0", "nowhere"));
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn load_names_a_missing_file_and_resolves_policy_path() {
        let e = Config::load(Path::new("/no/such/switchyard.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read config file /no/such/switchyard.toml"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(
            Config::load(&path).unwrap().policy.path,
            dir.path().join("p.wasm")
        );
    }
}
