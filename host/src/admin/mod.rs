//! The admin API: inspect policies, upload a new version, roll back, reload the config, and the
//! metrics exposition, on a listener of its own.
//!
//! Every call must carry the admin token (`Authorization: Bearer TOKEN`, the token read from the
//! environment variable the config names); a wrong or missing token gets 401 and changes nothing.
//! Handlers only translate HTTP to the control plane's operations ([`App::upload`],
//! [`App::roll_back`], [`App::reload_config`]) and its state to JSON; errors use the same
//! OpenAI-style shape as the client API.
//!
//! | call | does |
//! |---|---|
//! | `GET /admin/policies` | every policy: live and previous version, teams, counters, events |
//! | `GET /admin/policies/NAME` | one policy |
//! | `PUT /admin/policies/NAME` | body = a component: validate, go live, save to the policy's file |
//! | `POST /admin/policies/NAME/rollback` | put the previous version back live and in the file |
//! | `POST /admin/policies/NAME/deploy` | body `{"reference": REF}`: the OCI artifact becomes the version the fleet (or, without `[state]`, this replica) runs |
//! | `PUT /admin/policies/NAME/candidate?shadow=SHARE` | body = a component, or `{"reference": REF}` as JSON: checked, then tried in the shadow of live traffic on SHARE (0-1, default 1) of the requests |
//! | `GET /admin/policies/NAME/candidate` | the candidate and its figures: agreement, confusion table, projected cost, failures, decision time |
//! | `POST /admin/policies/NAME/candidate/promote` | put the candidate live and in the file |
//! | `DELETE /admin/policies/NAME/candidate` | stop trying it; its last figures |
//! | `GET /admin/fleet` | the replicas, the version each runs per policy, the deployed versions, the last refusals |
//! | `POST /admin/reload` | re-read the config file |
//! | `GET /metrics` | Prometheus text exposition |

pub mod client;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::api::ApiError;
use crate::config::sha256;
use crate::control::{App, CandidateSource, ChangeError, Changed};
use crate::policy::candidate::{Candidate, Figures, Mode, Sticky};
use crate::policy::stats::OUTCOMES;
use crate::policy::{Policy, PolicySlot};

/// Largest component an upload may carry (JavaScript and Python policies are 12-18 MB).
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin token, kept as its SHA-256 digest.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    /// A token from its secret text; `None` when it is shorter than [`MIN_TOKEN_LEN`].
    pub fn new(secret: &str) -> Option<Self> {
        (secret.len() >= MIN_TOKEN_LEN).then(|| Self(sha256(secret.as_bytes())))
    }

    /// Does `headers` carry this token? Compares digests in constant time.
    fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let digest = sha256(presented.trim().as_bytes());
        digest
            .iter()
            .zip(&self.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[derive(Clone)]
struct Admin {
    app: Arc<App>,
    token: AdminToken,
    metrics: Option<PrometheusHandle>,
}

/// The admin routes; `metrics` renders `GET /metrics` when a recorder is installed.
pub fn router(app: Arc<App>, token: AdminToken, metrics: Option<PrometheusHandle>) -> Router {
    let admin = Admin {
        app,
        token,
        metrics,
    };
    Router::new()
        .route("/admin/policies", get(list))
        .route("/admin/policies/{name}", get(show).put(upload))
        .route("/admin/policies/{name}/rollback", post(roll_back))
        .route("/admin/policies/{name}/deploy", post(deploy))
        .route("/admin/fleet", get(fleet))
        .route(
            "/admin/policies/{name}/candidate",
            get(candidate).put(start_candidate).delete(abort_candidate),
        )
        .route(
            "/admin/policies/{name}/candidate/promote",
            post(promote_candidate),
        )
        .route("/admin/reload", post(reload))
        .route("/metrics", get(render_metrics))
        .layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(admin)
}

/// Serve the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    if admin.token.accepts(request.headers()) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid_admin_token",
        "the admin API needs `Authorization: Bearer TOKEN` with the admin token",
    )
    .into_response()
}

