//! OCI registries that policies come from: how to reach them.

use serde::Deserialize;

use super::Invalid;

/// How the proxy reaches the OCI registries its `oci` policies and deploys name
/// (`[registry]`). Credentials are not here: they come from `SWITCHYARD_REGISTRY_USERNAME` and
/// `SWITCHYARD_REGISTRY_PASSWORD`, else a docker-style `config.json` (`$DOCKER_CONFIG`, else
/// `~/.docker`). Restart to change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registries (`HOST:PORT`, as written in references) spoken to over plain HTTP rather than
    /// HTTPS: a registry on loopback or a private network only.
    #[serde(default)]
    pub plain_http: Vec<String>,
    /// Where `oci` entries and deploys may take components from: reference prefixes such as
    /// `registry.internal:5000/policies/`. Empty (the default) allows any registry. Set it when
    /// registry credentials are in the environment (they go to whichever registry a reference
    /// names) or when others than the operators can write the fleet's Redis.
    #[serde(default)]
    pub allowed: Vec<String>,
}

impl RegistryConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        for (i, host) in self.plain_http.iter().enumerate() {
            if host.is_empty() || host.contains(['/', ' ']) {
                return Err(Invalid::new(
                    format!("registry.plain_http[{i}]"),
                    "must be a registry's HOST or HOST:PORT",
                ));
            }
        }
        for (i, prefix) in self.allowed.iter().enumerate() {
            if !prefix.contains('/') || prefix.contains(char::is_whitespace) {
                return Err(Invalid::new(
                    format!("registry.allowed[{i}]"),
                    "must be the start of a reference: REGISTRY/ or REGISTRY/REPOSITORY",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_entry_is_named() {
        let config = RegistryConfig {
            plain_http: vec!["127.0.0.1:5000".into(), "http://x/".into()],
            allowed: Vec::new(),
        };
        assert_eq!(
            config.validate().unwrap_err().field,
            "registry.plain_http[1]"
        );
        let config = RegistryConfig {
            plain_http: Vec::new(),
            allowed: vec!["registry.internal".into()],
        };
        assert_eq!(config.validate().unwrap_err().field, "registry.allowed[0]");
    }
}
