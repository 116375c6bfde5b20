//! Policy components in OCI registries, in the Wasm OCI layout that `wkg`, `oras` and
//! wasmCloud use: a config blob of media type `application/vnd.wasm.config.v0+json` and one
//! layer of type `application/wasm` holding the component.
//!
//! [`push`] uploads a component and answers the manifest's digest; [`pull`] resolves a
//! reference (a tag, or `@sha256:...`) to its manifest, checks the layout, and verifies the
//! component's bytes against the layer's digest, and the manifest against a digest the reference
//! names; [`resolve`] turns a tag into the digest it names now. A [`Cache`] keeps pulled
//! components on disk by digest, so a digest is fetched once and a rollback to one needs no
//! registry. Credentials come from `SWITCHYARD_REGISTRY_USERNAME` and
//! `SWITCHYARD_REGISTRY_PASSWORD`, else from a docker-style `config.json` (`$DOCKER_CONFIG`, else
//! `~/.docker`); none is anonymous access. The registry is spoken to over HTTPS (rustls), or
//! plain HTTP when asked. This module touches only registries and its cache folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::config::{Env, RegistryConfig, hex};

/// The media type of a Wasm component's config blob.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the layer holding the component.
pub const WASM_LAYER: &str = "application/wasm";

/// Longest wait to connect to a registry (reads may take twice this between bytes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole registry call (a push or pull of a component up to tens of MB) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A registry operation failed; the message names the reference.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is outside the registries `registry.allowed` lists")]
    NotAllowed { reference: String },
    #[error("`{reference}` is not an OCI reference: {message}")]
    Reference { reference: String, message: String },
    #[error("registry of `{reference}` cannot be reached: {message}")]
    Unavailable { reference: String, message: String },
    #[error("registry of `{reference}`: {message}")]
    Registry { reference: String, message: String },
    #[error("`{reference}` is not a Wasm component artifact: {message}")]
    Layout { reference: String, message: String },
    #[error("`{reference}`: {what} has digest {got}, not {expected}")]
    Digest {
        reference: String,
        what: &'static str,
        expected: String,
        got: String,
    },
}

impl RegistryError {
    /// Whether trying again later may work: the registry could not be reached, timed out, or
    /// failed on its side; not when it answered that the artifact is missing or access denied.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// How to reach registries: HTTPS, except to the registries named, or plain HTTP to all.
#[derive(Debug, Clone, Default)]
pub struct Access {
    plain_http: Vec<String>,
    all_plain: bool,
    /// Reference prefixes that may be resolved and pulled; empty allows any.
    allowed: Vec<String>,
}

impl Access {
    /// Plain HTTP to every registry (the CLI's `--plain-http`).
    pub fn plain_http() -> Self {
        Self {
            plain_http: Vec::new(),
            all_plain: true,
            allowed: Vec::new(),
        }
    }

    /// What `[registry]` says.
    pub fn from_config(config: &RegistryConfig) -> Self {
        Self {
            plain_http: config.plain_http.clone(),
            all_plain: false,
            allowed: config.allowed.clone(),
        }
    }

    /// `reference`, unless `registry.allowed` leaves it out.
    fn check(&self, reference: &str) -> Result<(), RegistryError> {
        if self.allowed.is_empty() || self.allowed.iter().any(|p| reference.starts_with(p)) {
            Ok(())
        } else {
            Err(RegistryError::NotAllowed {
                reference: reference.to_string(),
            })
        }
    }
}

/// A component pulled from a registry.
#[derive(Debug)]
pub struct Pulled {
    /// The manifest's digest, `sha256:...`.
    pub digest: String,
    pub component: Vec<u8>,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn parse(reference: &str) -> Result<Reference, RegistryError> {
    reference
        .parse()
        .map_err(|e: oci_client::ParseError| RegistryError::Reference {
            reference: reference.to_string(),
            message: e.to_string(),
        })
}

fn client(access: &Access) -> Client {
    Client::new(ClientConfig {
        protocol: if access.all_plain {
            ClientProtocol::Http
        } else {
            ClientProtocol::HttpsExcept(access.plain_http.clone())
        },
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(CONNECT_TIMEOUT * 2),
        ..ClientConfig::default()
    })
}

/// The credentials for `registry`: the environment's, else a docker-style config file's.
fn credentials(registry: &str, env: &dyn Env) -> RegistryAuth {
    if let (Some(user), Some(password)) = (
        env.var("SWITCHYARD_REGISTRY_USERNAME"),
        env.var("SWITCHYARD_REGISTRY_PASSWORD"),
    ) {
        return RegistryAuth::Basic(user, password);
    }
    let dir = env
        .var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|home| Path::new(&home).join(".docker")));
    let file = dir.and_then(|dir| std::fs::read(dir.join("config.json")).ok());
    let auth = file.and_then(|bytes| {
        let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let encoded = config["auths"][registry]["auth"].as_str()?.to_string();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let (user, password) = String::from_utf8(decoded)
            .ok()?
            .split_once(':')
            .map(|(u, p)| (u.to_string(), p.to_string()))?;
        Some(RegistryAuth::Basic(user, password))
    });
    auth.unwrap_or(RegistryAuth::Anonymous)
}

