//! Attempts: trying a route's targets in order until one answers.
//!
//! All attempts of a request share its deadline. A target whose circuit breaker is open is
//! skipped without an attempt. A failure that may pass (a broken connection, 502, 503, ...) is
//! tried again on the same target, up to `retries` times while the retry budget allows. Then the
//! route fails over to the next target, as long as nothing has reached the client yet and another
//! provider might do better: after a connection error, the attempt's timeout, 401/403 (the
//! upstream refused our key), 408, 429 or any 5xx. Any other upstream answer, success or client
//! error, is the answer. Every attempt is reported to the model's health (see `health`), with
//! the `Retry-After` of a 429 or 503.
//!
//! A non-streaming answer is read whole before it is committed, so a body cut off mid-way also
//! fails over, and its usage is read. A streaming answer is committed at its response head; its
//! events pass through as they arrive (see `stream`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tracing::Instrument;

use super::dialect::Dialect;
use super::echo;
use super::health::{Outcome, StreamWatch};
use super::provider::{Endpoint, HttpEndpoint};
use super::stream::{self, Keep, StreamContext, StreamSummary, UsageEvent};
use super::usage::{Prices, Usage};
use super::{ModelRoute, Upstreams};
use crate::api::translate::{self, MadeResponse, ResponseFrame};
use crate::api::{ApiError, ClientRequest, Operation, Wire};
use crate::label::Label;
use crate::policy::PlannedTarget;
use crate::telemetry::otel;

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("connection failed ({0})")]
    Connect(String),
    #[error("request failed ({0})")]
    Transport(String),
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("answered {}{}", .status.as_u16(), retry_note(*.retry_after))]
    Status {
        status: StatusCode,
        /// The pause the upstream asked for (`Retry-After` on a 429 or 503).
        retry_after: Option<Duration>,
    },
    #[error("skipped: its circuit breaker is open")]
    BreakerOpen {
        /// How long until the breaker lets an attempt through; `None` while its one probe is
        /// out.
        retry_in: Option<Duration>,
    },
    #[error("skipped: its provider has its most requests in flight")]
    Saturated,
    #[error("not tried: the request's time was up")]
    NoTimeLeft,
    #[error("answer was cut off ({0})")]
    Body(String),
    #[error("answer could not be translated ({0})")]
    BadAnswer(String),
    #[error("request cannot be sent to it: {}", .0.message)]
    Untranslatable(ApiError),
    #[error("request could not be signed ({0})")]
    Auth(String),
    #[error("model has no provider")]
    Unrouted,
}

fn retry_note(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {} s)", d.as_secs()))
        .unwrap_or_default()
}

