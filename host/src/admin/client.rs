//! The admin API as the command line calls it (`switchyard policy deploy`, `switchyard fleet
//! status`): one running replica's admin listener, with the admin token. This module does
//! network I/O only; the answers are printed by the caller.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::fleet::Status;

/// A call to the admin API failed; the message says where and whether to try again.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not an admin URL (like http://127.0.0.1:9090)")]
    Url(String),
    #[error("cannot reach the admin API at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the admin API answered {status}: {message}")]
    Refused { status: StatusCode, message: String },
}

impl ClientError {
    /// Whether trying again later may work.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Url(_) => false,
            Self::Unreachable { .. } => true,
            Self::Refused { status, .. } => status.is_server_error(),
        }
    }
}

/// One replica's admin API.
pub struct AdminClient {
    base: reqwest::Url,
    token: String,
    http: reqwest::Client,
}

/// What a deploy recorded, as the admin API says it.
#[derive(Debug, serde::Deserialize)]
pub struct DeployAnswer {
    /// `recorded` (for the fleet) or `live` (on a replica without `[state]`).
    pub status: String,
    pub reference: String,
    pub digest: String,
    pub previous: Option<String>,
}

impl AdminClient {
    /// The admin API at `base`, called with `token`.
    pub fn new(base: &str, token: String) -> Result<Self, ClientError> {
        let base = reqwest::Url::parse(base)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| ClientError::Url(base.to_string()))?;
        Ok(Self {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    /// `POST /admin/policies/NAME/deploy`.
    pub async fn deploy(&self, policy: &str, reference: &str) -> Result<DeployAnswer, ClientError> {
        let path = format!("admin/policies/{policy}/deploy");
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({"reference": reference})),
        )
        .await
    }

    /// `GET /admin/fleet`.
    pub async fn fleet(&self) -> Result<Status, ClientError> {
        self.call(reqwest::Method::GET, "admin/fleet", None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|_| ClientError::Url(self.base.to_string()))?;
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.to_string(),
            message: e.to_string(),
        };
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = answer["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Refused { status, message });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Refused {
            status,
            message: format!("an answer this command does not understand: {e}"),
        })
    }
}
