//! Providers: where a model's requests go, in which wire format, and how they are addressed.
//!
//! Built once from the config. An HTTP provider holds its base URL, the headers every request to
//! it carries (the API key read from the environment variable the config names, held only as a
//! sensitive header value and sent only to that provider; Anthropic's version header), and the
//! pooled client to reach it with: the shared one, or its own when it speaks HTTP/2 without TLS.
//! A Bedrock or Gemini provider speaks Anthropic Messages as far as the rest of the proxy knows,
//! through its [`Dialect`]; a Bedrock one holds no key but its region and credentials. Each model's URL is made once
//! ([`Provider::url`], [`Provider::stream_url`]). An `echo` provider is answered in-process.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use super::bedrock::Bedrock;
use super::dialect::{Dialect, GEMINI_BASE};
use crate::api::Wire;
use crate::config::{Env, ModelKind, ProviderConfig, ProviderKind};
use crate::label::Label;

/// Anthropic's API version sent when the config names none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// A provider could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("provider `{provider}`: environment variable {var} is not set")]
    MissingKey { provider: String, var: String },
    #[error("provider `{provider}`: {message}")]
    Invalid { provider: String, message: String },
}

/// How a provider is reached.
#[derive(Debug)]
pub enum Endpoint {
    /// An HTTP API.
    Http(Box<HttpEndpoint>),
    /// Answered in-process, in OpenAI's format (translated for Anthropic clients).
    Echo,
}

/// A provider reached over HTTP.
#[derive(Debug)]
pub struct HttpEndpoint {
    kind: ProviderKind,
    /// The format chat requests and answers are in.
    pub wire: Wire,
    /// It serves the Responses API itself.
    pub responses: bool,
    base: Url,
    api_version: Option<String>,
    /// Sent with every request: the key (sensitive) and any version header.
    pub headers: HeaderMap,
    /// The pooled client for this provider.
    pub client: reqwest::Client,
    /// For a provider reached by way of Anthropic Messages (Bedrock, Gemini): its API. Bodies
    /// go out in it and answers come back in it, translated from and into
    /// [`HttpEndpoint::wire`].
    pub dialect: Option<Dialect>,
}

/// One configured provider.
#[derive(Debug)]
pub struct Provider {
    pub name: Label,
    pub endpoint: Endpoint,
    /// Its concurrency limit, when it has one: a permit per request in flight.
    pub slots: Option<Slots>,
}

/// A provider's concurrency limit and its permits.
#[derive(Debug, Clone)]
pub struct Slots {
    pub limit: u32,
    pub permits: Arc<Semaphore>,
}

