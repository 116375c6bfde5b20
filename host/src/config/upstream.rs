//! Where models are served from: providers, the model catalog and upstream timeouts.

use std::collections::HashSet;

use serde::Deserialize;

use super::{Invalid, defaults};

/// Timeouts towards upstream providers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Time to establish a connection, in milliseconds.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time an attempt may take to answer (the whole body when not streaming, the response
    /// head when streaming), in milliseconds, unless the decision sets its own.
    #[serde(default = "defaults::attempt_timeout_ms")]
    pub attempt_timeout_ms: u64,
    /// Time all attempts of one request may take together, in milliseconds; an attempt gets the
    /// lesser of its own timeout and what is left.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Times a target is tried again after a failure that may be passing (connection error, a
    /// broken answer, 408, 429 without `Retry-After`, 500, 502, 503, 504), before the route moves
    /// on; retries are bounded by the retry budget.
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// Retries the budget earns per hundred requests.
    #[serde(default = "defaults::retry_budget_percent")]
    pub retry_budget_percent: f64,
    /// Retries the budget earns per second whatever the traffic.
    #[serde(default = "defaults::retry_budget_min_per_second")]
    pub retry_budget_min_per_second: f64,
    /// Longest quiet time within a streamed answer, in milliseconds: a stream that sends nothing
    /// for this long is ended with an error event.
    #[serde(default = "defaults::stream_idle_timeout_ms")]
    pub stream_idle_timeout_ms: u64,
    /// Consecutive failed attempts (connection error, timeout, cut answer, 401/403/408/429/5xx)
    /// that open a model's circuit breaker: attempts then skip the model, and policies see it
    /// as unhealthy.
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker keeps attempts away before letting one probe through, in
    /// milliseconds. A `Retry-After` on a 429 or 503 opens it for as long as asked (at most 5
    /// minutes).
    #[serde(default = "defaults::breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// Recent attempts per model that its error rate is computed over.
    #[serde(default = "defaults::health_window")]
    pub health_window: u32,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: defaults::connect_timeout_ms(),
            attempt_timeout_ms: defaults::attempt_timeout_ms(),
            request_timeout_ms: defaults::request_timeout_ms(),
            retries: defaults::retries(),
            retry_budget_percent: defaults::retry_budget_percent(),
            retry_budget_min_per_second: defaults::retry_budget_min_per_second(),
            stream_idle_timeout_ms: defaults::stream_idle_timeout_ms(),
            breaker_failures: defaults::breaker_failures(),
            breaker_cooldown_ms: defaults::breaker_cooldown_ms(),
            health_window: defaults::health_window(),
        }
    }
}

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...):
    /// `POST {base_url}/chat/completions` with `Authorization: Bearer`.
    Openai,
    /// Azure OpenAI deployments: `POST {base_url}/openai/deployments/{deployment}/chat/completions
    /// ?api-version={api_version}` with an `api-key` header; a model's `upstream_model` is its
    /// deployment name.
    AzureOpenai,
    /// Anthropic's Messages API: `POST {base_url}/messages` with `x-api-key` and
    /// `anthropic-version`; requests and answers are translated when the client speaks OpenAI's API.
    Anthropic,
    /// AWS Bedrock's Converse API: `POST {base_url}/model/{upstream_model}/converse` (and
    /// `/converse-stream`, answered in AWS's event-stream framing), signed with SigV4 using
    /// credentials from the standard AWS chain. `upstream_model` is a model id or an inference
    /// profile's id or ARN; requests and answers are translated for both client APIs.
    Bedrock,
    /// Google's Gemini API: `POST {base_url}/models/{upstream_model}:generateContent` (and
    /// `:streamGenerateContent?alt=sse`) with the key in `x-goog-api-key`; requests and answers
    /// are translated for both client APIs.
    Gemini,
    /// Built in: answers (in the client's API) with a short text naming the model; no network.
    Echo,
}

impl ProviderKind {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::AzureOpenai => "azure-openai",
            Self::Anthropic => "anthropic",
            Self::Bedrock => "bedrock",
            Self::Gemini => "gemini",
            Self::Echo => "echo",
        }
    }
}

