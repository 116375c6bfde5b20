//! Policy rollouts across the fleet, as Redis keeps them: the version each policy should run,
//! the stream that announces every deploy, and what each replica reports it runs.
//!
//! A deploy sets `{prefix}:{rollout}:policy:NAME` (the [`Desired`] version, with the one it
//! replaced) and appends to the stream `{prefix}:{rollout}:deploys` in one transaction; the
//! keys share the hash tag `{rollout}`, so a Redis Cluster takes them in one slot. Replicas
//! block on the stream ([`Fleet::next_deploy`], on a connection of their own so the blocking
//! read holds up nothing else) and compare the desired versions with their own; the desired key,
//! not the stream, is the truth, so a replica that missed events catches up at its next check.
//! The fleet's candidate of a policy, a run every replica tries, is kept under
//! `{prefix}:{rollout}:candidate:NAME` and announced on the same stream; its split share only
//! rises, and it ends only as the run it is (small scripts check the run's id). Each replica
//! writes a [`Report`] of what it runs, and of the candidates it tries, under
//! `{prefix}:replica:ID` at each check; it expires once the replica has missed two. This module touches only Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::streams::StreamReadReply;
use serde::{Deserialize, Serialize};

use super::{DATA_TIMEOUT, Fleet, FleetError, LIVE_FOR};

/// Deploys the stream keeps (approximately; older entries are trimmed).
const STREAM_KEPT: usize = 1000;

/// The version a policy should run on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The reference deployed, pinned to its digest: `REGISTRY/REPOSITORY@sha256:...`.
    pub reference: String,
    /// The manifest digest, `sha256:...`.
    pub digest: String,
    /// The pinned reference it replaced, if any: deploy it to roll back.
    pub previous: Option<String>,
    /// When it was deployed, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The replica whose admin API recorded it.
    pub by: String,
}

/// One policy as a replica runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePolicy {
    /// `NAME@` and the first 12 hex digits of the component's SHA-256.
    pub version: String,
    /// The OCI digest it was pulled as, if it came from a registry.
    pub digest: Option<String>,
}

/// A deploy a replica did not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub policy: String,
    pub digest: String,
    pub reason: String,
    /// Whether the replica tries it again at its next check (the registry could not be reached).
    pub retrying: bool,
    pub at_ms: u64,
}

/// What a replica says it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub replica: String,
    /// Each policy's live version, by name.
    pub policies: BTreeMap<String, LivePolicy>,
    /// The last deploy this replica refused, if any.
    pub last_refusal: Option<Refusal>,
    /// Per policy, the figures of the fleet's candidate as this replica tried it (the candidate
    /// module's status, as JSON).
    #[serde(default)]
    pub candidates: BTreeMap<String, serde_json::Value>,
}

/// A candidate version the whole fleet tries beside a policy's live one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetCandidate {
    /// This candidate run's id: a new one for every start, so a restart of the same digest is a
    /// new run.
    pub id: String,
    /// The reference, pinned to its digest.
    pub reference: String,
    pub digest: String,
    /// How it is tried (the candidate module's mode, as JSON).
    pub mode: serde_json::Value,
    /// The replica whose admin API started it.
    pub by: String,
}

/// Set the split share of the fleet's candidate to `ARGV[2]` percent, only if it is still the
/// run `ARGV[1]` and the share is larger than it was (steps only go up).
const STEP_CANDIDATE: &str = r#"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local candidate = cjson.decode(current)
local percent = tonumber(ARGV[2])
if candidate.id ~= ARGV[1] or candidate.mode.percent == nil or candidate.mode.percent >= percent then
  return 0
end
candidate.mode.percent = percent
redis.call('SET', KEYS[1], cjson.encode(candidate))
return 1
"#;

/// Delete the fleet's candidate only if it is still the run `ARGV[1]`.
const END_CANDIDATE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).id == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'candidate', ARGV[3], 'ended', ARGV[1])
  return 1
end
return 0
"#;

/// One replica as the fleet sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub replica: String,
    /// Its last heartbeat, in milliseconds since the Unix epoch (Redis's clock).
    pub heartbeat_ms: u64,
    /// What it last reported, if it has.
    pub report: Option<Report>,
}

