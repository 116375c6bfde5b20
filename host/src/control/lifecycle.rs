//! Changing the live state: config reloads, policy file changes, uploads and rollbacks, and
//! writing what uploads and rollbacks put live to the policies' files.
//!
//! Each change holds the app's change lock for its whole run, so two changes never interleave
//! (an upload and the file event it causes, say). Validation (compiling, linking, the canary)
//! happens before anything is swapped; a change that fails leaves every live version as it was,
//! records why in the policy's events (shown by the admin API), logs it and counts it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::artifacts;
use super::build::{self, audiences};
use super::{App, StartError};
use crate::config::{ModelKind, hex};
use crate::fleet::FleetError;
use crate::policy::canary::Audience;
use crate::policy::registry::NoPrevious;
use crate::policy::{LoadError, Policy, PolicySettings, PolicySlot, input};
use crate::registry::RegistryError;

/// A change that was refused; nothing live changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no policy named `{0}` in the config")]
    UnknownPolicy(String),
    #[error("the new version of policy `{policy}` was refused: {fault}")]
    Refused { policy: String, fault: LoadError },
    #[error("the config was not reloaded: {0}")]
    Config(#[from] StartError),
    #[error("the config was not reloaded: it changes `{0}`, which only a restart can apply")]
    RestartNeeded(&'static str),
    #[error(transparent)]
    NoPrevious(#[from] NoPrevious),
    #[error("policy `{policy}`: {source}")]
    Fetch {
        policy: String,
        source: RegistryError,
    },
    #[error("the fleet's state: {0}")]
    Fleet(FleetError),
    #[error("policy `{0}` has no candidate")]
    NoCandidate(String),
    #[error(
        "policy `{0}`: in a fleet every replica fetches the candidate, so start it from an OCI reference (`{{\"reference\": REF}}`), not a component"
    )]
    FleetNeedsReference(String),
}

impl ChangeError {
    /// Whether trying the same change again later may work: the registry or Redis failed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Fetch { source, .. } => source.retryable(),
            Self::Fleet(_) => true,
            _ => false,
        }
    }
}

/// What a config reload put live.
#[derive(Debug)]
pub struct ReloadSummary {
    /// Every policy's live version, by name.
    pub policies: Vec<(String, Arc<str>)>,
    pub teams: usize,
}

/// A version that an upload or a rollback put live.
pub struct Changed {
    pub version: Arc<Policy>,
    /// Whether the component was also written to the policy's file, so that a restart keeps it.
    pub persisted: Result<(), String>,
}

impl App {
    /// Re-read the config file and swap in the new snapshot, or change nothing.
    pub async fn reload_config(&self, trigger: &'static str) -> Result<ReloadSummary, ChangeError> {
        let _change = self.changes.lock().await;
        let started = Instant::now();
        let result = self.try_reload().await;
        let outcome = if result.is_ok() { "applied" } else { "refused" };
        metrics::counter!("switchyard_config_reloads_total", "trigger" => trigger, "result" => outcome)
            .increment(1);
        match &result {
            Ok(summary) => tracing::info!(
                trigger,
                teams = summary.teams,
                policies = summary.policies.len(),
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "config reloaded"
            ),
            Err(e) => tracing::error!(trigger, "{e}; the running config stays live"),
        }
        result
    }

    async fn try_reload(&self) -> Result<ReloadSummary, ChangeError> {
        let config = self.source.load().map_err(StartError::from)?;
        let old = self.snapshot();
        if let Some(field) = old.config.restart_needed(&config) {
            return Err(ChangeError::RestartNeeded(field));
        }
        let plan = build::plan(
            &self.engine,
            &self.artifacts,
            config,
            &*self.env,
            Some(&old),
        )
        .await?;
        let fetched = plan.fetched();
        let snapshot = plan.apply("config", &self.unsaved);
        let summary = ReloadSummary {
            policies: snapshot
                .policies
                .iter()
                .map(|(name, slot)| (name.clone(), slot.live().version().text().clone()))
                .collect(),
            teams: snapshot.teams.len(),
        };
        self.publish(snapshot);
        self.save_fetched(&fetched).await;
        Ok(summary)
    }

    /// Write the versions a start or reload fetched from a registry to their policies' files.
    pub(super) async fn save_fetched(&self, names: &[String]) {
        for name in names {
            if let Ok(slot) = self.slot(name) {
                let _ = save_live(&slot).await;
            }
        }
    }

