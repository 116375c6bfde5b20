//! Tools for policy authors, behind `switchyard policy …`: scaffold a policy crate (`scaffold`),
//! check a component exactly as the live host does (`check`), run a cases file under production
//! limits (`cases`), and replay recorded decisions through a candidate version (`replay`).
//!
//! Every tool loads the component with the proxy's own engine, linker and sandbox
//! ([`crate::policy::PolicyEngine::prepare`]), so a component these tools accept is one the proxy
//! accepts. The catalog a policy decides over comes from a catalog file (a JSON list of models)
//! or a proxy config (a team's models). Tools read the files they are named and write only the
//! scaffold's folder; reporting to people or programs is left to [`report`].

pub mod cases;
pub mod check;
pub mod replay;
pub mod report;
pub mod scaffold;

use std::path::{Path, PathBuf};

use crate::config::{Config, EngineConfig, Env, ModelKind, PolicyConfig, compile_cache_dir};
use crate::policy::json::ModelJson;
use crate::policy::{LoadError, Model, Policy, PolicyEngine, PolicySettings, PoolSize, input};

/// Why a tool could not do its job (as opposed to a policy failing its cases).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The component was refused, as the proxy would refuse it.
    #[error("{path} cannot be loaded: {source}")]
    Policy { path: PathBuf, source: LoadError },
    /// A file the tool was given is missing or malformed; the message names it.
    #[error("{0}")]
    Input(String),
}

impl ToolError {
    fn input(path: &Path, what: impl std::fmt::Display) -> Self {
        Self::Input(format!("{}: {what}", path.display()))
    }
}

/// Where the catalog comes from.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    /// A JSON file holding a list of models (`id`, prices, `context_window`, `tags`, optional
    /// `health`).
    File(PathBuf),
    /// A proxy config: a team's models, or every model when no team is named.
    Config(Box<Config>),
}

impl CatalogSource {
    /// The teams bound to policy `name`, in config order (none for a catalog file).
    pub fn teams_of(&self, name: &str) -> Vec<String> {
        match self {
            Self::File(_) => Vec::new(),
            Self::Config(config) => config
                .teams
                .iter()
                .filter(|t| t.policy == name)
                .map(|t| t.name.clone())
                .collect(),
        }
    }

    /// The models of `kind` for `team`, or of the whole catalog when `team` is `None`.
    pub fn catalog(&self, team: Option<&str>, kind: ModelKind) -> Result<Vec<Model>, ToolError> {
        match self {
            Self::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ToolError::input(path, format!("cannot read: {e}")))?;
                let models: Vec<ModelJson> = serde_json::from_str(&text).map_err(|e| {
                    ToolError::input(path, format!("not a JSON list of models: {e}"))
                })?;
                Ok(models
                    .into_iter()
                    .filter(|m| m.kind == kind)
                    .map(Model::from)
                    .collect())
            }
            Self::Config(config) => match team {
                None => Ok(input::catalog(config, None, kind)),
                Some(name) => {
                    let team = config
                        .teams
                        .iter()
                        .find(|t| t.name == name)
                        .ok_or_else(|| {
                            ToolError::Input(format!("the config has no team `{name}`"))
                        })?;
                    Ok(input::catalog(config, team.models.as_deref(), kind))
                }
            },
        }
    }
}

/// Limits a tool runs a policy under: the config's entry for the policy, else the proxy's
/// defaults, with the command line's overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitOverrides {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u32>,
}

/// The config's `[[policies]]` entry for `wasm`: the one named `name` when given (an error if
/// there is none), else the one whose `path` is the same file.
pub fn entry_for<'c>(
    wasm: &Path,
    config: &'c Config,
    name: Option<&str>,
) -> Result<Option<&'c PolicyConfig>, ToolError> {
    if let Some(name) = name {
        return match config.policies.iter().find(|p| p.name == name) {
            Some(entry) => Ok(Some(entry)),
            None => Err(ToolError::Input(format!(
                "the config has no policy `{name}` (it has: {})",
                config
                    .policies
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let wasm = canonical(wasm);
    Ok(config
        .policies
        .iter()
        .find(|entry| wasm.is_some() && canonical(&entry.path) == wasm))
}

/// The settings a policy runs under in production: those of its config `entry`, else the
/// defaults; then `overrides`.
pub fn settings_for(
    wasm: &Path,
    entry: Option<&PolicyConfig>,
    overrides: LimitOverrides,
) -> Result<PolicySettings, ToolError> {
    let mut entry = match entry {
        Some(entry) => entry.clone(),
        None => PolicyConfig::with_defaults("policy", wasm.to_path_buf())
            .map_err(|e| ToolError::Input(format!("{}: {}", e.field, e.message)))?,
    };
    if let Some(ms) = overrides.deadline_ms {
        entry.deadline_ms = ms;
    }
    if let Some(mib) = overrides.memory_mib {
        entry.memory_mib = mib;
    }
    Ok(PolicySettings::from_config(&entry))
}

/// Compile, check and link `wasm` as the live host does, in a pool sized like the proxy's
/// (`engine`: the config's, or the defaults); blocking.
pub fn load(
    wasm: &Path,
    settings: PolicySettings,
    engine: &EngineConfig,
    env: &dyn Env,
) -> Result<Policy, ToolError> {
    let policy_error = |source| ToolError::Policy {
        path: wasm.to_path_buf(),
        source,
    };
    let bytes =
        std::fs::read(wasm).map_err(|e| ToolError::input(wasm, format!("cannot read: {e}")))?;
    let pool = PoolSize {
        instances: 2,
        memory_bytes: (engine.max_memory_mib as usize * 1024 * 1024)
            .max(settings.limits.memory_bytes),
    };
    let engine =
        PolicyEngine::new(pool, compile_cache_dir(None, env).as_deref()).map_err(policy_error)?;
    let name = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("policy");
    engine
        .prepare(name, bytes.into(), settings, wasm.display().to_string())
        .map_err(policy_error)
}
