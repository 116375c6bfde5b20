//! AWS Bedrock: the Converse endpoints of a model, and the SigV4 signature of every request.
//!
//! Credentials come from the standard AWS chain (environment variables, the shared config and
//! credentials files and their profiles, a `credential_process`, web identity for Kubernetes,
//! container and instance metadata), resolved when the provider first sends a request, and kept
//! until a minute before they expire; then the next request fetches fresh ones, one fetch at a
//! time. Credentials never leave this module but as a request's signature: the signing headers
//! are marked sensitive, and `Credentials` prints no secret. The chain's own HTTP client (for
//! STS and instance metadata) uses rustls with ring, as the rest of the proxy does. Answers are
//! translated by `api::translate` (Converse by way of Anthropic Messages) and streams decoded by
//! `events`.

mod events;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

pub use events::converse_sse;

/// The service name Bedrock's runtime signs for.
const SIGNING_NAME: &str = "bedrock";

/// What a path label leaves as it is: the unreserved characters.
pub(crate) const LABEL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Credentials are fetched again this long before they expire.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// How long a failed fetch of credentials is the answer before the chain is asked again.
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(5);

/// A request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// What the chain said is in the proxy's log only: it may name files, roles and a
    /// credential process's output.
    #[error("no AWS credentials (the proxy's log says why)")]
    Credentials,
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

/// Where a Bedrock provider's requests go, and the credentials that sign them.
#[derive(Debug)]
pub struct Bedrock {
    /// The provider's name, for the log.
    provider: String,
    region: String,
    profile: Option<String>,
    chain: tokio::sync::OnceCell<DefaultCredentialsChain>,
    cached: Mutex<Option<Credentials>>,
    /// Held while fetching, so that one request fetches and the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
    /// Until when a failed fetch is the answer, so that requests fail at once rather than each
    /// running the chain (instance metadata included) again.
    failed_until: Mutex<Option<Instant>>,
}

impl Bedrock {
    /// Provider `provider` in `region`, whose credentials come from the chain, reading
    /// `profile` of the shared files when one is named.
    pub fn new(provider: String, region: String, profile: Option<String>) -> Self {
        Self {
            provider,
            region,
            profile,
            chain: tokio::sync::OnceCell::new(),
            cached: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            failed_until: Mutex::new(None),
        }
    }

    /// The runtime endpoint of the region, when the config names no `base_url`.
    pub fn default_base(region: &str) -> String {
        format!("https://bedrock-runtime.{region}.amazonaws.com")
    }

    /// The Converse URL of `model` under `base` (ConverseStream's when `stream`). The model id
    /// or ARN is one path segment, percent-encoded as AWS's SDKs do (all but unreserved
    /// characters, so `:` and `/` too).
    pub fn url(base: &Url, model: &str, stream: bool) -> Result<Url, String> {
        let operation = if stream {
            "converse-stream"
        } else {
            "converse"
        };
        operation_url(base, model, operation)
    }

    /// The InvokeModel URL of `model` under `base`, for embeddings.
    pub fn invoke_url(base: &Url, model: &str) -> Result<Url, String> {
        operation_url(base, model, "invoke")
    }

    /// Sign a POST of `body` to `url` whose other headers are `headers`: the signing headers
    /// (`authorization`, `x-amz-date` and, for temporary credentials, `x-amz-security-token`)
    /// are added to them.
    pub async fn sign(
        &self,
        url: &Url,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let credentials = self.credentials().await?;
        sign_request(
            &credentials,
            &self.region,
            SystemTime::now(),
            url,
            headers,
            body,
        )
    }

    /// The credentials to sign with: the kept ones while they are fresh, else fetched.
    async fn credentials(&self) -> Result<Credentials, AuthError> {
        if let Some(fresh) = self.kept(SystemTime::now() + REFRESH_AHEAD) {
            return Ok(fresh);
        }
        self.recently_failed()?;
        let _fetching = self.fetching.lock().await;
        if let Some(fresh) = self.kept(SystemTime::now() + REFRESH_AHEAD) {
            return Ok(fresh);
        }
        self.recently_failed()?;
        let chain = self.chain.get_or_init(|| self.build_chain()).await;
        match chain.provide_credentials().await {
            Ok(credentials) => {
                *lock(&self.cached) = Some(credentials.clone());
                Ok(credentials)
            }
            Err(error) => {
                tracing::warn!(provider = %self.provider, profile = ?self.profile,
                    error = %error_chain(&error), "no AWS credentials for a bedrock provider");
                *lock(&self.failed_until) = Some(Instant::now() + RETRY_FAILED_AFTER);
                // Credentials about to expire still sign until they do.
                self.kept(SystemTime::now()).ok_or(AuthError::Credentials)
            }
        }
    }