/// The fleet's rollout state: what every policy should run and what each replica runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Redis's clock when this was read, in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The replica that answered.
    pub replica: String,
    pub desired: BTreeMap<String, Desired>,
    pub replicas: Vec<ReplicaStatus>,
}

impl Fleet {
    fn desired_key(&self, policy: &str) -> String {
        format!("{}:{{rollout}}:policy:{policy}", self.prefix)
    }

    fn deploys_key(&self) -> String {
        format!("{}:{{rollout}}:deploys", self.prefix)
    }

    fn candidate_key(&self, policy: &str) -> String {
        format!("{}:{{rollout}}:candidate:{policy}", self.prefix)
    }

    fn report_key(&self, replica: &str) -> String {
        format!("{}:replica:{replica}", self.prefix)
    }

    /// This replica's name in the fleet.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Record `reference` (pinned to `digest`) as the version policy `name` should run, and
    /// announce it; the version it replaces becomes its `previous`.
    pub async fn deploy(
        &self,
        name: &str,
        reference: &str,
        digest: &str,
    ) -> Result<Desired, FleetError> {
        let key = self.desired_key(name);
        let mut c = self.connection.clone();
        let (now, old): ((u64, u64), Option<String>) = self
            .data(redis::pipe().cmd("TIME").get(&key).query_async(&mut c))
            .await?;
        // Deploying the same reference again keeps what it replaced.
        let previous = old
            .and_then(|old| serde_json::from_str::<Desired>(&old).ok())
            .and_then(|old| match old.reference == reference {
                true => old.previous,
                false => Some(old.reference),
            });
        let desired = Desired {
            reference: reference.to_string(),
            digest: digest.to_string(),
            previous,
            at_ms: now.0 * 1000 + now.1 / 1000,
            by: self.replica.clone(),
        };
        let json = serde_json::to_string(&desired).expect("serializable");
        self.set_and_announce(&key, &json, [("policy", name), ("digest", digest)])
            .await?;
        Ok(desired)
    }

    /// Set `key` to `value` and announce it on the stream with `fields`, in one transaction.
    async fn set_and_announce(
        &self,
        key: &str,
        value: &str,
        fields: [(&str, &str); 2],
    ) -> Result<(), FleetError> {
        let mut c = self.connection.clone();
        let mut announce = redis::pipe();
        announce.atomic().set(key, value).ignore();
        let xadd = announce
            .cmd("XADD")
            .arg(self.deploys_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_KEPT)
            .arg("*");
        for (field, value) in fields {
            xadd.arg(field).arg(value);
        }
        xadd.ignore();
        self.data(announce.query_async::<()>(&mut c)).await
    }

    /// Make `candidate` the one the whole fleet tries beside policy `name`, and announce it.
    pub async fn start_candidate(
        &self,
        name: &str,
        candidate: &FleetCandidate,
    ) -> Result<(), FleetError> {
        let json = serde_json::to_string(candidate).expect("serializable");
        let key = self.candidate_key(name);
        self.set_and_announce(
            &key,
            &json,
            [("candidate", name), ("started", &candidate.id)],
        )
        .await
    }

    /// End the fleet's candidate run `id` of policy `name`, if it is still the current one;
    /// whether it was.
    pub async fn end_candidate(&self, name: &str, id: &str) -> Result<bool, FleetError> {
        let mut c = self.connection.clone();
        let script = redis::Script::new(END_CANDIDATE);
        let mut call = script.prepare_invoke();
        call.key(self.candidate_key(name))
            .key(self.deploys_key())
            .arg(id)
            .arg(STREAM_KEPT)
            .arg(name);
        let ended: i64 = self.data(call.invoke_async(&mut c)).await?;
        Ok(ended == 1)
    }

    /// Raise the split share of the fleet's candidate run `id` of policy `name` to `percent`;
    /// the other replicas take it at their next check.
    pub async fn step_candidate(
        &self,
        name: &str,
        id: &str,
        percent: f64,
    ) -> Result<(), FleetError> {
        let mut c = self.connection.clone();
        let script = redis::Script::new(STEP_CANDIDATE);
        let mut call = script.prepare_invoke();
        call.key(self.candidate_key(name)).arg(id).arg(percent);
        self.data(call.invoke_async::<i64>(&mut c)).await.map(drop)
    }

