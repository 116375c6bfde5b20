//! The proxy's configuration: a TOML file read into typed structs, at start-up and on reload.
//!
//! [`Config::load`] reads and parses the file, resolves relative paths against the file's folder
//! (and finds the components of `policies_dir`), and runs [`Config::validate`], which names the
//! first bad field. A reload goes through the same steps and is refused as a whole if anything is
//! wrong, or if it changes a setting that only a restart can change ([`Config::restart_needed`]).
//! Secrets are not stored here: a provider and the admin API name the environment variables that
//! hold their keys, read through [`Env`]. This module touches only the file system (to read the
//! config file and list `policies_dir`).

mod decisions;
mod env;
mod policy;
mod registry;
mod responses;
mod server;
mod state;
mod team;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use decisions::DecisionLogConfig;
pub use env::{Env, ProcessEnv};
pub use policy::{EngineConfig, PolicyConfig, RandomSource, RolloutConfig};
pub use registry::RegistryConfig;
pub use responses::ResponsesConfig;
pub use server::{ServerConfig, TlsConfig};
pub use state::{OnStateError, StateConfig};
pub use team::{
    AuthConfig, BudgetConfig, FailureMode, OverBudget, RateLimitConfig, TeamConfig, parse_digest,
    sha256,
};
pub use upstream::{ModelConfig, ModelKind, ProviderConfig, ProviderKind, UpstreamConfig};

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

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            field: self.field,
            message: self.message,
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the client-facing listener, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    /// Restart to change.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger bodies get 413. Restart to change.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// The client-facing listener: TLS, head size, metrics, draining.
    #[serde(default)]
    pub server: ServerConfig,
    /// Folder for compiled policies, so a restart does not recompile them. Default:
    /// `$XDG_CACHE_HOME/switchyard`, else `$HOME/.cache/switchyard`; with neither set, policies are
    /// compiled at every start. Restart to change.
    pub cache_dir: Option<PathBuf>,
    /// The sandbox pool shared by all policies. Restart to change.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The admin API; without this table there is none. Restart to change.
    pub admin: Option<AdminConfig>,
    /// Client authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// A folder of policy components: every `NAME.wasm` in it is the policy `NAME`, with the
    /// default limits unless a `[[policies]]` entry named `NAME` sets them (such an entry may then
    /// leave out `path`). Read at start-up and on every config reload.
    pub policies_dir: Option<PathBuf>,
    /// The routing policies.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// The teams: keys, policy binding, allowed models and failure behaviour.
    pub teams: Vec<TeamConfig>,
    /// Upstream timeouts.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Record policy decisions for `switchyard policy replay`; off without this table. A reload
    /// may turn it on, off, or move it.
    pub decision_log: Option<DecisionLogConfig>,
    /// Budgets and rate limits shared by a fleet of replicas through Redis (`[state]`); without
    /// it, each replica keeps its own in memory. Restart to change.
    pub state: Option<StateConfig>,
    /// How OCI registries are reached (`[registry]`), for `oci` policies and deploys. Restart to
    /// change.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// What the proxy keeps of Responses API responses (`[responses]`).
    #[serde(default)]
    pub responses: ResponsesConfig,
    /// Where models are served from.
    pub providers: Vec<ProviderConfig>,
    /// The model catalog: every model a policy may route to.
    pub models: Vec<ModelConfig>,
}

/// The admin API's listener and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener; keep it on loopback or a private network.
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
    /// Environment variable holding the admin token (at least 16 characters), which every admin
    /// call must send as `Authorization: Bearer TOKEN`.
    #[serde(default = "defaults::admin_token_env")]
    pub token_env: String,
}

mod defaults {
    use std::net::SocketAddr;