impl AttemptError {
    /// A stable name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Transport(_) => "transport",
            Self::Timeout(_) => "timeout",
            Self::Status { .. } => "status",
            Self::BreakerOpen { .. } => "breaker-open",
            Self::Saturated => "saturated",
            Self::NoTimeLeft => "no-time-left",
            Self::Body(_) => "cut",
            Self::BadAnswer(_) => "bad-answer",
            Self::Untranslatable(_) => "untranslatable",
            Self::Auth(_) => "auth",
            Self::Unrouted => "unrouted",
        }
    }

    /// For a target skipped without an attempt (its breaker open, its provider full): how
    /// long until it may be tried.
    fn skipped(&self) -> Option<Duration> {
        match self {
            Self::BreakerOpen { retry_in } => Some(retry_in.unwrap_or(Duration::from_secs(1))),
            Self::Saturated => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// How this failure counts for the model's health; `None` when no attempt was made.
    fn outcome(&self) -> Option<Outcome> {
        match self {
            Self::Unrouted
            | Self::BreakerOpen { .. }
            | Self::Saturated
            | Self::NoTimeLeft
            | Self::Untranslatable(_)
            | Self::Auth(_) => None,
            Self::Status { retry_after, .. } => Some(Outcome::Failed {
                retry_after: *retry_after,
            }),
            Self::Connect(_)
            | Self::Transport(_)
            | Self::Timeout(_)
            | Self::Body(_)
            | Self::BadAnswer(_) => Some(Outcome::Failed { retry_after: None }),
        }
    }

    /// Whether trying the same target again may work: a connection or transport failure, a
    /// broken answer, or 408, 429 (without `Retry-After`), 500, 502, 503 or 504. Not a timeout,
    /// which would spend the time again, nor a refused key.
    fn may_pass(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Transport(_) | Self::Body(_) => true,
            Self::Status {
                status,
                retry_after: None,
            } => matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Classify a client error; its innermost cause is kept (it names no URL).
    pub(super) fn from_transport(error: &reqwest::Error, timeout: Duration) -> Self {
        let mut cause: &dyn std::error::Error = error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        if error.is_connect() {
            Self::Connect(cause.to_string())
        } else if error.is_timeout() {
            Self::Timeout(timeout)
        } else {
            Self::Transport(cause.to_string())
        }
    }
}

/// What one attempt met.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub model: Label,
    pub result: Result<StatusCode, AttemptError>,
    pub elapsed: Duration,
}

/// The answer chosen for the client.
#[derive(Debug)]
pub struct Served {
    /// The catalog model that answered.
    pub model: Label,
    pub provider: Label,
    pub status: StatusCode,
    pub content_type: HeaderValue,
    pub body: Body,
    pub attempts: Vec<Attempt>,
    /// Tokens the answer reports using, for answers read whole.
    pub usage: Option<Usage>,
    /// For a stream: its summary, sent when it ends (usage included).
    pub stream_end: Option<oneshot::Receiver<StreamSummary>>,
    /// The answering model's prices.
    pub prices: Prices,
}

impl Served {
    /// The client's answer from `answer`, made along `route` after `attempts`.
    fn new(answer: Answer, route: &ModelRoute, attempts: Vec<Attempt>) -> Self {
        Self {
            model: route.model.clone(),
            provider: route.provider.name.clone(),
            status: answer.status,
            content_type: answer.content_type,
            body: answer.body,
            attempts,
            usage: answer.usage,
            stream_end: answer.stream_end,
            prices: route.prices,
        }
    }
}

/// Every target failed; nothing was sent to the client.
#[derive(Debug, thiserror::Error)]
#[error("{}", summary(.attempts))]
pub struct UpstreamError {
    pub attempts: Vec<Attempt>,
}

impl UpstreamError {
    /// The client's error when no target could take the request as it is: every target speaks
    /// the other API, and the request uses what that API cannot express.
    pub fn untranslatable(&self) -> Option<&ApiError> {
        let mut errors = self.attempts.iter().map(|a| match &a.result {
            Err(AttemptError::Untranslatable(e)) => Some(e),
            _ => None,
        });
        let first = errors.next()??;
        errors.all(|e| e.is_some()).then_some(first)
    }

    /// The status that tells the client the truth about the failure: 503 when every target was
    /// skipped (its breaker open, or its provider at its concurrency limit), 504 when every
    /// attempt timed out (or found the request's time up), 429 when the last attempt made was
    /// answered 429 and 503 when it was answered 503 with a `Retry-After` (the upstream asks the
    /// client to wait), else 502.
    pub fn status(&self) -> StatusCode {
        let all = |f: fn(&AttemptError) -> bool| {
            self.attempts
                .iter()
                .all(|a| a.result.as_ref().is_err_and(f))
        };
        if all(|e| e.skipped().is_some()) {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        if all(|e| matches!(e, AttemptError::Timeout(_) | AttemptError::NoTimeLeft)) {
            return StatusCode::GATEWAY_TIMEOUT;
        }
        let last_made = self.attempts.iter().rev().find_map(|a| match &a.result {
            Err(e) if e.outcome().is_some() => Some(e),
            _ => None,
        });
        match last_made {
            Some(AttemptError::Status { status, .. })
                if *status == StatusCode::TOO_MANY_REQUESTS =>
            {
                StatusCode::TOO_MANY_REQUESTS
            }
            Some(AttemptError::Status {
                status,
                retry_after: Some(_),
            }) if *status == StatusCode::SERVICE_UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// When a target can next be tried, for a 503 or 429: the soonest a skipped target's
    /// breaker lets an attempt through (a second for a full provider) when every target was
    /// skipped, else the longest `Retry-After` an upstream asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        let errors = || self.attempts.iter().filter_map(|a| a.result.as_ref().err());
        match self.status() {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                let soonest_skip = errors().filter_map(AttemptError::skipped).min();
                let longest_asked = errors()
                    .filter_map(|e| match e {
                        AttemptError::Status { retry_after, .. } => *retry_after,
                        _ => None,
                    })
                    .max();
                if errors().all(|e| e.skipped().is_some()) {
                    soonest_skip
                } else {
                    longest_asked
                }
            }
            _ => None,
        }
    }
}

fn summary(attempts: &[Attempt]) -> String {
    let parts: Vec<String> = attempts
        .iter()
        .map(|a| match &a.result {
            Err(e) => format!("{}: {e}", a.model),
            Ok(s) => format!("{}: answered {}", a.model, s.as_u16()),
        })
        .collect();
    format!(
        "all {} upstream attempt(s) failed ({})",
        attempts.len(),
        parts.join("; ")
    )
}

fn fails_over(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        )
}

/// What one attempt sends.
struct Outgoing {
    /// The request in the provider's API (translated when the client spoke another), and that
    /// API; `None` for the in-process provider.
    body: Option<(Bytes, Wire)>,
    timeout: Duration,
    /// Holds the attempt in flight: until the answer is read whole, or with a stream until it
    /// ends.
    watch: StreamWatch,
    /// The provider's concurrency permit, held as long as `watch`.
    slot: Option<OwnedSemaphorePermit>,
}

struct Answer {
    status: StatusCode,
    content_type: HeaderValue,
    body: Body,
    usage: Option<Usage>,
    stream_end: Option<oneshot::Receiver<StreamSummary>>,
    /// A stream that tells the model's health how it ended.
    watched: bool,
    /// For a Responses client's answer read whole, the response it made.
    made: Option<MadeResponse>,
}

/// What every attempt of one request shares.
struct Request<'a> {
    req: &'a ClientRequest,
    id: &'a Arc<str>,
    /// For a Responses client, the response its answer makes when a translation makes it
    /// (made the first time one needs it), and what keeps it (taken by the attempt that
    /// answers).
    frame: OnceLock<Option<ResponseFrame>>,
    keep: Mutex<Option<Keep>>,
}

