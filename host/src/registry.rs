//! Policy components in OCI registries, in the Wasm OCI layout that `wkg`, `oras` and
//! wasmCloud use: a config blob of media type `application/vnd.wasm.config.v0+json` and one
//! layer of type `application/wasm` holding the component.
//!
//! [`push`] uploads a component and answers the manifest's digest; [`pull`] resolves a
//! reference (a tag, or `@sha256:...`) to its manifest, checks the layout, and verifies the
//! component's bytes against the layer's digest, and the manifest against a digest the reference
//! names. Credentials come from `SWITCHYARD_REGISTRY_USERNAME`
//! and `SWITCHYARD_REGISTRY_PASSWORD`, else from a docker-style `config.json`
//! (`$DOCKER_CONFIG`, else `~/.docker`); none is anonymous access. The registry is spoken to over
//! HTTPS (rustls), or plain HTTP when asked. This module does network I/O only.

use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::config::{Env, hex};

/// The media type of a Wasm component's config blob.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the layer holding the component.
pub const WASM_LAYER: &str = "application/wasm";

/// A registry operation failed; the message names the reference.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not an OCI reference: {message}")]
    Reference { reference: String, message: String },
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
    /// Whether trying again later may work: the registry could not be reached or failed.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Registry { .. })
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access {
    /// Speak plain HTTP (a registry on a private network or loopback).
    pub plain_http: bool,
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

fn client(access: Access) -> Client {
    Client::new(ClientConfig {
        protocol: if access.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
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

fn registry_error(reference: &str, error: impl std::fmt::Display) -> RegistryError {
    RegistryError::Registry {
        reference: reference.to_string(),
        message: error.to_string(),
    }
}

/// Push `component` to `reference` in the Wasm OCI layout; the manifest's digest.
pub async fn push(
    reference: &str,
    component: &[u8],
    access: Access,
    env: &dyn Env,
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
    client
        .push(&parsed, &[layer], config, &auth, None)
        .await
        .map_err(|e| registry_error(reference, e))?;
    client
        .fetch_manifest_digest(&parsed, &auth)
        .await
        .map_err(|e| registry_error(reference, e))
}

/// Pull the component `reference` names, checked and verified.
pub async fn pull(reference: &str, access: Access, env: &dyn Env) -> Result<Pulled, RegistryError> {
    let parsed = parse(reference)?;
    let auth = credentials(parsed.resolve_registry(), env);
    let image = client(access)
        .pull(&parsed, &auth, vec![WASM_LAYER])
        .await
        .map_err(|e| registry_error(reference, e))?;
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

    #[test]
    fn references_are_checked() {
        assert!(parse("registry.example/policies/cost-router:v3").is_ok());
        assert!(matches!(
            parse("Not A Reference"),
            Err(RegistryError::Reference { .. })
        ));
    }
}