    /// The candidate the fleet tries beside policy `name`, if any.
    pub async fn candidate(&self, name: &str) -> Result<Option<FleetCandidate>, FleetError> {
        let Some(json) = self.get_raw(&self.candidate_key(name)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| FleetError::Data(format!("the candidate of `{name}`: {e}")))
    }

    /// The version policy `name` should run, if one was deployed.
    pub async fn desired(&self, name: &str) -> Result<Option<Desired>, FleetError> {
        let Some(json) = self.get_raw(&self.desired_key(name)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| FleetError::Data(format!("the deployed version of `{name}`: {e}")))
    }

    async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, FleetError> {
        let mut c = self.connection.clone();
        let get = redis::cmd("GET").arg(key).to_owned();
        self.data(get.query_async::<Option<Vec<u8>>>(&mut c)).await
    }

    /// Wait up to `within` for a deploy announced after stream id `after` (`0-0` for any); the
    /// id of the last one seen, or `None` when none came.
    pub async fn next_deploy(
        &self,
        after: &str,
        within: Duration,
    ) -> Result<Option<String>, FleetError> {
        let mut connection = self.watcher.lock().await;
        let c = match &mut *connection {
            Some(c) => c,
            None => {
                // No response timeout of its own: a blocking read waits on purpose.
                let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
                let made = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config);
                let made = tokio::time::timeout(DATA_TIMEOUT, made)
                    .await
                    .map_err(|_| FleetError::Timeout(DATA_TIMEOUT))?
                    .map_err(|e| FleetError::Redis(e.to_string()))?;
                connection.insert(made)
            }
        };
        let read = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(STREAM_KEPT)
            .arg("BLOCK")
            .arg(within.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(self.deploys_key())
            .arg(after)
            .to_owned();
        let read = read.query_async::<Option<StreamReadReply>>(c);
        let reply = match tokio::time::timeout(within + DATA_TIMEOUT, read).await {
            Ok(Ok(reply)) => reply,
            failed => {
                // A connection that failed or hung is made anew next time.
                *connection = None;
                return Err(match failed {
                    Ok(Err(e)) => FleetError::Redis(e.to_string()),
                    _ => FleetError::Timeout(within + DATA_TIMEOUT),
                });
            }
        };
        Ok(reply
            .and_then(|reply| reply.keys.into_iter().next())
            .and_then(|key| key.ids.into_iter().last())
            .map(|entry| entry.id))
    }

    /// Publish what this replica runs, reported again at least `every`: kept until two reports
    /// were missed and the heartbeat stopped counting.
    pub async fn report(&self, report: &Report, every: Duration) -> Result<(), FleetError> {
        let ttl = every * 2 + LIVE_FOR;
        let json = serde_json::to_vec(report).expect("serializable");
        let mut c = self.connection.clone();
        let set = redis::cmd("SET")
            .arg(self.report_key(&self.replica))
            .arg(json)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .to_owned();
        self.data(set.query_async::<()>(&mut c)).await
    }

    /// The fleet's rollout state for the policies named.
    pub async fn status(&self, policies: &[String]) -> Result<Status, FleetError> {
        let mut c = self.connection.clone();
        let replicas_key = format!("{}:replicas", self.prefix);
        let (now, beats): ((u64, u64), Vec<(String, u64)>) = self
            .data(
                redis::pipe()
                    .cmd("TIME")
                    .cmd("ZRANGE")
                    .arg(&replicas_key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut c),
            )
            .await?;
        let now_ms = now.0 * 1000 + now.1 / 1000;
        let oldest = now_ms.saturating_sub(LIVE_FOR.as_millis() as u64);
        let mut replicas = Vec::new();
        for (replica, heartbeat_ms) in beats.into_iter().filter(|(_, at)| *at >= oldest) {
            let report = self
                .get_raw(&self.report_key(&replica))
                .await?
                .and_then(|json| serde_json::from_slice(&json).ok());
            replicas.push(ReplicaStatus {
                replica,
                heartbeat_ms,
                report,
            });
        }
        let mut desired = BTreeMap::new();
        for name in policies {
            if let Some(version) = self.desired(name).await? {
                desired.insert(name.clone(), version);
            }
        }
        Ok(Status {
            now_ms,
            replica: self.replica.clone(),
            desired,
            replicas,
        })
    }
}
