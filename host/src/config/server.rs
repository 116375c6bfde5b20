//! The client-facing listener: TLS, request-head limits, metrics exposure and draining.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Invalid, defaults};

/// How the client-facing listener serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with this certificate and key instead of plain
    /// HTTP. The files are read again on every SIGHUP, so a renewed certificate
    /// needs no restart; turning TLS on or off needs one.
    pub tls: Option<TlsConfig>,
    /// Largest request head (request line and headers) accepted, in bytes; a larger one gets
    /// 431. Restart to change.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Time in-flight requests and streams get to finish after SIGTERM or SIGINT, in
    /// milliseconds; new connections are refused at once, and what is still running when the time
    /// is up is cut.
    #[serde(default = "defaults::drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// Also serve `GET /metrics` (Prometheus text, no token) on the client-facing listener. It is
    /// always served on the admin listener, behind the admin token, when there is one.
    #[serde(default)]
    pub metrics: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            tls: None,
            max_header_bytes: defaults::max_header_bytes(),
            drain_timeout_ms: defaults::drain_timeout_ms(),
            metrics: false,
        }
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(8192..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(Invalid::new(
                "server.max_header_bytes",
                "must be between 8192 and 1048576",
            ));
        }
        if self.drain_timeout_ms == 0 {
            return Err(Invalid::new(
                "server.drain_timeout_ms",
                "must be greater than 0",
            ));
        }
        if let Some(tls) = &self.tls {
            for (field, path) in [
                ("server.tls.cert_path", &tls.cert_path),
                ("server.tls.key_path", &tls.key_path),
            ] {
                if !path.is_file() {
                    return Err(Invalid::new(
                        field,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
        }
        Ok(())
    }
}
