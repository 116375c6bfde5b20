//! Upstream providers: turning a validated route into one answer for the client.
//!
//! [`Upstreams`] is built from each config (providers with their wire format, each model's URL,
//! the pooled HTTP clients: one shared, and one per provider that speaks HTTP/2 without TLS) and
//! then only read, but for the live health it learns from attempts (`health`),
//! which outlives config reloads. [`Upstreams::serve`] walks a route's targets in order
//! (`attempt`) within the request's deadline: a target whose circuit breaker is open is skipped;
//! one that fails in a way that may pass is tried again while the retry budget (`retry`) allows;
//! and one that fails before any byte reaches the client (connection error, timeout, 429, 5xx, an
//! upstream auth failure) hands over to the next, so the client sees one answer or one error listing what each attempt met.
//! This layer reads the parsed request and the route; it never sees policies or client keys.

mod attempt;
pub mod bedrock;
pub mod count;
mod dialect;
mod echo;
mod gemini;
pub mod health;
mod provider;
pub mod retrieve;
pub mod retry;
pub mod stream;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use attempt::{Attempt, AttemptError, Served, UpstreamError};
pub use dialect::Dialect;
pub use health::HealthBoard;
pub use provider::{Endpoint, Provider, SetupError};
use retry::{RetryBudget, RetryPolicy};
pub use stream::Keep;
pub use usage::{Prices, Usage};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, Env};
use crate::label::Label;

/// Where one catalog model is served.
#[derive(Debug)]
struct ModelRoute {
    /// The catalog model's id.
    model: Label,
    provider: Arc<Provider>,
    upstream_model: String,
    /// Where its requests go; `None` for an in-process provider.
    url: Option<reqwest::Url>,
    /// Where its streamed requests go, when not to `url` (Bedrock's ConverseStream).
    stream_url: Option<reqwest::Url>,
    /// Where its Responses API requests go, when its provider serves that API itself.
    responses_url: Option<reqwest::Url>,
    prices: Prices,
}

/// The providers and the model map, shared by all requests.
#[derive(Debug)]
pub struct Upstreams {
    routes: foldhash::HashMap<String, ModelRoute>,
    attempt_timeout: Duration,
    /// Time all attempts of one request may take together.
    request_timeout: Duration,
    /// Retries of a failed target, shared by all requests.
    retries: RetryBudget,
    /// Longest quiet time within a streamed answer.
    stream_idle: Duration,
    /// What attempts taught about each model.
    pub health: HealthBoard,
    /// Cancelled at the drain deadline to end every running stream ([`Upstreams::cut_streams`]);
    /// one token for the life of the process, carried over by reloads.
    streams_cut: CancellationToken,
}

impl Upstreams {
    /// Set up every provider of `config`, reading API keys through `env`; the health of models
    /// that `old` served carries over.
    pub fn from_config(
        config: &Config,
        env: &dyn Env,
        old: Option<&Upstreams>,
    ) -> Result<Self, SetupError> {
        let connect_timeout = Duration::from_millis(config.upstream.connect_timeout_ms);
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| SetupError::Invalid {
                provider: "*".into(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let providers = config
            .providers
            .iter()
            .map(|p| {
                let old = old.and_then(|o| {
                    o.routes
                        .values()
                        .find(|r| r.provider.name == p.name.as_str())
                        .map(|r| &*r.provider)
                });
                let provider = Provider::from_config(p, env, &client, connect_timeout, old)?;
                Ok((p.name.clone(), Arc::new(provider)))
            })
            .collect::<Result<HashMap<_, _>, SetupError>>()?;
        let mut routes =
            foldhash::HashMap::with_capacity_and_hasher(config.models.len(), Default::default());
        for m in &config.models {
            let Some(provider) = providers.get(&m.provider) else {
                continue;
            };
            let route = ModelRoute {
                url: provider.url(m.upstream_model(), m.kind)?,
                stream_url: provider.stream_url(m.upstream_model())?,
                responses_url: provider.responses_url()?,
                model: Label::new(&m.id),
                provider: provider.clone(),
                upstream_model: m.upstream_model().to_string(),
                prices: Prices {
                    input_per_mtok: m.input_cost_per_mtok,
                    output_per_mtok: m.output_cost_per_mtok,
                },
            };
            routes.insert(m.id.clone(), route);
        }
        Ok(Self {
            routes,
            attempt_timeout: Duration::from_millis(config.upstream.attempt_timeout_ms),
            request_timeout: Duration::from_millis(config.upstream.request_timeout_ms),
            retries: RetryBudget::new(
                RetryPolicy {
                    retries: config.upstream.retries,
                    ratio: config.upstream.retry_budget_percent / 100.0,
                    min_per_second: config.upstream.retry_budget_min_per_second,
                },
                Instant::now(),
            ),
            stream_idle: Duration::from_millis(config.upstream.stream_idle_timeout_ms),
            health: HealthBoard::new(config, old.map(|o| &o.health)),
            streams_cut: old.map(|o| o.streams_cut.clone()).unwrap_or_default(),
        })
    }

    /// End every stream still running, now: each sends its client an error event in the
    /// client's API and ends, its line logged `drained`. For the drain deadline.
    pub fn cut_streams(&self) {
        self.streams_cut.cancel();
    }
}