    /// The file of policy `name` changed: load it if its content is new, and swap it in once it
    /// passed validation.
    pub async fn policy_file_changed(&self, name: &str) {
        let _change = self.changes.lock().await;
        let started = Instant::now();
        let Ok(slot) = self.slot(name) else {
            return;
        };
        let config = slot.config();
        let bytes = match tokio::fs::read(&config.path).await {
            Ok(bytes) => bytes,
            // Removed or being replaced: the event of its return follows.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(source) => {
                let fault = LoadError::Read {
                    path: config.path.clone(),
                    source,
                };
                slot.refused("file", None, fault.to_string());
                return;
            }
        };
        let sha256 = hex(&Sha256::digest(&bytes));
        if slot.file_sha256().as_deref() == Some(sha256.as_str()) {
            return;
        }
        slot.set_file_sha256(sha256.clone());
        let origin = format!("file {}", config.path.display());
        let digest = artifacts::digest_of(&config.path, &sha256).await;
        match self.validate(&slot, bytes.into(), origin, digest).await {
            Ok(version) => {
                slot.promote(version, "file");
                tracing::info!(
                    policy = name,
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "policy file change applied"
                );
            }
            Err(fault) => slot.refused("file", Some(short(name, &sha256)), fault.to_string()),
        }
    }

    /// Validate an uploaded component for policy `name`, write it to the policy's file and swap
    /// it in. A component that fails validation changes nothing.
    pub async fn upload(&self, name: &str, bytes: Bytes) -> Result<Changed, ChangeError> {
        let _change = self.changes.lock().await;
        let slot = self.slot(name)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let version = match self.validate(&slot, bytes, "upload".into(), None).await {
            Ok(version) => version,
            Err(fault) => {
                slot.refused("upload", Some(short(name, &sha256)), fault.to_string());
                return Err(ChangeError::Refused {
                    policy: name.to_string(),
                    fault,
                });
            }
        };
        slot.promote(version.clone(), "upload");
        let persisted = save_live(&slot).await;
        Ok(Changed { version, persisted })
    }

    /// Put policy `name`'s previous version back live, and write it to the policy's file.
    pub async fn roll_back(&self, name: &str) -> Result<Changed, ChangeError> {
        let _change = self.changes.lock().await;
        let slot = self.slot(name)?;
        let version = slot.roll_back("admin", "requested through the admin API")?;
        slot.take_unsaved();
        let persisted = save_live(&slot).await;
        Ok(Changed { version, persisted })
    }

    /// Wait for a rollback to leave a policy's file behind its live version; the file watcher
    /// awaits this beside file events.
    pub async fn unsaved(&self) {
        self.unsaved.notified().await;
    }

    /// Write the live version of every policy a rollback left unsaved to its file.
    pub async fn save_rolled_back(&self) {
        let _change = self.changes.lock().await;
        for slot in self.snapshot().policies.values() {
            if slot.take_unsaved() {
                let _ = save_live(slot).await;
            }
        }
    }

    /// The live slot of policy `name`.
    pub(super) fn slot(&self, name: &str) -> Result<Arc<PolicySlot>, ChangeError> {
        self.snapshot()
            .policies
            .get(name)
            .cloned()
            .ok_or_else(|| ChangeError::UnknownPolicy(name.to_string()))
    }

    /// Prepare `bytes` (the OCI artifact `digest`, if known) as a version of `slot`'s policy and
    /// run the canary for the teams it serves.
    pub(super) async fn validate(
        &self,
        slot: &PolicySlot,
        bytes: Bytes,
        origin: String,
        digest: Option<String>,
    ) -> Result<Arc<Policy>, LoadError> {
        let config = slot.config();
        let settings = PolicySettings::from_config(&config);
        let version = build::prepare(&self.engine, &config.name, bytes, settings, origin)
            .await?
            .with_digest(digest);
        let snapshot = self.snapshot();
        let full_catalog = input::catalog(&snapshot.config, None, ModelKind::Chat);
        let full_embeddings = input::catalog(&snapshot.config, None, ModelKind::Embeddings);
        let teams = snapshot.teams.iter().map(|t| {
            let audience = Audience {
                team: Some(&*t.name),
                catalog: &t.catalog,
                embedding_catalog: &t.embedding_catalog,
            };
            (&**t.policy.name(), audience)
        });
        let unbound = Audience {
            team: None,
            catalog: &full_catalog,
            embedding_catalog: &full_embeddings,
        };
        let audiences = audiences(teams, unbound, &config.name);
        build::check(Arc::new(version), &config, &audiences).await
    }
}

/// Write `slot`'s live version to the policy's file, unless the file holds it already, with the
/// record of what it holds (its OCI digest, if any) for an `oci` policy or a deployed version; a
/// failure is logged and returned.
pub(super) async fn save_live(slot: &PolicySlot) -> Result<(), String> {
    let live = slot.live();
    let config = slot.config();
    let path = &config.path;
    let failed = |e: String| {
        tracing::warn!(policy = %slot.name(), version = %live.version(), "the live version is not saved, a restart would load the file's: {e}");
        Err(e)
    };
    if slot.file_sha256().as_deref() != Some(live.sha256()) {
        if let Err(e) = write_atomically(path, live.component_bytes()).await {
            return failed(format!("cannot write {}: {e}", path.display()));
        }
        slot.set_file_sha256(live.sha256().to_string());
        tracing::info!(policy = %slot.name(), version = %live.version(), path = %path.display(), "live version saved to the policy's file");
    }
    let recorded = live.digest().is_some() || config.oci.is_some();
    if recorded
        && let Err(e) =
            artifacts::write_record(path, config.oci.clone(), live.digest(), live.sha256()).await
    {
        return failed(format!(
            "cannot write the OCI record beside {}: {e}",
            path.display()
        ));
    }
    Ok(())
}

/// `name@` and the first 12 hex digits of `sha256`, as versions are shown.
pub(super) fn short(name: &str, sha256: &str) -> String {
    format!("{name}@{}", &sha256[..12])
}

/// Replace `path` with `bytes` so that readers see the old file or the new one, never a mix;
/// its folder is made if missing (an `oci` policy's first fetch).
pub(super) async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the policy path has no file name"))?;
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder).await?;
    }
    let temp = path.with_file_name(format!(
        ".{}.upload-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    tokio::fs::write(&temp, bytes).await?;
    let renamed = tokio::fs::rename(&temp, path).await;
    if renamed.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    renamed
}