/// What a failed registry call means: worth trying again (no connection, a timeout, a server
/// error, throttling) or final (not found, access denied, a broken answer).
fn registry_error(reference: &str, error: OciDistributionError) -> RegistryError {
    let retryable = match &error {
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => true,
        OciDistributionError::ServerError { code, .. } => {
            *code >= 500 || *code == 408 || *code == 429
        }
        _ => false,
    };
    let reference = reference.to_string();
    let message = error.to_string();
    if retryable {
        RegistryError::Unavailable { reference, message }
    } else {
        RegistryError::Registry { reference, message }
    }
}

/// Run a registry call for `reference` within [`CALL_TIMEOUT`].
async fn bounded<T>(
    reference: &str,
    call: impl std::future::Future<Output = Result<T, OciDistributionError>>,
) -> Result<T, RegistryError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| registry_error(reference, e)),
        Err(_) => Err(RegistryError::Unavailable {
            reference: reference.to_string(),
            message: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
        }),
    }
}

/// Push `component` to `reference` in the Wasm OCI layout; the manifest's digest.
pub async fn push(
    reference: &str,
    component: &[u8],
    access: &Access,
    env: &(dyn Env + Sync),
) -> Result<String, RegistryError> {
    let parsed = parse(reference)?;
    let auth = credentials(parsed.resolve_registry(), env);
    let layer = ImageLayer::new(component.to_vec(), WASM_LAYER.to_string(), None);
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [sha256(component)],
    });
    let config = Config::new(
        config.to_string().into_bytes(),
        WASM_CONFIG.to_string(),
        None,
    );
    let client = client(access);
    bounded(
        reference,
        client.push(&parsed, &[layer], config, &auth, None),
    )
    .await?;
    bounded(reference, client.fetch_manifest_digest(&parsed, &auth)).await
}

/// The digest `reference` names as the registry answers now: what its tag names, or the
/// digest it names, unless the registry answers that it does not hold it. A digest is taken as
/// named while the registry cannot be reached: whoever pulls it verifies it, and tries again.
pub async fn resolve(
    reference: &str,
    access: &Access,
    env: &(dyn Env + Sync),
) -> Result<String, RegistryError> {
    access.check(reference)?;
    let parsed = parse(reference)?;
    let auth = credentials(parsed.resolve_registry(), env);
    let answer = bounded(
        reference,
        client(access).fetch_manifest_digest(&parsed, &auth),
    )
    .await;
    match (parsed.digest(), answer) {
        (Some(named), Err(e)) if e.retryable() => Ok(named.to_string()),
        (Some(named), Ok(digest)) if named != digest => Err(RegistryError::Digest {
            reference: reference.to_string(),
            what: "the manifest",
            expected: named.to_string(),
            got: digest,
        }),
        (_, answer) => answer,
    }
}

/// `reference` pinned to `digest`: `REGISTRY/REPOSITORY@sha256:...`.
pub fn pinned(reference: &str, digest: &str) -> Result<String, RegistryError> {
    Ok(parse(reference)?
        .clone_with_digest(digest.to_string())
        .whole())
}

/// Pull the component `reference` names, checked and verified.
pub async fn pull(
    reference: &str,
    access: &Access,
    env: &(dyn Env + Sync),
) -> Result<Pulled, RegistryError> {
    access.check(reference)?;
    let parsed = parse(reference)?;
    let auth = credentials(parsed.resolve_registry(), env);
    let image = bounded(
        reference,
        client(access).pull(&parsed, &auth, vec![WASM_LAYER]),
    )
    .await?;
    let layout = |message: &str| RegistryError::Layout {
        reference: reference.to_string(),
        message: message.to_string(),
    };
    let manifest = image
        .manifest
        .ok_or_else(|| layout("it has no image manifest"))?;
    if manifest.config.media_type != WASM_CONFIG {
        return Err(layout(&format!(
            "its config is `{}`, not `{WASM_CONFIG}`",
            manifest.config.media_type
        )));
    }
    let [layer] = &manifest.layers[..] else {
        return Err(layout(&format!(
            "it has {} layers, not one",
            manifest.layers.len()
        )));
    };
    let component = image
        .layers
        .into_iter()
        .next()
        .ok_or_else(|| layout("its layer is missing"))?
        .data;
    let got = sha256(&component);
    if got != layer.digest {
        return Err(RegistryError::Digest {
            reference: reference.to_string(),
            what: "the component",
            expected: layer.digest.clone(),
            got,
        });
    }
    let digest = image
        .digest
        .ok_or_else(|| layout("the registry named no manifest digest"))?;
    if let Some(expected) = parsed.digest()
        && expected != digest
    {
        return Err(RegistryError::Digest {
            reference: reference.to_string(),
            what: "the manifest",
            expected: expected.to_string(),
            got: digest,
        });
    }
    Ok(Pulled { digest, component })
}

