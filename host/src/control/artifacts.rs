//! Policies that come from OCI registries: fetching a reference's component, and the record
//! beside a policy's file (`NAME.oci.json`) of the digest the file holds.
//!
//! An `oci` policy entry is fetched when the entry is new or its reference differs from the one
//! its file was written for; otherwise its file is loaded as it is, so a restart needs no
//! registry. A fetched version that goes live, like a deployed one, is written to the policy's
//! file with its record, which tells a restart, the admin API and the fleet which digest is live.
//! This module touches registries (through `registry` and its cache), policy files and records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Env, PolicyConfig};
use crate::policy::LoadError;
use crate::registry::{self, Access, Cache, Pulled, RegistryError};

/// What a policy's file holds, for an `oci` policy or a deployed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// The config entry's `oci` reference when the file was written: a different one is
    /// fetched anew.
    configured: Option<String>,
    /// The manifest digest, `sha256:...`; none for a version that came from no registry (an
    /// upload, or a rollback to one).
    digest: Option<String>,
    /// SHA-256 (hex) of the component: the record speaks for the file only while it holds this.
    sha256: String,
}

/// The record of the file at `path`: `NAME.oci.json` beside `NAME.wasm`.
fn record_path(path: &Path) -> PathBuf {
    path.with_extension("oci.json")
}

async fn read_record(path: &Path) -> Option<Record> {
    let bytes = tokio::fs::read(record_path(path)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The digest the file at `path` holds, when its record speaks for content `sha256`.
pub(super) async fn digest_of(path: &Path, sha256: &str) -> Option<String> {
    read_record(path)
        .await
        .filter(|record| record.sha256 == sha256)
        .and_then(|record| record.digest)
}

/// Write the record that the file at `path` (of a policy whose entry names `configured`) holds
/// the component with SHA-256 `sha256`, the OCI artifact `digest` if it came from a registry.
pub(super) async fn write_record(
    path: &Path,
    configured: Option<String>,
    digest: Option<&str>,
    sha256: &str,
) -> std::io::Result<()> {
    let record = Record {
        configured,
        digest: digest.map(str::to_string),
        sha256: sha256.to_string(),
    };
    let json = serde_json::to_vec_pretty(&record).expect("serializable");
    super::lifecycle::write_atomically(&record_path(path), &json).await
}

/// A component an `oci` entry asks for that its file does not hold.
pub(super) struct Fetched {
    pub digest: String,
    pub component: Vec<u8>,
}

/// Where policies' OCI artifacts come from: the registries, through a cache by digest.
pub struct Artifacts {
    access: Access,
    cache: Cache,
    env: Arc<dyn Env + Send + Sync>,
}

impl Artifacts {
    /// Registries reached as `config` says, with the cache under its compile cache folder.
    pub fn new(config: &Config, env: Arc<dyn Env + Send + Sync>) -> Self {
        let cache = config.compile_cache_dir(&*env).map(|dir| dir.join("oci"));
        Self {
            access: Access::from_config(&config.registry),
            cache: Cache::new(cache),
            env,
        }
    }

    /// `reference` pinned to the digest it names now.
    pub async fn resolve(&self, reference: &str) -> Result<String, RegistryError> {
        let digest = registry::resolve(reference, &self.access, &*self.env).await?;
        registry::pinned(reference, &digest)
    }

    /// The component `reference` names, from the cache when it is pinned to a digest held there.
    pub async fn fetch(&self, reference: &str) -> Result<Pulled, RegistryError> {
        self.cache.pull(reference, &self.access, &*self.env).await
    }

    /// For an `oci` entry whose file was not written for its reference (a new entry, or a
    /// changed reference): the component, fetched. `None` when the file is to be loaded as it
    /// is: it holds what the entry's reference gave, or what a deploy, upload or rollback put
    /// live since.
    pub(super) async fn wanted(&self, config: &PolicyConfig) -> Result<Option<Fetched>, LoadError> {
        let Some(reference) = &config.oci else {
            return Ok(None);
        };
        if let Some(record) = read_record(&config.path).await
            && record.configured.as_deref() == Some(reference)
        {
            return Ok(None);
        }
        let fetch = |e: RegistryError| LoadError::Fetch(e.to_string());
        let pinned = self.resolve(reference).await.map_err(fetch)?;
        let pulled = self.fetch(&pinned).await.map_err(fetch)?;
        Ok(Some(Fetched {
            digest: pulled.digest,
            component: pulled.component,
        }))
    }
}