/// One upstream provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name that models refer to.
    pub name: String,
    /// Wire protocol.
    pub kind: ProviderKind,
    /// Base URL: including the API prefix for `openai` (`https://api.openai.com/v1`) and
    /// `anthropic` (`https://api.anthropic.com/v1`); the resource for `azure-openai`
    /// (`https://NAME.openai.azure.com`). For `bedrock` it is optional (default
    /// `https://bedrock-runtime.{region}.amazonaws.com`; set it for a VPC endpoint), and for
    /// `gemini` (default `https://generativelanguage.googleapis.com/v1beta`). Not used by `echo`.
    pub base_url: Option<String>,
    /// Environment variable holding the API key, sent as `Authorization: Bearer` (`openai`),
    /// `api-key` (`azure-openai`), `x-api-key` (`anthropic`) or `x-goog-api-key` (`gemini`,
    /// required); none sends no key. Not used by `bedrock`.
    pub api_key_env: Option<String>,
    /// The `api-version` query parameter of every request (`azure-openai` only, required), e.g.
    /// `2024-10-21`.
    pub api_version: Option<String>,
    /// The `anthropic-version` header (`anthropic` only); defaults to `2023-06-01`.
    pub anthropic_version: Option<String>,
    /// The AWS region requests are signed for and sent to (`bedrock` only, required), e.g.
    /// `us-east-1`.
    pub region: Option<String>,
    /// The profile of the shared AWS config and credentials files that credentials come from
    /// (`bedrock` only); without it, `AWS_PROFILE` or `default`. The rest of the standard chain
    /// (environment variables, web identity, container and instance metadata) applies as in
    /// AWS's SDKs.
    pub aws_profile: Option<String>,
    /// Speak HTTP/2 without TLS ("prior knowledge") to an `http://` base URL. Over `https://`,
    /// HTTP/2 is used whenever the provider offers it (ALPN), without this setting.
    #[serde(default)]
    pub h2c: bool,
    /// Most requests in flight to this provider at once (a stream counts until it ends); an
    /// attempt that finds them all taken skips to the route's next target at once. None: no
    /// limit.
    pub max_concurrency: Option<u32>,
    /// The provider serves OpenAI's Responses API itself (`openai` and `azure-openai` only), as
    /// OpenAI, Azure OpenAI and recent vLLM do: a Responses request is passed through to its
    /// `/responses` (its bytes forwarded when the model name is unchanged), and the responses it
    /// makes stay with it. Without this, a Responses request is translated to chat completions.
    #[serde(default)]
    pub responses: bool,
}

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The id clients and policies use.
    pub id: String,
    /// Name of the provider serving it.
    pub provider: String,
    /// The model name sent upstream; defaults to `id`.
    pub upstream_model: Option<String>,
    /// US dollars per million input tokens.
    #[serde(default)]
    pub input_cost_per_mtok: f64,
    /// US dollars per million output tokens.
    #[serde(default)]
    pub output_cost_per_mtok: f64,
    /// Context window in tokens.
    pub context_window: u32,
    /// Capabilities a policy can select on, e.g. `cheap`, `reasoning`, `vision`, `tools`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What it serves: `chat` (chat completions and Messages, the default) or `embeddings`. A
    /// policy deciding a request sees only the models of the request's kind.
    #[serde(default)]
    pub kind: ModelKind,
}

/// What a model serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Chat completions, Anthropic Messages (and the Responses API).
    #[default]
    Chat,
    /// Embeddings.
    Embeddings,
}

impl ModelConfig {
    /// The model name sent upstream.
    pub fn upstream_model(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.id)
    }
}

impl UpstreamConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        for (field, millis) in [
            ("upstream.connect_timeout_ms", self.connect_timeout_ms),
            ("upstream.attempt_timeout_ms", self.attempt_timeout_ms),
            ("upstream.request_timeout_ms", self.request_timeout_ms),
            (
                "upstream.stream_idle_timeout_ms",
                self.stream_idle_timeout_ms,
            ),
            ("upstream.breaker_cooldown_ms", self.breaker_cooldown_ms),
        ] {
            if millis == 0 {
                return Err(Invalid::new(field, "must be greater than 0"));
            }
        }
        if self.retries > 10 {
            return Err(Invalid::new("upstream.retries", "must be at most 10"));
        }
        for (field, value) in [
            ("upstream.retry_budget_percent", self.retry_budget_percent),
            (
                "upstream.retry_budget_min_per_second",
                self.retry_budget_min_per_second,
            ),
        ] {
            if !value.is_finite() || !(0.0..=1000.0).contains(&value) {
                return Err(Invalid::new(field, "must be a number from 0 to 1000"));
            }
        }
        if self.breaker_failures == 0 {
            return Err(Invalid::new(
                "upstream.breaker_failures",
                "must be at least 1",
            ));
        }
        if !(1..=10_000).contains(&self.health_window) {
            return Err(Invalid::new(
                "upstream.health_window",
                "must be between 1 and 10000",
            ));
        }
        Ok(())
    }
}