    pub fn max_body_bytes() -> usize {
        8 * 1024 * 1024
    }
    pub fn spare_instances() -> u32 {
        1
    }
    pub fn engine_instances() -> u32 {
        256
    }
    pub fn engine_max_memory_mib() -> u32 {
        64
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
    pub fn rollback_window() -> u32 {
        20
    }
    pub fn rollback_failure_share() -> f64 {
        0.25
    }
    pub fn rollout_min_requests() -> u64 {
        100
    }
    pub fn rollout_margin() -> f64 {
        0.02
    }
    pub fn rollout_cost_margin() -> f64 {
        0.25
    }
    pub fn rollout_promote_after_requests() -> u64 {
        500
    }
    pub fn rollout_promote_after_secs() -> u64 {
        600
    }
    pub fn rollout_steps() -> Vec<f64> {
        vec![5.0, 25.0, 100.0]
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9901))
    }
    pub fn admin_token_env() -> String {
        "SWITCHYARD_ADMIN_TOKEN".into()
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn attempt_timeout_ms() -> u64 {
        120_000
    }
    pub fn request_timeout_ms() -> u64 {
        600_000
    }
    pub fn retries() -> u32 {
        1
    }
    pub fn retry_budget_percent() -> f64 {
        20.0
    }
    pub fn retry_budget_min_per_second() -> f64 {
        5.0
    }
    pub fn stream_idle_timeout_ms() -> u64 {
        60_000
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_cooldown_ms() -> u64 {
        10_000
    }
    pub fn health_window() -> u32 {
        50
    }
    pub fn max_header_bytes() -> usize {
        64 * 1024
    }
    pub fn drain_timeout_ms() -> u64 {
        30_000
    }
}

impl Config {
    /// Read, parse and validate the config file at `path`; relative paths inside it are
    /// resolved against the file's folder (made absolute), and `policies_dir` is listed.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text, path)?;
        // Absolute, so that a file named without a folder (`--config x.toml`) gives its paths a
        // folder to watch, and a later change of working folder does not move them.
        let absolute = std::path::absolute(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = absolute.parent().unwrap_or(Path::new("/"));
        config
            .resolve_paths(dir)
            .and_then(|()| config.validate())
            .map_err(|invalid| invalid.in_file(path))?;
        Ok(config)
    }

    /// Parse and validate config text whose paths are taken as they are; `path` is used only in
    /// error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config = Self::from_toml(text, path)?;
        config.validate().map_err(|invalid| invalid.in_file(path))?;
        Ok(config)
    }

    fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Resolve relative paths against `dir` and add the components found in `policies_dir`.
    fn resolve_paths(&mut self, dir: &Path) -> Result<(), Invalid> {
        if let Some(cache) = &mut self.cache_dir {
            *cache = dir.join(&*cache);
        }
        if let Some(log) = &mut self.decision_log {
            log.path = dir.join(&log.path);
        }
        if let Some(tls) = &mut self.server.tls {
            tls.cert_path = dir.join(&tls.cert_path);
            tls.key_path = dir.join(&tls.key_path);
        }
        let found = match &mut self.policies_dir {
            Some(policies_dir) => {
                *policies_dir = dir.join(&*policies_dir);
                components_in(policies_dir)?
            }
            None => Vec::new(),
        };
        for policy in &mut self.policies {
            if policy.path.as_os_str().is_empty()
                && let Some(policies_dir) = &self.policies_dir
            {
                policy.path = policies_dir.join(format!("{}.wasm", policy.name));
            }
            policy.resolve_paths(dir);
        }
        for (name, path) in found {
            if !self.policies.iter().any(|p| p.name == name) {
                self.policies
                    .push(PolicyConfig::with_defaults(&name, path)?);
            }
        }
        Ok(())
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.id == id)
    }

    /// Check every rule that the types alone do not; the error names the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.max_body_bytes == 0 {
            return Err(Invalid::new("max_body_bytes", "must be greater than 0"));
        }
        if let Some(admin) = &self.admin
            && admin.token_env.is_empty()
        {
            return Err(Invalid::new(
                "admin.token_env",
                "must name an environment variable",
            ));
        }
        self.server.validate()?;
        self.upstream.validate()?;
        if let Some(log) = &self.decision_log {
            log.validate()?;
        }
        self.responses.validate()?;
        if let Some(state) = &self.state {
            state.validate()?;
        }
        self.registry.validate()?;
        let providers = upstream::validate_providers(&self.providers)?;
        let models = upstream::validate_models(&self.models, &providers)?;
        let policies = policy::validate_policies(&self.policies, &self.engine)?;
        team::validate_teams(&self.teams, &self.auth, &policies, &models)
    }

    /// The first setting `new` changes that only a restart can apply, if any.
    pub fn restart_needed(&self, new: &Config) -> Option<&'static str> {
        [
            ("listen", self.listen == new.listen),
            ("max_body_bytes", self.max_body_bytes == new.max_body_bytes),
            ("cache_dir", self.cache_dir == new.cache_dir),
            ("engine", self.engine == new.engine),
            ("state", self.state == new.state),
            ("registry", self.registry == new.registry),
            ("admin", self.admin == new.admin),
            (
                "server.tls (on or off)",
                self.server.tls.is_some() == new.server.tls.is_some(),
            ),
            (
                "server.max_header_bytes",
                self.server.max_header_bytes == new.server.max_header_bytes,
            ),
            ("server.metrics", self.server.metrics == new.server.metrics),
        ]
        .into_iter()
        .find_map(|(field, same)| (!same).then_some(field))
    }

    /// Where compiled policies are cached: `cache_dir`, else the user's cache folder per the XDG
    /// convention, else nowhere.
    pub fn compile_cache_dir(&self, env: &dyn Env) -> Option<PathBuf> {
        compile_cache_dir(self.cache_dir.as_deref(), env)
    }
}