impl Provider {
    /// Set up `config`, reading its key through `env`; `shared` is the client for providers
    /// that need no client of their own, `connect_timeout` that of any client made here. The
    /// permits of `old` (the same provider before a reload) are kept while its limit is the
    /// same, so requests in flight across the reload still count.
    pub fn from_config(
        config: &ProviderConfig,
        env: &dyn Env,
        shared: &reqwest::Client,
        connect_timeout: Duration,
        old: Option<&Provider>,
    ) -> Result<Self, SetupError> {
        let slots = Slots::for_config(config, old);
        let invalid = |message: String| SetupError::Invalid {
            provider: config.name.clone(),
            message,
        };
        let Some((wire, key)) = wire_and_key(config.kind) else {
            return Ok(Self {
                name: Label::new(&config.name),
                endpoint: Endpoint::Echo,
                slots: slots.clone(),
            });
        };
        let (dialect, default_base) = dialect(config);
        let base = config
            .base_url
            .as_deref()
            .or(default_base.as_deref())
            .ok_or_else(|| invalid("base_url is required".into()))?;
        let base = Url::parse(&format!("{}/", base.trim_end_matches('/')))
            .map_err(|e| invalid(format!("base_url: {e}")))?;
        let headers = fixed_headers(config, env, key)?;
        let client = if config.h2c {
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| invalid(format!("cannot build its HTTP/2 client: {e}")))?
        } else {
            shared.clone()
        };
        Ok(Self {
            name: Label::new(&config.name),
            slots,
            endpoint: Endpoint::Http(Box::new(HttpEndpoint {
                kind: config.kind,
                wire,
                responses: config.responses,
                base,
                api_version: config.api_version.clone(),
                headers,
                client,
                dialect,
            })),
        })
    }

    /// Where requests for `upstream_model`, a model of `kind`, go; `None` for a provider answered
    /// in-process. An Anthropic provider serves no embeddings.
    pub fn url(&self, upstream_model: &str, kind: ModelKind) -> Result<Option<Url>, SetupError> {
        let Endpoint::Http(http) = &self.endpoint else {
            return Ok(None);
        };
        let invalid = |e: &dyn std::fmt::Display| SetupError::Invalid {
            provider: self.name.to_string(),
            message: format!("cannot make the URL for `{upstream_model}`: {e}"),
        };
        let operation: &[&str] = match kind {
            ModelKind::Chat => &["chat", "completions"],
            ModelKind::Embeddings => &["embeddings"],
        };
        if let Some(dialect) = &http.dialect {
            let url = match kind {
                ModelKind::Chat => dialect.url(&http.base, upstream_model, false),
                ModelKind::Embeddings => dialect.embeddings_url(&http.base, upstream_model),
            };
            return url.map(Some).map_err(|e| invalid(&e));
        }
        let url = match (http.kind, kind) {
            (ProviderKind::Anthropic, ModelKind::Embeddings) => {
                return Err(invalid(&"an Anthropic provider serves no embeddings"));
            }
            (ProviderKind::AzureOpenai, _) => {
                let mut url = http.base.clone();
                url.path_segments_mut()
                    .map_err(|()| invalid(&"base_url cannot be a base"))?
                    .pop_if_empty()
                    .extend(["openai", "deployments", upstream_model])
                    .extend(operation);
                url.query_pairs_mut().append_pair(
                    "api-version",
                    http.api_version.as_deref().unwrap_or_default(),
                );
                url
            }
            (ProviderKind::Anthropic, _) => http.base.join("messages").map_err(|e| invalid(&e))?,
            _ => http
                .base
                .join(&operation.join("/"))
                .map_err(|e| invalid(&e))?,
        };
        Ok(Some(url))
    }

    /// Where streamed requests for `upstream_model` go when that is not [`Provider::url`]:
    /// Bedrock's ConverseStream, Gemini's `streamGenerateContent`.
    pub fn stream_url(&self, upstream_model: &str) -> Result<Option<Url>, SetupError> {
        let Endpoint::Http(http) = &self.endpoint else {
            return Ok(None);
        };
        let Some(dialect) = &http.dialect else {
            return Ok(None);
        };
        dialect
            .url(&http.base, upstream_model, true)
            .map(Some)
            .map_err(|e| SetupError::Invalid {
                provider: self.name.to_string(),
                message: format!("cannot make the URL for `{upstream_model}`: {e}"),
            })
    }

    /// Where Responses API requests go, for a provider that serves it: `{base_url}/responses`, or
    /// Azure's `{resource}/openai/responses?api-version=...` (the deployment named in the body).
    /// A stored response is read at this URL's path followed by `/{id}`.
    pub fn responses_url(&self) -> Result<Option<Url>, SetupError> {
        let Endpoint::Http(http) = &self.endpoint else {
            return Ok(None);
        };
        if !http.responses {
            return Ok(None);
        }
        let invalid = |e: &dyn std::fmt::Display| SetupError::Invalid {
            provider: self.name.to_string(),
            message: format!("cannot make its Responses API URL: {e}"),
        };
        let url = match http.kind {
            ProviderKind::AzureOpenai => {
                let mut url = http
                    .base
                    .join("openai/responses")
                    .map_err(|e| invalid(&e))?;
                url.query_pairs_mut().append_pair(
                    "api-version",
                    http.api_version.as_deref().unwrap_or_default(),
                );
                url
            }
            _ => http.base.join("responses").map_err(|e| invalid(&e))?,
        };
        Ok(Some(url))
    }
}

impl Slots {
    /// The concurrency limit `config` sets, if any: `old`'s slots when the limit is unchanged,
    /// so that a reload keeps the requests in flight counted, else new ones.
    fn for_config(config: &ProviderConfig, old: Option<&Provider>) -> Option<Self> {
        let limit = config.max_concurrency?;
        match old.and_then(|o| o.slots.clone()) {
            Some(slots) if slots.limit == limit => Some(slots),
            _ => Some(Slots {
                limit,
                permits: Arc::new(Semaphore::new(limit as usize)),
            }),
        }
    }
}

/// The wire a provider of `kind` speaks and the header its key goes in (with the prefix the key
/// takes); `None` for the provider answered in-process.
fn wire_and_key(kind: ProviderKind) -> Option<(Wire, Option<(&'static str, &'static str)>)> {
    Some(match kind {
        ProviderKind::Echo => return None,
        ProviderKind::Openai => (Wire::Openai, Some(("authorization", "Bearer "))),
        ProviderKind::AzureOpenai => (Wire::Openai, Some(("api-key", ""))),
        ProviderKind::Anthropic => (Wire::Anthropic, Some(("x-api-key", ""))),
        // Signed with AWS credentials instead of a key.
        ProviderKind::Bedrock => (Wire::Anthropic, None),
        ProviderKind::Gemini => (Wire::Anthropic, Some(("x-goog-api-key", ""))),
    })
}

/// The dialect a provider's requests are rewritten in, if any, and the base URL it has by
/// default.
fn dialect(config: &ProviderConfig) -> (Option<Dialect>, Option<String>) {
    match config.kind {
        ProviderKind::Bedrock => {
            let region = config.region.clone().unwrap_or_default();
            let base = Bedrock::default_base(&region);
            let bedrock = Bedrock::new(config.name.clone(), region, config.aws_profile.clone());
            (Some(Dialect::Bedrock(Box::new(bedrock))), Some(base))
        }
        ProviderKind::Gemini => (Some(Dialect::Gemini), Some(GEMINI_BASE.to_string())),
        _ => (None, None),
    }
}