async fn list(State(admin): State<Admin>) -> Json<Value> {
    let snapshot = admin.app.snapshot();
    let policies: Vec<Value> = snapshot
        .policies
        .values()
        .map(|slot| describe(slot, &snapshot.teams_of(slot.name())))
        .collect();
    Json(json!({ "policies": policies }))
}

async fn show(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    let snapshot = admin.app.snapshot();
    match snapshot.policies.get(&name) {
        Some(slot) => Json(describe(slot, &snapshot.teams_of(&name))).into_response(),
        None => change_error(ChangeError::UnknownPolicy(name)),
    }
}

async fn upload(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "component_too_large",
                format!("a policy component may be at most {MAX_UPLOAD_BYTES} bytes"),
            )
            .into_response();
        }
        Err(rejection) => {
            return ApiError::invalid(None, format!("cannot read the component: {rejection}"))
                .into_response();
        }
    };
    match admin.app.upload(&name, body).await {
        Ok(uploaded) => changed("live", &name, uploaded),
        Err(e) => change_error(e),
    }
}

async fn roll_back(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    match admin.app.roll_back(&name).await {
        Ok(restored) => changed("rolled-back", &name, restored),
        Err(e) => change_error(e),
    }
}

/// The body of a deploy.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    /// `REGISTRY/REPOSITORY:TAG` or `REGISTRY/REPOSITORY@sha256:...`.
    reference: String,
}

async fn deploy(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    body: Result<Json<DeployRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            return ApiError::invalid(Some("reference"), rejection.body_text()).into_response();
        }
    };
    match admin.app.deploy(&name, &request.reference).await {
        Ok(deployed) => {
            let status = if deployed.fleet { "recorded" } else { "live" };
            Json(json!({
                "status": status,
                "policy": deployed.policy,
                "reference": deployed.reference,
                "digest": deployed.digest,
                "previous": deployed.previous,
                "persisted": deployed.unsaved.is_none(),
                "warning": deployed.unsaved.map(|e| format!("live, but not saved (a restart loads the file's version): {e}")),
            }))
            .into_response()
        }
        Err(e) => change_error(e),
    }
}

async fn fleet(State(admin): State<Admin>) -> Response {
    let snapshot = admin.app.snapshot();
    let Some(fleet) = &snapshot.fleet else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no_fleet",
            "this proxy has no `[state]`: it is not part of a fleet",
        )
        .into_response();
    };
    let names: Vec<String> = snapshot.policies.keys().cloned().collect();
    match fleet.status(&names).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => change_error(ChangeError::Fleet(e)),
    }
}

/// How a candidate is tried: `?shadow=SHARE`, or `?split=PERCENT&sticky=BY`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CandidateQuery {
    /// Share of the policy's requests the candidate decides in the shadow, 0 to 1.
    shadow: Option<f64>,
    /// Percent of the policy's requests the candidate decides and serves.
    split: Option<f64>,
    /// What keeps a user in one arm: `key` (the default), `user` or `header:NAME`.
    sticky: Option<String>,
}

impl CandidateQuery {
    /// The mode asked for; the error names the parameter.
    fn mode(self) -> Result<Mode, ApiError> {
        match (self.shadow, self.split) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                Some("split"),
                "ask for a shadow or a split, not both",
            )),
            (share, None) => {
                let sample = share.unwrap_or(1.0);
                if !(sample > 0.0 && sample <= 1.0) {
                    return Err(ApiError::invalid(
                        Some("shadow"),
                        "the shadow's share must be above 0 and at most 1",
                    ));
                }
                Ok(Mode::Shadow { sample })
            }
            (None, Some(percent)) => {
                if !(percent > 0.0 && percent <= 100.0) {
                    return Err(ApiError::invalid(
                        Some("split"),
                        "the split must be above 0 and at most 100 (percent)",
                    ));
                }
                let sticky = Sticky::try_from(self.sticky.unwrap_or_else(|| "key".into()))
                    .map_err(|e| ApiError::invalid(Some("sticky"), e))?;
                Ok(Mode::Split { percent, sticky })
            }
        }
    }
}