/// Check the providers and return their names.
pub(super) fn validate_providers(providers: &[ProviderConfig]) -> Result<HashSet<&str>, Invalid> {
    let mut names = HashSet::new();
    for (i, provider) in providers.iter().enumerate() {
        let field = |name: &str| format!("providers[{i}].{name}");
        if !names.insert(provider.name.as_str()) {
            return Err(Invalid::new(
                field("name"),
                format!("duplicate provider `{}`", provider.name),
            ));
        }
        let kind = provider.kind.name();
        validate_aws(provider, &field)?;
        if provider.kind == ProviderKind::Gemini && provider.api_key_env.is_none() {
            return Err(Invalid::new(
                field("api_key_env"),
                "is required for kind `gemini`: the environment variable holding the API key",
            ));
        }
        validate_base_url(provider, &field)?;
        match (provider.kind, provider.api_version.as_deref()) {
            (ProviderKind::AzureOpenai, None | Some("")) => {
                return Err(Invalid::new(
                    field("api_version"),
                    "is required for kind `azure-openai`",
                ));
            }
            (ProviderKind::AzureOpenai, _) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Invalid::new(
                    field("api_version"),
                    format!("is only used by kind `azure-openai`, not `{kind}`"),
                ));
            }
        }
        if provider.max_concurrency == Some(0) {
            return Err(Invalid::new(
                field("max_concurrency"),
                "must be greater than 0 (leave it out for no limit)",
            ));
        }
        if provider.responses
            && !matches!(
                provider.kind,
                ProviderKind::Openai | ProviderKind::AzureOpenai
            )
        {
            return Err(Invalid::new(
                field("responses"),
                format!("is only for kinds `openai` and `azure-openai`, not `{kind}`"),
            ));
        }
        if provider.anthropic_version.is_some() && provider.kind != ProviderKind::Anthropic {
            return Err(Invalid::new(
                field("anthropic_version"),
                format!("is only used by kind `anthropic`, not `{kind}`"),
            ));
        }
        if provider.api_key_env.as_deref() == Some("") {
            return Err(Invalid::new(
                field("api_key_env"),
                "must name an environment variable",
            ));
        }
    }
    Ok(names)
}

/// Check where a provider is reached: `echo` has no URL, `bedrock` and `gemini` may leave theirs
/// to their defaults, every other kind needs an http(s) URL, and `h2c` needs plain http.
fn validate_base_url(
    provider: &ProviderConfig,
    field: &dyn Fn(&str) -> String,
) -> Result<(), Invalid> {
    let kind = provider.kind.name();
    let url = match (provider.kind, &provider.base_url) {
        (ProviderKind::Bedrock | ProviderKind::Gemini | ProviderKind::Echo, None) => return Ok(()),
        (ProviderKind::Echo, Some(_)) => {
            return Err(Invalid::new(
                field("base_url"),
                "is not used by kind `echo`",
            ));
        }
        (_, None) => {
            return Err(Invalid::new(
                field("base_url"),
                format!("is required for kind `{kind}`"),
            ));
        }
        (_, Some(url)) => reqwest::Url::parse(url)
            .map_err(|e| Invalid::new(field("base_url"), format!("is not a URL: {e}")))?,
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Invalid::new(
            field("base_url"),
            "must be an http or https URL",
        ));
    }
    if provider.h2c && url.scheme() != "http" {
        return Err(Invalid::new(
            field("h2c"),
            "needs an http:// base_url (over https, HTTP/2 is negotiated)",
        ));
    }
    Ok(())
}

/// Check the fields only `bedrock` uses: its region is required and theirs alone, and it takes
/// no API key.
fn validate_aws(provider: &ProviderConfig, field: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
    let kind = provider.kind.name();
    if provider.kind != ProviderKind::Bedrock {
        for (name, value) in [
            ("region", &provider.region),
            ("aws_profile", &provider.aws_profile),
        ] {
            if value.is_some() {
                return Err(Invalid::new(
                    field(name),
                    format!("is only used by kind `bedrock`, not `{kind}`"),
                ));
            }
        }
        return Ok(());
    }
    let region = provider.region.as_deref().unwrap_or_default();
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Invalid::new(
            field("region"),
            "is required for kind `bedrock`: an AWS region such as `us-east-1`",
        ));
    }
    if provider.aws_profile.as_deref() == Some("") {
        return Err(Invalid::new(field("aws_profile"), "must name a profile"));
    }
    if provider.api_key_env.is_some() {
        return Err(Invalid::new(
            field("api_key_env"),
            "is not used by kind `bedrock`: it signs requests with AWS credentials from the standard chain",
        ));
    }
    Ok(())
}

/// Check the catalog against the provider names and return the model ids.
pub(super) fn validate_models<'a>(
    models: &'a [ModelConfig],
    providers: &HashSet<&str>,
) -> Result<HashSet<&'a str>, Invalid> {
    if models.is_empty() {
        return Err(Invalid::new(
            "models",
            "the catalog needs at least one model",
        ));
    }
    let mut ids = HashSet::new();
    for (i, model) in models.iter().enumerate() {
        let field = |name: &str| format!("models[{i}].{name}");
        if model.id.trim().is_empty() {
            return Err(Invalid::new(field("id"), "must not be empty"));
        }
        if !ids.insert(model.id.as_str()) {
            return Err(Invalid::new(
                field("id"),
                format!("duplicate model `{}`", model.id),
            ));
        }
        if !providers.contains(model.provider.as_str()) {
            return Err(Invalid::new(
                field("provider"),
                format!("no provider named `{}`", model.provider),
            ));
        }
        for (name, cost) in [
            ("input_cost_per_mtok", model.input_cost_per_mtok),
            ("output_cost_per_mtok", model.output_cost_per_mtok),
        ] {
            if !cost.is_finite() || cost < 0.0 {
                return Err(Invalid::new(
                    field(name),
                    "must be a finite number of dollars, 0 or more",
                ));
            }
        }
        if model.context_window == 0 {
            return Err(Invalid::new(
                field("context_window"),
                "must be greater than 0",
            ));
        }
    }
    Ok(ids)
}