    /// The failure of a fetch made less than [`RETRY_FAILED_AFTER`] ago.
    fn recently_failed(&self) -> Result<(), AuthError> {
        match *lock(&self.failed_until) {
            Some(until) if Instant::now() < until => Err(AuthError::Credentials),
            _ => Ok(()),
        }
    }

    /// The kept credentials, if they are still valid at `at`.
    fn kept(&self, at: SystemTime) -> Option<Credentials> {
        lock(&self.cached)
            .as_ref()
            .filter(|c| c.expiry().is_none_or(|expiry| expiry > at))
            .cloned()
    }

    async fn build_chain(&self) -> DefaultCredentialsChain {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = ProviderConfig::default()
            .with_http_client(http)
            .with_behavior_version(Some(BehaviorVersion::latest()))
            .with_region(Some(aws_config::Region::new(self.region.clone())));
        let mut chain = DefaultCredentialsChain::builder()
            .region(aws_config::Region::new(self.region.clone()))
            .configure(config);
        if let Some(profile) = &self.profile {
            chain = chain.profile_name(profile);
        }
        chain.build().await
    }
}

/// `{base}/model/{model}/{operation}`, the model percent-encoded as one path segment.
fn operation_url(base: &Url, model: &str, operation: &str) -> Result<Url, String> {
    let model = percent_encoding::utf8_percent_encode(model, LABEL);
    let base = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/model/{model}/{operation}")).map_err(|e| e.to_string())
}

/// A mutex's value, whether or not a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error and its causes, in one line (the chain's report spans several).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sign a POST of `body` to `url` at `time` for `region` with `credentials`, adding the signing
/// headers to `headers` (the secrets among them marked sensitive).
pub fn sign_request(
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
    url: &Url,
    headers: &mut HeaderMap,
    body: &[u8],
) -> Result<(), AuthError> {
    let signing = |e: &dyn std::fmt::Display| AuthError::Signing(e.to_string());
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing(&e))?
        .into();
    let signed_headers = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        signed_headers,
        SignableBody::Bytes(body),
    )
    .map_err(|e| signing(&e))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| signing(&e))?
        .into_parts();
    for (name, value) in instructions.headers() {
        let name = HeaderName::try_from(name).map_err(|e| signing(&e))?;
        let mut value = HeaderValue::try_from(value).map_err(|e| signing(&e))?;
        value.set_sensitive(name != "x-amz-date");
        headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_model_in_one_segment() {
        let base = Url::parse("https://bedrock-runtime.eu-west-1.amazonaws.com/").expect("URL");
        let arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude";
        assert_eq!(
            Bedrock::url(&base, arn, true).expect("URL").as_str(),
            "https://bedrock-runtime.eu-west-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude/converse-stream"
        );
        assert_eq!(
            Bedrock::url(&base, "amazon.nova-lite-v1:0", false)
                .expect("URL")
                .path(),
            "/model/amazon.nova-lite-v1%3A0/converse"
        );
    }

    #[test]
    fn signing_adds_sensitive_headers() {
        let credentials =
            Credentials::new("AKIDTEST", "secret", Some("token".into()), None, "test");
        let url = Url::parse("http://127.0.0.1:9/model/m/converse").expect("URL");
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        sign_request(
            &credentials,
            "us-east-1",
            SystemTime::UNIX_EPOCH,
            &url,
            &mut headers,
            b"{}",
        )
        .expect("signs");
        let authorization = headers["authorization"].to_str().expect("ASCII");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/19700101/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="),
            "{authorization}"
        );
        assert!(headers["authorization"].is_sensitive());
        assert!(headers["x-amz-security-token"].is_sensitive());
        assert_eq!(headers["x-amz-date"], "19700101T000000Z");
    }

    #[tokio::test]
    async fn credentials_are_kept_until_a_minute_before_they_expire() {
        let bedrock = Bedrock::new("aws".into(), "us-east-1".into(), None);
        let expiring = |secs| {
            Credentials::new(
                "A",
                "s",
                None,
                Some(SystemTime::now() + Duration::from_secs(secs)),
                "t",
            )
        };
        *bedrock.cached.lock().expect("lock") = Some(expiring(3600));
        assert!(bedrock.kept(SystemTime::now() + REFRESH_AHEAD).is_some());
        *bedrock.cached.lock().expect("lock") = Some(expiring(30));
        assert!(bedrock.kept(SystemTime::now() + REFRESH_AHEAD).is_none());
        assert!(bedrock.kept(SystemTime::now()).is_some());
    }
}