async fn start_candidate(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    query: Result<Query<CandidateQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mode = match query.map_err(|r| ApiError::invalid(None, r.body_text())) {
        Ok(Query(query)) => query.mode(),
        Err(e) => Err(e),
    };
    let mode = match mode {
        Ok(mode) => mode,
        Err(e) => return e.into_response(),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return ApiError::invalid(None, format!("cannot read the body: {rejection}"))
                .into_response();
        }
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let source = if json {
        match serde_json::from_slice::<DeployRequest>(&body) {
            Ok(request) => CandidateSource::Reference(request.reference),
            Err(e) => return ApiError::invalid(Some("reference"), e.to_string()).into_response(),
        }
    } else {
        CandidateSource::Component(body)
    };
    match admin.app.start_candidate(&name, source, mode).await {
        Ok(_) => candidate(State(admin), Path(name)).await,
        Err(e) => change_error(e),
    }
}

async fn candidate(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    let snapshot = admin.app.snapshot();
    let Some(slot) = snapshot.policies.get(&name) else {
        return change_error(ChangeError::UnknownPolicy(name));
    };
    let Some(candidate) = slot.candidate() else {
        return change_error(ChangeError::NoCandidate(name));
    };
    let mut status = describe_candidate(&name, &slot.live(), &candidate);
    if let (Some(fleet), Some(run)) = (&snapshot.fleet, &candidate.fleet) {
        status["fleet"] = match fleet.status(std::slice::from_ref(&name)).await {
            Ok(fleet) => fleet_figures(&fleet, &name, &run.id),
            Err(e) => json!({"error": e.to_string()}),
        };
    }
    Json(status).into_response()
}

/// The figures of the fleet's candidate run `run` of policy `name`, added up over the replicas
/// that report trying it.
fn fleet_figures(status: &crate::fleet::Status, name: &str, run: &str) -> Value {
    let figures: Vec<Figures> = status
        .replicas
        .iter()
        .filter_map(|replica| replica.report.as_ref()?.candidates.get(name))
        .filter_map(|figures| serde_json::from_value::<Figures>(figures.clone()).ok())
        .filter(|figures| figures.run.as_deref() == Some(run))
        .collect();
    let merged = Figures::merge(&figures);
    json!({
        "run": run,
        "replicas": figures.len(),
        "report": merged.as_ref().map(|f| &f.report),
        "split": merged.as_ref().and_then(|f| f.split.as_ref()),
    })
}

async fn promote_candidate(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    match admin.app.promote_candidate(&name).await {
        Ok(promoted) => changed("live", &name, promoted),
        Err(e) => change_error(e),
    }
}

async fn abort_candidate(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    let live = admin.app.snapshot().policies.get(&name).map(|s| s.live());
    match (admin.app.abort_candidate(&name).await, live) {
        (Ok(candidate), Some(live)) => {
            let mut status = describe_candidate(&name, &live, &candidate);
            status["status"] = "aborted".into();
            Json(status).into_response()
        }
        (Err(e), _) => change_error(e),
        (Ok(_), None) => change_error(ChangeError::UnknownPolicy(name)),
    }
}

/// A candidate beside `live`, with its figures, as JSON.
fn describe_candidate(name: &str, live: &Policy, candidate: &Candidate) -> Value {
    json!({
        "status": "trying",
        "policy": name,
        "live": &**live.version(),
        "candidate": &**candidate.version.version(),
        "origin": candidate.version.origin(),
        "digest": candidate.version.digest(),
        "mode": candidate.mode,
        "started_at": timestamp(candidate.started_at),
        "run": candidate.fleet.as_ref().map(|run| &run.id),
        "report": candidate.report(),
        "split": matches!(candidate.mode, Mode::Split { .. }).then(|| candidate.split_report()),
    })
}

