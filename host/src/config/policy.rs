//! Policies: the shared sandbox pool and each policy component with its limits.
//!
//! The `[engine]` table sizes what every policy shares and is fixed until restart; each
//! `[[policies]]` entry names one component file and the limits its decisions run under, which a
//! config reload may change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Invalid, defaults};

/// Headers that carry client credentials: never shown to a policy.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
];

/// The sandbox pool every policy shares. It is reserved at start-up, so changing it needs a
/// restart; a config reload that changes it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Policy instances that may exist at once across all policies: the size of the pool, and
    /// so the most decisions running at once. Each reserves address space, not memory.
    #[serde(default = "defaults::engine_instances")]
    pub instances: u32,
    /// Largest `memory_mib` any policy may be given, in MiB.
    #[serde(default = "defaults::engine_max_memory_mib")]
    pub max_memory_mib: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            instances: defaults::engine_instances(),
            max_memory_mib: defaults::engine_max_memory_mib(),
        }
    }
}

/// Where a policy's `wasi:random` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RandomSource {
    /// Seeded from the request id: the same request gets the same numbers, so a decision can be
    /// replayed, and different requests get different ones.
    #[default]
    Seeded,
    /// The operating system's randomness: decisions cannot be replayed.
    System,
}

/// One routing policy: a component file and the limits its decisions run under.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy's name, which teams bind to; shown with its version in headers and logs.
    pub name: String,
    /// Path of the component (`.wasm`), relative to the config file's folder; default
    /// `policies_dir/NAME.wasm`. The file is watched: a new version written there goes live once
    /// it passes validation.
    #[serde(default)]
    pub path: PathBuf,
    /// An OCI reference to take the component from instead of a file you write:
    /// `registry.example/policies/cost-router:v3` or `...@sha256:...`. It is pulled (verified
    /// by digest, cached by digest) when the entry is new or its reference changes, and kept in
    /// `path`, beside a record of the digest it came from (`NAME.oci.json`); a restart loads that
    /// file without asking the registry. `switchyard policy deploy` moves it to another digest.
    pub oci: Option<String>,
    /// A JSON-lines file of the policy's own test cases, run with the built-in samples before a
    /// version goes live. Defaults to `NAME.cases.jsonl` beside `path` (`NAME` is the file name
    /// without `.wasm`), when such a file exists.
    pub cases: Option<PathBuf>,
    /// Time a decision (instantiating the policy and running it) may take, in milliseconds;
    /// guest code running past it is interrupted within about a millisecond.
    #[serde(default = "defaults::deadline_ms")]
    pub deadline_ms: u64,
    /// Linear memory a policy instance may use, in MiB (at most `engine.max_memory_mib`).
    #[serde(default = "defaults::memory_mib")]
    pub memory_mib: u32,
    /// Most characters of one message the policy may read through `host.message-text`.
    #[serde(default = "defaults::max_message_chars")]
    pub max_message_chars: u32,
    /// Most decisions of this policy running at once (at most `engine.instances`); further
    /// requests wait for a free slot until the deadline.
    #[serde(default = "defaults::max_concurrency")]
    pub max_concurrency: u32,
    /// Request headers the policy may see (lower case); all others are withheld. Headers that
    /// carry credentials (`authorization`, `x-api-key`, `cookie`, ...) cannot be listed.
    #[serde(default = "defaults::policy_headers")]
    pub headers: Vec<String>,
    /// How many of a new version's first decisions are watched for automatic rollback; 0 turns
    /// automatic rollback off.
    #[serde(default = "defaults::rollback_window")]
    pub rollback_window: u32,
    /// Share of those first decisions that may fail (trap, deadline, memory cap, error or invalid
    /// decision). Once more than this share of the window has failed, the previous version goes
    /// back live at once.
    #[serde(default = "defaults::rollback_failure_share")]
    pub rollback_failure_share: f64,
    /// Where the policy's `wasi:random` comes from: `seeded` (from the request id) or `system`.
    #[serde(default)]
    pub random: RandomSource,
    /// Serve up to this many decisions from one policy instance before replacing it; 0 (the
    /// default) gives every decision a fresh instance. Reuse saves most of a decision's cost
    /// (instantiating the component), at a price: what a policy keeps in memory (globals,
    /// caches, a leaked allocation) carries over from one request to the next of this policy,
    /// whichever team sent it; `wasi:random` is seeded once per instance, so decisions no
    /// longer replay by request id; and memory a policy grows stays reserved while the instance
    /// lives. An instance whose decision fails (trap, deadline, memory cap, error) is thrown
    /// away, and at most 8 idle instances are kept, each holding a slot of the engine's pool.
    /// `switchyard policy test` always uses fresh instances.
    #[serde(default)]
    pub reuse_instances: u32,
    /// Fresh instances kept instantiated ahead of this policy's next decisions (0 to 8; default
    /// 1). Each serves one decision only, like one made for it, so nothing carries over between
    /// requests: it is seeded from that request's id, and its instantiation time counts against
    /// that decision's deadline. It is made in the task that drops the last decision's spent
    /// instance (on another core, or while requests wait for their upstreams), so a decision
    /// that finds one ready costs its call alone. The price: each spare holds a slot of the
    /// engine's pool and its memory until it is used or its version is dropped (a version
    /// kept for rollback keeps its spares); spares are made only while more than half the pool
    /// would stay free, and a decision that finds the pool full takes a slot back from an idle
    /// spare before it waits. A policy that calls the host or WASI while it is instantiated
    /// gets none (a spare would see no request). None are made while `reuse_instances` is set.
    #[serde(default = "defaults::spare_instances")]
    pub spare_instances: u32,
    /// When a candidate split with the live version (`switchyard policy rollout NAME start
    /// ... --split`) is stepped up, promoted or aborted by itself; without this table only an
    /// operator does so.
    pub rollout: Option<RolloutConfig>,
}