/// Where compiled policies are cached: `configured`, else the user's cache folder per the XDG
/// convention, else nowhere.
pub fn compile_cache_dir(configured: Option<&Path>, env: &dyn Env) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return Some(dir.to_path_buf());
    }
    let nonempty = |key: &str| env.var(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    nonempty("XDG_CACHE_HOME")
        .or_else(|| nonempty("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("switchyard"))
}

/// The `NAME.wasm` files of `dir`, by name.
fn components_in(dir: &Path) -> Result<Vec<(String, PathBuf)>, Invalid> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Invalid::new(
            "policies_dir",
            format!("cannot list {}: {e}", dir.display()),
        )
    })?;
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm") && path.is_file())
        .filter_map(|path| Some((path.file_stem()?.to_str()?.to_string(), path)))
        .collect();
    found.sort();
    Ok(found)
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        listen = "127.0.0.1:0"
        [[policies]]
        name = "p"
        path = "p.wasm"
        [[teams]]
        name = "t"
        policy = "p"
        fallback = ["m"]
        [[providers]]
        name = "echo"
        kind = "echo"
        [[models]]
        id = "m"
        provider = "echo"
        context_window = 1000
        [[models]]
        id = "n"
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
        let p = &c.policies[0];
        assert_eq!(p.deadline_ms, 10);
        assert_eq!(p.memory_mib, 32);
        assert_eq!(p.rollback_window, 20);
        assert_eq!((p.reuse_instances, p.spare_instances), (0, 1));
        assert_eq!(c.engine.instances, 256);
        assert_eq!(c.upstream.attempt_timeout_ms, 120_000);
        assert_eq!(c.teams[0].on_failure, FailureMode::Fallback);
        assert_eq!(c.auth.anonymous_team, None);
        assert!(c.admin.is_none());
        assert_eq!(c.model("m").unwrap().upstream_model(), "m");
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = error_of(&MINIMAL.replace(r#"fallback = ["m"]"#, r#"fallback = ["nope"]"#));
        assert_eq!(
            e,
            "config file test.toml: field `teams[0].fallback[0]`: no model `nope` in the catalog"
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
        let e =
            error_of(&MINIMAL.replace("path = \"p.wasm\"", "path = \"p.wasm\"\ndeadline_ms = 0"));
        assert!(e.contains("`policies[0].deadline_ms`"), "{e}");
        let e = error_of(&MINIMAL.replace(
            "path = \"p.wasm\"",
            "path = \"p.wasm\"\nheaders = [\"x-hint\", \"authorization\"]",
        ));
        assert!(
            e.contains("`policies[0].headers[1]`: `authorization` carries credentials"),
            "{e}"
        );
        let e = error_of(&MINIMAL.replace(
            "[[providers]]",
            "[upstream]\nbreaker_failures = 0\n[[providers]]",
        ));
        assert!(
            e.contains("`upstream.breaker_failures`: must be at least 1"),
            "{e}"
        );
        let e = error_of(&MINIMAL.replace(
            "[[providers]]",
            "[upstream]\nretry_budget_percent = -1\n[[providers]]",
        ));
        assert!(
            e.contains("`upstream.retry_budget_percent`: must be a number from 0 to 1000"),
            "{e}"
        );
        let e =
            error_of(&MINIMAL.replace("path = \"p.wasm\"", "path = \"p.wasm\"\nmemory_mib = 65"));
        assert!(
            e.contains(
                "`policies[0].memory_mib`: must be between 1 and engine.max_memory_mib (64)"
            ),
            "{e}"
        );
        let e = error_of(&MINIMAL.replace(
            "path = \"p.wasm\"",
            "path = \"p.wasm\"\nspare_instances = 9",
        ));
        assert!(
            e.contains("`policies[0].spare_instances`: must be at most 8"),
            "{e}"
        );
    }

    #[test]
    fn bedrock_needs_a_region_and_no_key() {
        let bedrock = |lines: &str| {
            MINIMAL.replace("kind = \"echo\"", &format!("kind = \"bedrock\"\n{lines}"))
        };
        let c = Config::parse(&bedrock("region = \"eu-west-1\""), Path::new("test.toml"))
            .expect("a region is enough: base_url defaults to the region's endpoint");
        assert_eq!(c.providers[0].region.as_deref(), Some("eu-west-1"));
        let e = error_of(&bedrock(""));
        assert!(
            e.contains("`providers[0].region`: is required for kind `bedrock`"),
            "{e}"
        );
        let e = error_of(&bedrock("region = \"us east\""));
        assert!(e.contains("`providers[0].region`"), "{e}");
        let e = error_of(&bedrock("region = \"us-east-1\"\napi_key_env = \"K\""));
        assert!(
            e.contains("`providers[0].api_key_env`: is not used by kind `bedrock`"),
            "{e}"
        );
        let e = error_of(&MINIMAL.replace(
            "kind = \"echo\"",
            "kind = \"openai\"\nbase_url = \"http://x\"\nregion = \"us-east-1\"",
        ));
        assert!(
            e.contains("`providers[0].region`: is only used by kind `bedrock`, not `openai`"),
            "{e}"
        );
    }

    #[test]
    fn gemini_needs_a_key() {
        let gemini = MINIMAL.replace("kind = \"echo\"", "kind = \"gemini\"");
        let e = error_of(&gemini);
        assert!(
            e.contains("`providers[0].api_key_env`: is required for kind `gemini`"),
            "{e}"
        );
        let c = Config::parse(
            &gemini.replace(
                "kind = \"gemini\"",
                "kind = \"gemini\"\napi_key_env = \"K\"",
            ),
            Path::new("test.toml"),
        )
        .expect("a key is enough: base_url defaults to Google's API");
        assert_eq!(c.providers[0].base_url, None);
    }

    #[test]
    fn a_bad_base_url_is_named_by_its_field() {
        let provider = |lines: &str| MINIMAL.replace("kind = \"echo\"", lines);
        for (lines, expected) in [
            (
                "kind = \"echo\"\nbase_url = \"http://x\"",
                "`providers[0].base_url`: is not used by kind `echo`",
            ),
            (
                "kind = \"anthropic\"",
                "`providers[0].base_url`: is required for kind `anthropic`",
            ),
            (
                "kind = \"openai\"\nbase_url = \"not a url\"",
                "`providers[0].base_url`: is not a URL: relative URL without a base",
            ),
            (
                "kind = \"openai\"\nbase_url = \"ftp://x\"",
                "`providers[0].base_url`: must be an http or https URL",
            ),
            (
                "kind = \"openai\"\nbase_url = \"https://x\"\nh2c = true",
                "`providers[0].h2c`: needs an http:// base_url",
            ),
        ] {
            let e = error_of(&provider(lines));
            assert!(e.contains(expected), "{lines}: {e}");
        }
        let good = provider("kind = \"openai\"\nbase_url = \"http://x\"\nh2c = true");
        assert!(Config::parse(&good, Path::new("t")).is_ok(), "{good}");
    }

    #[test]
    fn a_bad_budget_rate_limit_key_or_model_list_is_named_by_its_field() {
        let with = |extra: &str| {
            MINIMAL.replace(
                "fallback = [\"m\"]",
                &format!("fallback = [\"m\"]\n{extra}"),
            )
        };
        for (extra, expected) in [
            (
                "[teams.budget]\nusd = 0",
                "`teams[0].budget.usd`: must be a finite number of dollars greater than 0",
            ),
            (
                "[teams.budget]\nusd = 5\nwindow = \"0s\"",
                "`teams[0].budget.window`: must be between 1s and 366d",
            ),
            (
                "[teams.budget]\nusd = 5\nover = \"downgrade\"",
                "`teams[0].budget.downgrade`: needs at least one model when over is \"downgrade\"",
            ),
            (
                "[teams.budget]\nusd = 5\ndowngrade = [\"m\"]",
                "`teams[0].budget.downgrade`: is only used when over is \"downgrade\"",
            ),
            // The route is checked before the rule for when it is used.
            (
                "[teams.budget]\nusd = 5\ndowngrade = [\"x\"]",
                "`teams[0].budget.downgrade[0]`: no model `x` in the catalog",
            ),
            (
                "[teams.rate_limit]\ntokens_per_minute = 0",
                "`teams[0].rate_limit.tokens_per_minute`: must be greater than 0",
            ),
            (
                "keys = [\"short\"]",
                "`teams[0].keys[0]`: must be at least 8 characters without spaces",
            ),
            (
                "models = []",
                "`teams[0].models`: must allow at least one model",
            ),
            (
                "models = [\"x\"]",
                "`teams[0].models[0]`: no model `x` in the catalog",
            ),
        ] {
            let e = error_of(&with(extra));
            assert!(e.contains(expected), "{extra}: {e}");
        }
        let good = with("[teams.budget]\nusd = 5\nover = \"downgrade\"\ndowngrade = [\"n\"]");
        assert!(Config::parse(&good, Path::new("t")).is_ok(), "{good}");
    }

    #[test]
    fn teams_are_checked_against_policies_models_and_each_other() {
        let e = error_of(&MINIMAL.replace("policy = \"p\"", "policy = \"q\""));
        assert!(e.contains("`teams[0].policy`: no policy named `q`"), "{e}");
        let e = error_of(
            &MINIMAL.replace("fallback = [\"m\"]", "fallback = [\"n\"]\nmodels = [\"m\"]"),
        );
        assert!(
            e.contains("`teams[0].fallback[0]`: model `n` is not in the team's `models`"),
            "{e}"
        );
        let e = error_of(&MINIMAL.replace("fallback = [\"m\"]", "fallback = []"));
        assert!(
            e.contains("`teams[0].fallback`: needs at least one model"),
            "{e}"
        );
        assert!(
            Config::parse(
                &MINIMAL.replace("fallback = [\"m\"]", "on_failure = \"reject\""),
                Path::new("t")
            )
            .is_ok(),
            "a rejecting team needs no fallback"
        );
        let two_teams = MINIMAL.replace(
            "[[providers]]",
            "keys = [\"sk-shared-key\"]\n[[teams]]\nname = \"u\"\npolicy = \"p\"\nfallback = [\"m\"]\nkey_sha256 = [\"SHA\"]\n[[providers]]",
        );
        let digest = hex(&sha256(b"sk-shared-key"));
        let e = error_of(&two_teams.replace("SHA", &digest));
        assert!(
            e.contains("`teams[1].key_sha256[0]`: this key already belongs to team `t`"),
            "{e}"
        );
        let e = error_of(&two_teams.replace("SHA", "abc"));
        assert!(e.contains("must be 64 hex digits"), "{e}");
        let e =
            error_of(&MINIMAL.replace("[[teams]]", "[auth]\nanonymous_team = \"x\"\n[[teams]]"));
        assert!(
            e.contains("`auth.anonymous_team`: no team named `x`"),
            "{e}"
        );
    }

    #[test]
    fn an_oci_entry_needs_a_reference_and_a_file_to_keep_it_in() {
        let oci = |line: &str| MINIMAL.replace("path = \"p.wasm\"", line);
        let c = Config::parse(
            &oci("oci = \"registry.example/policies/p:v1\"\npath = \"p.wasm\""),
            Path::new("test.toml"),
        )
        .unwrap();
        assert_eq!(
            c.policies[0].oci.as_deref(),
            Some("registry.example/policies/p:v1")
        );
        let e = error_of(&oci("oci = \"registry.example/policies/p:v1\""));
        assert!(
            e.contains("`policies[0].path`: must name the file an `oci` policy's live version"),
            "{e}"
        );
        let e = error_of(&oci("oci = \"just-a-name\"\npath = \"p.wasm\""));
        assert!(
            e.contains("`policies[0].oci`: `just-a-name` is not an OCI reference"),
            "{e}"
        );
        let e = error_of(&format!(
            "{MINIMAL}\n[registry]\nplain_http = [\"http://x\"]"
        ));
        assert!(e.contains("`registry.plain_http[0]`"), "{e}");
    }

    #[test]
    fn syntax_and_unknown_fields_are_reported_with_the_file() {
        let e = error_of("listen = ");
        assert!(e.starts_with("config file test.toml is not valid:"), "{e}");
        let e = error_of(&MINIMAL.replace("[[policies]]", "[[policies]]\ncolour = \"red\""));
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = error_of(&MINIMAL.replace("127.0.0.1:0", "nowhere"));
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn load_resolves_paths_and_reads_the_policies_dir() {
        let e = Config::load(Path::new("/no/such/switchyard.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read config file /no/such/switchyard.toml"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        for file in ["q.wasm", "r.wasm", "notes.txt"] {
            std::fs::write(dir.path().join("policies").join(file), b"").unwrap();
        }
        let text = MINIMAL.replace(
            "[[policies]]",
            "policies_dir = \"policies\"\n[[policies]]\nname = \"r\"\ndeadline_ms = 50\n[[policies]]",
        );
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap();
        let found: Vec<(&str, PathBuf, u64)> = config
            .policies
            .iter()
            .map(|p| (p.name.as_str(), p.path.clone(), p.deadline_ms))
            .collect();
        let policies = dir.path().join("policies");
        assert_eq!(
            found,
            [
                ("r", policies.join("r.wasm"), 50),
                ("p", dir.path().join("p.wasm"), 10),
                ("q", policies.join("q.wasm"), 10),
            ]
        );
    }

    #[test]
    fn restart_only_settings_are_named() {
        let a = Config::parse(MINIMAL, Path::new("t")).unwrap();
        let mut b = a.clone();
        b.teams[0].fallback = vec!["n".into()];
        assert_eq!(a.restart_needed(&b), None);
        b.engine.instances = 8;
        assert_eq!(a.restart_needed(&b), Some("engine"));
    }

    #[test]
    fn the_compile_cache_follows_xdg() {
        let c = Config::parse(MINIMAL, Path::new("t")).unwrap();
        let env = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(c.compile_cache_dir(&env(&[])), None);
        assert_eq!(
            c.compile_cache_dir(&env(&[("HOME", "/home/u")])),
            Some(PathBuf::from("/home/u/.cache/switchyard"))
        );
        assert_eq!(
            c.compile_cache_dir(&env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")])),
            Some(PathBuf::from("/c/switchyard"))
        );
    }
}