impl Request<'_> {
    fn frame(&self) -> Option<&ResponseFrame> {
        self.frame
            .get_or_init(|| self.req.response_frame())
            .as_ref()
    }

    fn take_keep(&self) -> Option<Keep> {
        self.keep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl Upstreams {
    /// Serve `req` from the first of `targets` that answers, within the request's deadline. The
    /// response a Responses request's answer makes is handed to `keep` before the client hears
    /// it is complete.
    pub async fn serve(
        &self,
        targets: &[PlannedTarget],
        req: &ClientRequest,
        request_id: &Arc<str>,
        keep: Option<Keep>,
    ) -> Result<Served, UpstreamError> {
        let deadline = Instant::now() + self.request_timeout;
        self.retries.deposit();
        let request = Request {
            req,
            id: request_id,
            frame: OnceLock::new(),
            keep: Mutex::new(keep),
        };
        let mut attempts = Vec::with_capacity(targets.len());
        for target in targets {
            let route = self.routes.get(&target.model);
            // The catalog's label for the model, or, for a model with no route, its name.
            let model = route.map_or_else(|| Label::new(&target.model), |r| r.model.clone());
            let mut retries = 0;
            loop {
                let started = Instant::now();
                let result = self
                    .traced_try(route, target, &request, deadline, retries)
                    .await;
                let attempt = |result| Attempt {
                    model: model.clone(),
                    result,
                    elapsed: started.elapsed(),
                };
                let error = match result {
                    Ok((mut answer, route)) => {
                        attempts.push(attempt(Ok(answer.status)));
                        if let (Some(made), Some(keep)) = (answer.made.take(), request.take_keep())
                        {
                            keep(made, target.model.clone()).await;
                        }
                        return Ok(Served::new(answer, route, attempts));
                    }
                    Err(error) => error,
                };
                tracing::debug!(request_id = %request_id, model = %target.model, %error, "upstream attempt failed");
                let again = error.may_pass()
                    && retries < self.retries.policy().retries
                    && self.retries.withdraw(Instant::now());
                attempts.push(attempt(Err(error)));
                if !again {
                    break;
                }
                retries += 1;
            }
        }
        Err(UpstreamError { attempts })
    }

    /// One attempt at `target` within what is left before `deadline`, in a span of its own
    /// that says how it ended.
    async fn traced_try<'s>(
        &'s self,
        route: Option<&'s ModelRoute>,
        target: &PlannedTarget,
        request: &Request<'_>,
        deadline: Instant,
        retry: u32,
    ) -> Result<(Answer, &'s ModelRoute), AttemptError> {
        let started = Instant::now();
        let span = tracing::info_span!(
            target: otel::TARGET,
            "upstream.attempt",
            model = %target.model,
            retry,
            result = tracing::field::Empty,
        );
        let result = match deadline.checked_duration_since(started) {
            Some(left) if !left.is_zero() => {
                self.try_target(route, target, request, left, started)
                    .instrument(span.clone())
                    .await
            }
            _ => Err(AttemptError::NoTimeLeft),
        };
        match &result {
            Ok((answer, ..)) => span.record("result", answer.status.as_u16()),
            Err(error) => span.record("result", error.kind()),
        };
        result
    }

    /// One attempt at `target` along its `route`, if its breaker admits it, taking at most
    /// `left`; the model's health learns from it.
    async fn try_target<'s>(
        &'s self,
        route: Option<&'s ModelRoute>,
        target: &PlannedTarget,
        request: &Request<'_>,
        left: Duration,
        started: Instant,
    ) -> Result<(Answer, &'s ModelRoute), AttemptError> {
        let req = request.req;
        let (Some(route), Some(health)) = (route, self.health.model(&target.model)) else {
            return Err(AttemptError::Unrouted);
        };
        // The body first: a request this provider cannot take is no attempt at the model.
        let body = match &route.provider.endpoint {
            Endpoint::Http(http) => {
                let (body, wire) = outgoing_body(http, route, target, req)
                    .map_err(AttemptError::Untranslatable)?;
                Some((body, wire))
            }
            Endpoint::Echo => None,
        };
        let slot = match &route.provider.slots {
            Some(slots) => Some(
                slots
                    .permits
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| AttemptError::Saturated)?,
            ),
            None => None,
        };
        let in_flight = health
            .admit(started)
            .map_err(|until| AttemptError::BreakerOpen {
                retry_in: until.map(|until| until.saturating_duration_since(started)),
            })?;
        let timeout = target.timeout.unwrap_or(self.attempt_timeout).min(left);
        let outgoing = Outgoing {
            body,
            timeout,
            watch: StreamWatch::new(in_flight, *self.health.settings(), started),
            slot,
        };
        let result = self.attempt(route, target, request, outgoing).await;
        let outcome = match &result {
            // A watched stream's outcome is recorded when it ends.
            Ok(answer) if answer.watched => None,
            Ok(_) => Some(Outcome::Answered {
                latency: started.elapsed(),
            }),
            Err(error) => error.outcome(),
        };
        if let Some(outcome) = outcome {
            health.record(Instant::now(), outcome, self.health.settings());
        }
        result.map(|answer| (answer, route))
    }

    /// How a stream of `target` in `upstream`'s API is watched (by `watch`, for the model's
    /// health) and translated for this request's client, and where its summary will go.
    fn stream_context(
        &self,
        target: &PlannedTarget,
        request: &Request<'_>,
        upstream: Wire,
        watch: Option<StreamWatch>,
    ) -> (StreamContext, oneshot::Receiver<StreamSummary>) {
        let req = request.req;
        let (summary, end) = oneshot::channel();
        let usage_event = if req.asks_stream_usage() {
            UsageEvent::Take
        } else {
            UsageEvent::Pass
        };
        let context = StreamContext {
            request_id: request.id.clone(),
            model: target.model.clone(),
            idle: self.stream_idle,
            usage_event,
            upstream,
            client: req.api,
            client_usage: req.stream_usage == Some(true),
            frame: match upstream {
                Wire::Responses => None,
                _ => request.frame().cloned(),
            },
            // Only a stream keeps its response itself; an answer read whole is kept by `serve`.
            keep: req.stream.then(|| request.take_keep()).flatten(),
            watch,
            slot: None,
            summary,
            cut: self.streams_cut.clone(),
        };
        (context, end)
    }

    /// One exchange with `route`'s provider: the outgoing body goes out, and the answer comes
    /// back in the client's API.
    async fn attempt(
        &self,
        route: &ModelRoute,
        target: &PlannedTarget,
        request: &Request<'_>,
        outgoing: Outgoing,
    ) -> Result<Answer, AttemptError> {
        let req = request.req;
        let Outgoing {
            body,
            timeout,
            mut watch,
            slot,
        } = outgoing;
        let (http, body, wire) = match (&route.provider.endpoint, body) {
            (Endpoint::Http(http), Some((body, wire))) => (http, body, wire),
            _ => {
                let (mut context, end) = self.stream_context(target, request, Wire::Openai, None);
                context.slot = slot;
                return echo_answer(&route.upstream_model, request, (context, end));
            }
        };
        let url = match wire {
            Wire::Responses => route.responses_url.as_ref(),
            _ if req.stream => route.stream_url.as_ref().or(route.url.as_ref()),
            _ => route.url.as_ref(),
        }
        .ok_or(AttemptError::Unrouted)?;
        let mut headers = http.headers.clone();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let dialect = http
            .dialect
            .as_ref()
            .map(|d| (d, route.upstream_model.as_str()));
        let exchange = async {
            if let Some((dialect, _)) = dialect {
                dialect.authorize(url, &mut headers, &body).await?;
            }
            let response = http
                .client
                .post(url.clone())
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|e| AttemptError::from_transport(&e, timeout))?;
            if let Some(error) = failover_error(&response) {
                return Err(error);
            }
            if req.stream && response.status().is_success() {
                watch.head(Instant::now());
                let (mut context, end) = self.stream_context(target, request, wire, Some(watch));
                context.slot = slot;
                return Ok(match dialect {
                    Some((dialect, model)) => {
                        streamed_dialect(response, dialect, model, context, end)
                    }
                    None => streamed(response, context, end, wire != req.api),
                });
            }
            read_whole(response, wire, request, timeout, dialect).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(AttemptError::Timeout(timeout)))
    }
}