/// A split's automatic transitions: abort when the candidate does worse than the live version
/// by a margin, once it has served `min_requests`; otherwise, when the current step has run
/// `promote_after_requests` candidate requests and `promote_after_secs`, step up to the next
/// share in `steps`, or promote after the last.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Candidate requests before any judgement.
    #[serde(default = "defaults::rollout_min_requests")]
    pub min_requests: u64,
    /// How far the candidate's policy-failure rate may exceed the live version's (0.02: two
    /// points).
    #[serde(default = "defaults::rollout_margin")]
    pub max_failure_margin: f64,
    /// How far the candidate's upstream error rate may exceed the live version's.
    #[serde(default = "defaults::rollout_margin")]
    pub max_error_margin: f64,
    /// How far the candidate's cost per request may exceed the live version's, as a share of
    /// it (0.25: 25% dearer).
    #[serde(default = "defaults::rollout_cost_margin")]
    pub max_cost_margin: f64,
    /// Candidate requests each step must serve before the next.
    #[serde(default = "defaults::rollout_promote_after_requests")]
    pub promote_after_requests: u64,
    /// Seconds each step must run before the next.
    #[serde(default = "defaults::rollout_promote_after_secs")]
    pub promote_after_secs: u64,
    /// The candidate's shares in percent, rising; after the last (100) it is promoted.
    #[serde(default = "defaults::rollout_steps")]
    pub steps: Vec<f64>,
}

impl RolloutConfig {
    fn validate(&self, field: impl Fn(&str) -> String) -> Result<(), Invalid> {
        for (name, margin) in [
            ("max_failure_margin", self.max_failure_margin),
            ("max_error_margin", self.max_error_margin),
            ("max_cost_margin", self.max_cost_margin),
        ] {
            if !(margin >= 0.0 && margin.is_finite()) {
                return Err(Invalid::new(field(name), "must be a number of at least 0"));
            }
        }
        let rising = self.steps.windows(2).all(|w| w[0] < w[1]);
        let in_range = self
            .steps
            .iter()
            .all(|s| *s > 0.0 && *s <= 100.0 && (s * 100.0).fract() == 0.0);
        if self.steps.is_empty() || !rising || !in_range || self.steps.last() != Some(&100.0) {
            return Err(Invalid::new(
                field("steps"),
                "must be rising percentages above 0 (to 0.01), ending with 100",
            ));
        }
        Ok(())
    }
}

impl PolicyConfig {
    /// A policy with every limit at its default.
    pub fn with_defaults(name: &str, path: PathBuf) -> Result<Self, Invalid> {
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        let mut config = Self::deserialize(toml::Value::Table(table))
            .map_err(|e| Invalid::new("policies_dir", format!("policy `{name}`: {e}")))?;
        config.path = path;
        Ok(config)
    }

    /// The cases file: the configured one, or `NAME.cases.jsonl` beside the component if present.
    pub fn cases_path(&self) -> Option<PathBuf> {
        if let Some(cases) = &self.cases {
            return Some(cases.clone());
        }
        let stem = self.path.file_stem()?.to_str()?;
        let beside = self.path.with_file_name(format!("{stem}.cases.jsonl"));
        beside.is_file().then_some(beside)
    }

    /// Make relative paths relative to `dir` (the config file's folder).
    pub(super) fn resolve_paths(&mut self, dir: &Path) {
        self.path = dir.join(&self.path);
        if let Some(cases) = &mut self.cases {
            *cases = dir.join(&*cases);
        }
    }