/// The headers every request to the provider of `config` carries: its key, read from the
/// environment, in `key` (the header and the value's prefix), marked sensitive so that it is
/// never logged; and an Anthropic provider's API version.
fn fixed_headers(
    config: &ProviderConfig,
    env: &dyn Env,
    key: Option<(&'static str, &str)>,
) -> Result<HeaderMap, SetupError> {
    let invalid = |message: String| SetupError::Invalid {
        provider: config.name.clone(),
        message,
    };
    let mut headers = HeaderMap::new();
    if let (Some(var), Some((header, prefix))) = (&config.api_key_env, key) {
        let key = env
            .var(var)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| SetupError::MissingKey {
                provider: config.name.clone(),
                var: var.clone(),
            })?;
        let mut value = HeaderValue::try_from(format!("{prefix}{key}"))
            .map_err(|_| invalid(format!("the key in {var} is not a valid header value")))?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(header), value);
    }
    if config.kind == ProviderKind::Anthropic {
        let version = config
            .anthropic_version
            .as_deref()
            .unwrap_or(DEFAULT_ANTHROPIC_VERSION);
        let version = HeaderValue::try_from(version)
            .map_err(|_| invalid("anthropic_version is not a valid header value".into()))?;
        headers.insert(HeaderName::from_static("anthropic-version"), version);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn provider(kind: ProviderKind, base: &str, key_env: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            name: "up".into(),
            kind,
            base_url: Some(base.into()),
            api_key_env: key_env.map(str::to_string),
            api_version: (kind == ProviderKind::AzureOpenai).then(|| "2024-10-21".into()),
            anthropic_version: None,
            region: None,
            aws_profile: None,
            h2c: false,
            max_concurrency: None,
            responses: false,
        }
    }

    fn build(
        config: &ProviderConfig,
        env: &HashMap<String, String>,
    ) -> Result<Provider, SetupError> {
        Provider::from_config(
            config,
            env,
            &reqwest::Client::new(),
            Duration::from_secs(1),
            None,
        )
    }

    fn http(p: &Provider) -> &HttpEndpoint {
        let Endpoint::Http(http) = &p.endpoint else {
            panic!("not http")
        };
        http
    }

    #[test]
    fn each_kind_has_its_url_key_header_and_wire() {
        let env = HashMap::from([("UP_KEY".to_string(), "sk-test".to_string())]);
        let openai = build(
            &provider(
                ProviderKind::Openai,
                "http://127.0.0.1:9/v1/",
                Some("UP_KEY"),
            ),
            &env,
        )
        .unwrap();
        assert_eq!(
            openai
                .url("gpt", ModelKind::Chat)
                .unwrap()
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(http(&openai).wire, Wire::Openai);
        let auth = &http(&openai).headers["authorization"];
        assert_eq!(auth, "Bearer sk-test");
        assert!(auth.is_sensitive());
        assert!(!format!("{openai:?}").contains("sk-test"));

        let azure = build(
            &provider(
                ProviderKind::AzureOpenai,
                "https://res.openai.azure.com",
                Some("UP_KEY"),
            ),
            &env,
        )
        .unwrap();
        assert_eq!(
            azure
                .url("my deploy", ModelKind::Chat)
                .unwrap()
                .unwrap()
                .as_str(),
            "https://res.openai.azure.com/openai/deployments/my%20deploy/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            azure
                .url("emb", ModelKind::Embeddings)
                .unwrap()
                .unwrap()
                .as_str(),
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            openai
                .url("e", ModelKind::Embeddings)
                .unwrap()
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/v1/embeddings"
        );
        assert_eq!(http(&azure).headers["api-key"], "sk-test");
        assert!(!http(&azure).headers.contains_key("authorization"));

        let anthropic = build(
            &provider(
                ProviderKind::Anthropic,
                "http://127.0.0.1:9/v1",
                Some("UP_KEY"),
            ),
            &env,
        )
        .unwrap();
        assert_eq!(
            anthropic
                .url("claude", ModelKind::Chat)
                .unwrap()
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/v1/messages"
        );
        assert_eq!(http(&anthropic).wire, Wire::Anthropic);
        assert!(
            anthropic
                .url("claude", ModelKind::Embeddings)
                .unwrap_err()
                .to_string()
                .contains("serves no embeddings")
        );
        assert_eq!(http(&anthropic).headers["x-api-key"], "sk-test");
        assert_eq!(
            http(&anthropic).headers["anthropic-version"],
            DEFAULT_ANTHROPIC_VERSION
        );
    }

    #[test]
    fn a_missing_key_names_provider_and_variable() {
        let config = provider(
            ProviderKind::Openai,
            "http://127.0.0.1:9/v1",
            Some("NOPE_KEY"),
        );
        let e = build(&config, &HashMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "provider `up`: environment variable NOPE_KEY is not set"
        );
        let keyless = provider(ProviderKind::Openai, "http://127.0.0.1:9/v1", None);
        assert!(build(&keyless, &HashMap::new()).is_ok());
    }
}