/// The body `req` goes to `http` in, for `route`'s model, and the API it is in as far as the
/// rest of the attempt knows: the client's body (translated when the provider speaks the other
/// API), then in the provider's own API when it is reached by way of Messages; embeddings for
/// such a provider go straight into its API and come back as OpenAI's.
fn outgoing_body(
    http: &HttpEndpoint,
    route: &ModelRoute,
    target: &PlannedTarget,
    req: &ClientRequest,
) -> Result<(Bytes, Wire), ApiError> {
    let model = &route.upstream_model;
    match &http.dialect {
        Some(dialect) if req.operation == Operation::Embeddings => {
            let body = req.body_for(Wire::Openai, model, None)?;
            Ok((dialect.embeddings_request(&body, model)?, Wire::Openai))
        }
        dialect => {
            let wire = req.upstream_wire(http.wire, route.responses_url.is_some());
            let body = req.body_for(wire, model, target.max_output_tokens)?;
            match dialect {
                Some(dialect) => Ok((dialect.request(&body)?, wire)),
                None => Ok((body, wire)),
            }
        }
    }
}

/// The failure of an answer whose status fails over to the next target (with the `Retry-After`
/// of a 429 or 503); `None` for an answer to pass on.
fn failover_error(response: &reqwest::Response) -> Option<AttemptError> {
    let status = response.status();
    if !fails_over(status) {
        return None;
    }
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            retry_after(response.headers())
        }
        _ => None,
    };
    Some(AttemptError::Status {
        status,
        retry_after,
    })
}