    fn validate(
        &self,
        field: impl Fn(&str) -> String,
        engine: &EngineConfig,
    ) -> Result<(), Invalid> {
        self.validate_source(&field)?;
        self.validate_limits(&field, engine)?;
        self.validate_headers(&field)?;
        if let Some(rollout) = &self.rollout {
            rollout.validate(|name| field(&format!("rollout.{name}")))?;
        }
        let share = self.rollback_failure_share;
        if !(0.0..1.0).contains(&share) {
            return Err(Invalid::new(
                field("rollback_failure_share"),
                "must be at least 0 and below 1",
            ));
        }
        Ok(())
    }

    /// The name, and where the component comes from: `path`, and `oci` if set.
    fn validate_source(&self, field: impl Fn(&str) -> String) -> Result<(), Invalid> {
        if self.name.trim().is_empty() {
            return Err(Invalid::new(field("name"), "must not be empty"));
        }
        if self.path.as_os_str().is_empty() {
            let message = match self.oci {
                Some(_) => {
                    "must name the file an `oci` policy's live version is kept in (or set policies_dir)"
                }
                None => "must name a component file (or set policies_dir)",
            };
            return Err(Invalid::new(field("path"), message));
        }
        if let Some(reference) = &self.oci
            && !valid_reference(reference)
        {
            return Err(Invalid::new(
                field("oci"),
                format!(
                    "`{reference}` is not an OCI reference (REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:...)"
                ),
            ));
        }
        Ok(())
    }

    /// The sandbox's limits and the instance counts, within the engine's.
    fn validate_limits(
        &self,
        field: impl Fn(&str) -> String,
        engine: &EngineConfig,
    ) -> Result<(), Invalid> {
        if !(1..=10_000).contains(&self.deadline_ms) {
            return Err(Invalid::new(
                field("deadline_ms"),
                "must be between 1 and 10000",
            ));
        }
        if !(1..=engine.max_memory_mib).contains(&self.memory_mib) {
            return Err(Invalid::new(
                field("memory_mib"),
                format!(
                    "must be between 1 and engine.max_memory_mib ({})",
                    engine.max_memory_mib
                ),
            ));
        }
        if self.reuse_instances > 1_000_000 {
            return Err(Invalid::new(
                field("reuse_instances"),
                "must be at most 1000000 (0 gives every decision a fresh instance)",
            ));
        }
        if self.spare_instances > 8 {
            return Err(Invalid::new(
                field("spare_instances"),
                "must be at most 8 (0 makes no spares)",
            ));
        }
        if !(1..=engine.instances).contains(&self.max_concurrency) {
            return Err(Invalid::new(
                field("max_concurrency"),
                format!(
                    "must be between 1 and engine.instances ({})",
                    engine.instances
                ),
            ));
        }
        Ok(())
    }

    /// The request headers the policy is shown: lower-case names, no credentials.
    fn validate_headers(&self, field: impl Fn(&str) -> String) -> Result<(), Invalid> {
        for (i, h) in self.headers.iter().enumerate() {
            let valid = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(Invalid::new(
                    field(&format!("headers[{i}]")),
                    "must be a lower-case header name",
                ));
            }
            if CREDENTIAL_HEADERS.contains(&h.as_str()) {
                return Err(Invalid::new(
                    field(&format!("headers[{i}]")),
                    format!("`{h}` carries credentials; policies never see it"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `reference` looks like `REGISTRY/REPOSITORY` with a tag or digest: the registry
/// client checks the rest when it pulls.
fn valid_reference(reference: &str) -> bool {
    let Some((registry, rest)) = reference.split_once('/') else {
        return false;
    };
    !registry.is_empty()
        && !rest.is_empty()
        && !reference.contains(char::is_whitespace)
        && (rest.contains(':') || rest.contains("@sha256:"))
}

impl EngineConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if !(1..=10_000).contains(&self.instances) {
            return Err(Invalid::new(
                "engine.instances",
                "must be between 1 and 10000",
            ));
        }
        if !(1..=4096).contains(&self.max_memory_mib) {
            return Err(Invalid::new(
                "engine.max_memory_mib",
                "must be between 1 and 4096",
            ));
        }
        Ok(())
    }
}

/// Check the engine and every policy, and return the policy names.
pub(super) fn validate_policies<'a>(
    policies: &'a [PolicyConfig],
    engine: &EngineConfig,
) -> Result<HashSet<&'a str>, Invalid> {
    engine.validate()?;
    if policies.is_empty() {
        return Err(Invalid::new("policies", "at least one policy is needed"));
    }
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (i, policy) in policies.iter().enumerate() {
        let field = |name: &str| format!("policies[{i}].{name}");
        policy.validate(field, engine)?;
        if !names.insert(policy.name.as_str()) {
            return Err(Invalid::new(
                field("name"),
                format!("duplicate policy `{}`", policy.name),
            ));
        }
        if !paths.insert(policy.path.as_path()) {
            return Err(Invalid::new(
                field("path"),
                format!(
                    "{} is already the file of another policy",
                    policy.path.display()
                ),
            ));
        }
    }
    Ok(names)
}
