//! The admin API as the command line calls it (`switchyard policy deploy`, `switchyard fleet
//! status`): one running replica's admin listener, with the admin token. This module does
//! network I/O only; the answers are printed by the caller.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::fleet::Status;
use crate::policy::candidate::{Mode, Report, SplitReport};

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

/// Longest wait to connect to the admin API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for an answer: a deploy on a replica without `[state]` fetches and checks the
/// component before it answers.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Most characters of an error message shown from the admin API.
const MAX_MESSAGE_CHARS: usize = 2000;

/// `message` (which may quote a registry's or a policy's words) cut to [`MAX_MESSAGE_CHARS`],
/// with control characters and bidirectional overrides escaped, fit for a terminal.
fn printable(message: &str) -> String {
    message
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .flat_map(|c| {
            let hidden =
                c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            match hidden {
                true => c.escape_default().collect::<Vec<_>>(),
                false => vec![c],
            }
        })
        .collect()
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

/// A policy's candidate and its figures, as the admin API says them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CandidateStatus {
    /// `trying`, or `aborted` in the answer to an abort.
    pub status: String,
    pub policy: String,
    /// The live version and the candidate's.
    pub live: String,
    pub candidate: String,
    pub origin: String,
    pub digest: Option<String>,
    pub mode: Mode,
    pub started_at: String,
    /// The shadow's figures (empty for a split).
    pub report: Report,
    /// A split's figures per arm.
    pub split: Option<SplitReport>,
    /// With `[state]`, the fleet's candidate run's figures added up over the replicas trying it.
    #[serde(default)]
    pub fleet: Option<FleetFigures>,
}

/// A fleet's candidate run, added up over its replicas.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FleetFigures {
    pub run: String,
    /// Replicas that report trying it.
    pub replicas: usize,
    pub report: Option<Report>,
    pub split: Option<SplitReport>,
}

/// A version put live, as the admin API says it.
#[derive(Debug, serde::Deserialize)]
pub struct LiveAnswer {
    pub version: String,
    pub persisted: bool,
    pub warning: Option<String>,
}

/// What a candidate is made from.
pub enum CandidateBody {
    Component(Vec<u8>),
    Reference(String),
}

impl AdminClient {
    /// The admin API at `base`, called with `token`.
    pub fn new(base: &str, token: String) -> Result<Self, ClientError> {
        let base = reqwest::Url::parse(base)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| ClientError::Url(base.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: base.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self { base, token, http })
    }

    /// `POST /admin/policies/NAME/deploy`.
    pub async fn deploy(&self, policy: &str, reference: &str) -> Result<DeployAnswer, ClientError> {
        let path = ["admin", "policies", policy, "deploy"];
        let body = json!({"reference": reference});
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    /// `PUT /admin/policies/NAME/candidate?shadow=SHARE` or `?split=PERCENT&sticky=BY`.
    pub async fn start_candidate(
        &self,
        policy: &str,
        body: CandidateBody,
        mode: &Mode,
    ) -> Result<CandidateStatus, ClientError> {
        let mut url = self.url(&["admin", "policies", policy, "candidate"])?;
        match mode {
            Mode::Shadow { sample } => {
                url.query_pairs_mut()
                    .append_pair("shadow", &sample.to_string());
            }
            Mode::Split { percent, sticky } => {
                url.query_pairs_mut()
                    .append_pair("split", &percent.to_string())
                    .append_pair("sticky", &String::from(sticky.clone()));
            }
        }
        let request = self.http.put(url);
        let request = match body {
            CandidateBody::Component(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(bytes),
            CandidateBody::Reference(reference) => request.json(&json!({"reference": reference})),
        };
        self.send(request).await
    }

    /// `GET /admin/policies/NAME/candidate`.
    pub async fn candidate(&self, policy: &str) -> Result<CandidateStatus, ClientError> {
        let path = ["admin", "policies", policy, "candidate"];
        self.call(reqwest::Method::GET, &path, None).await
    }

    /// `POST /admin/policies/NAME/candidate/promote`.
    pub async fn promote_candidate(&self, policy: &str) -> Result<LiveAnswer, ClientError> {
        let path = ["admin", "policies", policy, "candidate", "promote"];
        self.call(reqwest::Method::POST, &path, None).await
    }

    /// `DELETE /admin/policies/NAME/candidate`.
    pub async fn abort_candidate(&self, policy: &str) -> Result<CandidateStatus, ClientError> {
        let path = ["admin", "policies", policy, "candidate"];
        self.call(reqwest::Method::DELETE, &path, None).await
    }

    /// `GET /admin/fleet`.
    pub async fn fleet(&self) -> Result<Status, ClientError> {
        self.call(reqwest::Method::GET, &["admin", "fleet"], None)
            .await
    }

    /// The admin API's URL for the path made of `segments`, each escaped as one segment.
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Url(self.base.to_string()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Call the admin API at the path made of `segments`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let url = self.url(segments)?;
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Send `request` with the admin token; its answer, or the error it says.
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.to_string(),
            message: e.to_string(),
        };
        let request = request.bearer_auth(&self.token);
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = answer["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Refused {
                status,
                message: printable(&message),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Refused {
            status,
            message: format!("an answer this command does not understand: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_and_made_printable() {
        assert_eq!(printable("bad\u{1b}[31m red\n"), "bad\\u{1b}[31m red\\n");
        assert_eq!(printable(&"x".repeat(5000)).len(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn a_policy_name_stays_one_path_segment() {
        let client = AdminClient::new("http://127.0.0.1:9/", "t".into()).unwrap();
        let url = client.url(&["admin", "policies", "a/../b?c", "deploy"]);
        assert_eq!(url.unwrap().path(), "/admin/policies/a%2F..%2Fb%3Fc/deploy");
    }
}