/// A streamed answer, committed at its head: its events pass through [`stream::guarded`],
/// translated into the client's API when `translated`.
fn streamed(
    response: reqwest::Response,
    context: StreamContext,
    end: oneshot::Receiver<StreamSummary>,
    translated: bool,
) -> Answer {
    let content_type = if translated {
        HeaderValue::from_static("text/event-stream")
    } else {
        content_type(&response)
    };
    Answer {
        status: response.status(),
        content_type,
        body: Body::from_stream(stream::guarded(response.bytes_stream(), context)),
        usage: None,
        stream_end: Some(end),
        watched: true,
        made: None,
    }
}

/// A streamed answer of a provider reached by way of Messages (Bedrock, Gemini) from `model`,
/// committed at its head: its body is translated into Anthropic Messages events, which pass
/// through [`stream::guarded`] as an Anthropic stream's do.
fn streamed_dialect(
    response: reqwest::Response,
    dialect: &Dialect,
    model: &str,
    context: StreamContext,
    end: oneshot::Receiver<StreamSummary>,
) -> Answer {
    let status = response.status();
    let events = dialect.events(response, model);
    Answer {
        status,
        content_type: HeaderValue::from_static("text/event-stream"),
        body: Body::from_stream(stream::guarded(events, context)),
        usage: None,
        stream_end: Some(end),
        watched: true,
        made: None,
    }
}