/// The answer to an upload or rollback that put `change.version` live.
fn changed(status: &str, name: &str, change: Changed) -> Response {
    let warning = change
        .persisted
        .as_ref()
        .err()
        .map(|e| format!("live, but not saved (a restart loads the file's version): {e}"));
    Json(json!({
        "status": status,
        "policy": name,
        "version": &**change.version.version(),
        "sha256": change.version.sha256(),
        "persisted": change.persisted.is_ok(),
        "warning": warning,
    }))
    .into_response()
}

async fn reload(State(admin): State<Admin>) -> Response {
    match admin.app.reload_config("admin").await {
        Ok(summary) => {
            let policies: serde_json::Map<String, Value> = summary
                .policies
                .into_iter()
                .map(|(name, version)| (name, Value::from(&*version)))
                .collect();
            Json(json!({"status": "reloaded", "teams": summary.teams, "policies": policies}))
                .into_response()
        }
        Err(e) => change_error(e),
    }
}

async fn render_metrics(State(admin): State<Admin>) -> Response {
    admin.app.record_gauges();
    match &admin.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no_metrics",
            "no metrics recorder is installed",
        )
        .into_response(),
    }
}

fn change_error(error: ChangeError) -> Response {
    let (status, code) = match &error {
        ChangeError::UnknownPolicy(_) => (StatusCode::NOT_FOUND, "unknown_policy"),
        ChangeError::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "policy_refused"),
        ChangeError::Config(_) => (StatusCode::UNPROCESSABLE_ENTITY, "config_refused"),
        ChangeError::RestartNeeded(_) => (StatusCode::CONFLICT, "restart_needed"),
        ChangeError::NoPrevious(_) => (StatusCode::CONFLICT, "no_previous_version"),
        ChangeError::NoCandidate(_) => (StatusCode::NOT_FOUND, "no_candidate"),
        ChangeError::FleetNeedsReference(_) => (StatusCode::CONFLICT, "candidate_needs_reference"),
        ChangeError::Fetch { source, .. } if source.retryable() => {
            (StatusCode::BAD_GATEWAY, "registry_unavailable")
        }
        ChangeError::Fetch { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "artifact_refused"),
        ChangeError::Fleet(_) => (StatusCode::SERVICE_UNAVAILABLE, "state_unavailable"),
    };
    ApiError::new(status, "invalid_request_error", code, error.to_string()).into_response()
}

/// A policy slot as JSON.
fn describe(slot: &PolicySlot, teams: &[&str]) -> Value {
    let events: Vec<Value> = slot
        .events()
        .iter()
        .map(|e| {
            json!({
                "at": timestamp(e.at),
                "kind": e.kind,
                "trigger": e.trigger,
                "version": e.version,
                "message": e.message,
            })
        })
        .collect();
    json!({
        "name": &**slot.name(),
        "path": slot.config().path,
        "teams": teams,
        "live": version(&slot.live()),
        "previous": slot.previous().map(|p| version(&p)),
        "events": events,
    })
}

/// A policy version and its counters as JSON.
fn version(policy: &Policy) -> Value {
    let counts = policy.stats.counts();
    let failures: serde_json::Map<String, Value> = OUTCOMES[1..]
        .iter()
        .zip(&counts[1..])
        .map(|(kind, n)| (kind.to_string(), Value::from(*n)))
        .collect();
    json!({
        "version": &**policy.version(),
        "sha256": policy.sha256(),
        "origin": policy.origin(),
        "digest": policy.digest(),
        "loaded_at": timestamp(policy.loaded_at()),
        "decisions": counts.iter().sum::<u64>(),
        "errors": counts[1..].iter().sum::<u64>(),
        "failures": failures,
        "last_error": policy.stats.last_failure().map(|f| json!({
            "at": timestamp(f.at),
            "request_id": f.request_id,
            "message": f.message,
        })),
    })
}

fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}