/// Components pulled before, on disk by manifest digest: `sha256-HEX.wasm`, beside
/// `sha256-HEX.layer` holding the component's own digest, which every read checks again (a file
/// cut short by a crash is pulled anew).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// A cache in `dir`; `None` keeps nothing.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The component `reference` names: from the cache when the reference is pinned to a digest
    /// it holds, else pulled, verified and kept.
    pub async fn pull(
        &self,
        reference: &str,
        access: &Access,
        env: &(dyn Env + Sync),
    ) -> Result<Pulled, RegistryError> {
        access.check(reference)?;
        if let Some(digest) = parse(reference)?.digest()
            && let Some(component) = self.read(digest).await
        {
            return Ok(Pulled {
                digest: digest.to_string(),
                component,
            });
        }
        let pulled = pull(reference, access, env).await?;
        if let Err(e) = self.write(&pulled).await {
            tracing::warn!(digest = %pulled.digest, "cannot keep a pulled component in the cache: {e}");
        }
        Ok(pulled)
    }

    fn paths(&self, digest: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.dir.as_ref()?;
        let hex = digest.strip_prefix("sha256:")?;
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some((
            dir.join(format!("sha256-{hex}.wasm")),
            dir.join(format!("sha256-{hex}.layer")),
        ))
    }

    async fn read(&self, digest: &str) -> Option<Vec<u8>> {
        let (component, layer) = self.paths(digest)?;
        let expected = tokio::fs::read_to_string(layer).await.ok()?;
        let bytes = tokio::fs::read(component).await.ok()?;
        (sha256(&bytes) == expected.trim()).then_some(bytes)
    }

    async fn write(&self, pulled: &Pulled) -> std::io::Result<()> {
        let Some((component, layer)) = self.paths(&pulled.digest) else {
            return Ok(());
        };
        if let Some(dir) = component.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let temp = component.with_extension(format!("part-{}", std::process::id()));
        tokio::fs::write(&temp, &pulled.component).await?;
        tokio::fs::rename(&temp, &component).await?;
        tokio::fs::write(layer, sha256(&pulled.component)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn credentials_come_from_the_environment_then_a_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:s3cret");
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::json!({"auths": {"registry.example": {"auth": auth}}}).to_string(),
        )
        .unwrap();
        let mut env = HashMap::from([(
            "DOCKER_CONFIG".to_string(),
            dir.path().display().to_string(),
        )]);
        let basic = |user: &str, password: &str| RegistryAuth::Basic(user.into(), password.into());
        assert_eq!(
            credentials("registry.example", &env),
            basic("robot", "s3cret")
        );
        assert_eq!(credentials("other.example", &env), RegistryAuth::Anonymous);
        env.insert("SWITCHYARD_REGISTRY_USERNAME".into(), "me".into());
        env.insert("SWITCHYARD_REGISTRY_PASSWORD".into(), "pw".into());
        assert_eq!(credentials("registry.example", &env), basic("me", "pw"));
    }

    #[tokio::test]
    async fn the_cache_answers_a_digest_it_holds_and_checks_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(Some(dir.path().to_path_buf()));
        let digest = format!("sha256:{}", "ab".repeat(32));
        let pulled = Pulled {
            digest: digest.clone(),
            component: b"component".to_vec(),
        };
        cache.write(&pulled).await.unwrap();
        // No registry listens here: the answer can only come from the cache.
        let reference = format!("127.0.0.1:9/p@{digest}");
        let env = HashMap::<String, String>::new();
        let hit = cache
            .pull(&reference, &Access::plain_http(), &env)
            .await
            .unwrap();
        assert_eq!(hit.component, b"component");
        let (component, _) = cache.paths(&digest).unwrap();
        std::fs::write(component, b"compo").unwrap();
        let miss = cache.pull(&reference, &Access::plain_http(), &env).await;
        assert!(
            matches!(miss, Err(RegistryError::Unavailable { .. })),
            "{miss:?}"
        );
        let fenced = Access::from_config(&RegistryConfig {
            plain_http: Vec::new(),
            allowed: vec!["registry.internal/policies/".into()],
        });
        let outside = cache.pull(&reference, &fenced, &env).await;
        assert!(
            matches!(outside, Err(RegistryError::NotAllowed { .. })),
            "{outside:?}"
        );
    }

    #[test]
    fn references_are_checked() {
        assert!(parse("registry.example/policies/cost-router:v3").is_ok());
        assert!(matches!(
            parse("Not A Reference"),
            Err(RegistryError::Reference { .. })
        ));
    }
}