/// An answer read whole (a body cut off mid-way is a failed attempt), with its usage, in the
/// client's API: translated from the upstream's when they differ (first into Messages, when a
/// `dialect` provider's model answered). For a Responses client, the response it made comes
/// with it.
async fn read_whole(
    response: reqwest::Response,
    upstream: Wire,
    request: &Request<'_>,
    timeout: Duration,
    dialect: Option<(&Dialect, &str)>,
) -> Result<Answer, AttemptError> {
    let client = request.req.api;
    let (status, mut content_type, bytes) = read_body(response, request, timeout, dialect).await?;
    let (usage, native_id) = if status.is_success() && upstream == Wire::Responses {
        responses_answer(&bytes)
    } else {
        (Usage::from_completion(&bytes), None)
    };
    let mut made = None;
    let bytes = if !status.is_success() {
        if upstream != client {
            content_type = HeaderValue::from_static("application/json");
            translate::error_body(client, status, &bytes).into()
        } else {
            bytes
        }
    } else if upstream == Wire::Responses {
        made = native_id.map(MadeResponse::Native);
        bytes
    } else if let Some(frame) = request.frame() {
        let response = translate::response_answer(upstream, &bytes, frame)
            .map_err(AttemptError::BadAnswer)?
            .ok_or_else(|| AttemptError::BadAnswer("a chat answer was expected".into()))?;
        content_type = HeaderValue::from_static("application/json");
        let bytes = Bytes::from(response.to_string());
        made = Some(MadeResponse::Translated(response));
        bytes
    } else if upstream != client {
        content_type = HeaderValue::from_static("application/json");
        translate::answer(upstream, client, &bytes)
            .map_err(AttemptError::BadAnswer)?
            .into()
    } else {
        bytes
    };
    Ok(Answer {
        status,
        content_type,
        body: Body::from(bytes),
        usage,
        stream_end: None,
        watched: false,
        made,
    })
}

/// The status, content type and body of an answer, read whole within `timeout`; a provider's
/// dialect makes its answer a chat one.
async fn read_body(
    response: reqwest::Response,
    request: &Request<'_>,
    timeout: Duration,
    dialect: Option<(&Dialect, &str)>,
) -> Result<(StatusCode, HeaderValue, Bytes), AttemptError> {
    let status = response.status();
    let content_type = content_type(&response);
    let head = dialect.map(|(dialect, _)| dialect.head(response.headers()));
    let bytes =
        response
            .bytes()
            .await
            .map_err(|e| match AttemptError::from_transport(&e, timeout) {
                AttemptError::Transport(cause) | AttemptError::Connect(cause) => {
                    AttemptError::Body(cause)
                }
                other => other,
            })?;
    match (dialect, head) {
        (Some((dialect, model)), Some(head)) => Ok((
            status,
            HeaderValue::from_static("application/json"),
            dialect.answer(status, &head, &bytes, model, request.req)?,
        )),
        _ => Ok((status, content_type, bytes)),
    }
}

/// The usage and the `id` of a Responses API answer, read in one pass.
fn responses_answer(body: &[u8]) -> (Option<Usage>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Response {
        id: Option<String>,
        usage: Option<Usage>,
    }
    serde_json::from_slice::<Response>(body).map_or((None, None), |r| (r.usage, r.id))
}

/// The answer's content type, JSON when it names none.
fn content_type(response: &reqwest::Response) -> HeaderValue {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"))
}

/// The pause a `Retry-After` header asks for: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    at.duration_since(std::time::SystemTime::now()).ok()
}

/// The `echo` provider's answer, in the client's API.
fn echo_answer(
    model: &str,
    request: &Request<'_>,
    (context, end): (StreamContext, oneshot::Receiver<StreamSummary>),
) -> Result<Answer, AttemptError> {
    let req = request.req;
    let json = |body: Bytes, made| Answer {
        status: StatusCode::OK,
        content_type: HeaderValue::from_static("application/json"),
        usage: Usage::from_completion(&body),
        body: Body::from(body),
        stream_end: None,
        watched: false,
        made,
    };
    if req.operation == Operation::Embeddings {
        return Ok(json(echo::embeddings(model, req), None));
    }
    if req.stream {
        let events = echo::stream_events(model, req, &context.request_id);
        let events = futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
        return Ok(Answer {
            status: StatusCode::OK,
            content_type: HeaderValue::from_static("text/event-stream"),
            body: Body::from_stream(stream::guarded(events, context)),
            usage: None,
            stream_end: Some(end),
            watched: false,
            made: None,
        });
    }
    let completion = echo::completion(model, req, &context.request_id);
    let usage = Usage::from_completion(&completion);
    let (body, made) = match request.frame() {
        Some(frame) => {
            let response = translate::response_answer(Wire::Openai, &completion, frame)
                .map_err(AttemptError::BadAnswer)?
                .ok_or_else(|| AttemptError::BadAnswer("echo answers in chat".into()))?;
            let body = Bytes::from(response.to_string());
            (body, Some(MadeResponse::Translated(response)))
        }
        None => (
            translate::answer(Wire::Openai, req.api, &completion)
                .map_err(AttemptError::BadAnswer)?
                .into(),
            None,
        ),
    };
    Ok(Answer {
        usage,
        ..json(body, made)
    })
}
