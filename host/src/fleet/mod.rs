//! The fleet: state that the replicas of one deployment share through Redis (`[state]`).
//!
//! [`Fleet`] holds one multiplexed, self-reconnecting connection (`redis`'s connection manager)
//! for every request of the process, and one more on which a replica waits for deploys. Every call is bounded by the configured timeout and goes
//! through a breaker: after `breaker_failures` failed calls in a row, Redis is left alone for
//! the cooldown and calls fail at once, so a slow or dead Redis never holds a request. A
//! [`FleetError`] then tells the caller to apply the team's `on_state_error`.
//!
//! `limits` runs the per-request scripts (admission, settlement, release). Settlements that
//! could not be made are kept ([`Fleet::settle`]) and made by the background task once Redis
//! answers again; each is idempotent by request id, so a retry never charges twice. The
//! background task also writes this replica's heartbeat and counts the live replicas, which the
//! `local` mode divides the limits by. `rollout` keeps the policy versions deployed to the
//! fleet, its candidates, and what each replica reports it runs. This module touches only Redis and its own
//! counters.

mod charge;
mod limits;
mod rollout;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio_util::task::TaskTracker;

pub use charge::{FleetBill, FleetCharge, micros};
pub use limits::{Ask, BudgetAsk, Release, Settlement, Verdict};
pub use rollout::{Desired, FleetCandidate, LivePolicy, Refusal, ReplicaStatus, Report, Status};

use crate::config::StateConfig;

/// The shared state could not be used for one call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    #[error("redis did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("redis failed: {0}")]
    Redis(String),
    #[error("redis is left alone for a moment after failing {0} calls in a row")]
    BreakerOpen(u32),
    #[error("redis is not reachable: {0}")]
    Setup(String),
    #[error("a value in redis is not what this version writes: {0}")]
    Data(String),
}

/// Failed calls in a row, and until when Redis is left alone.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// How often the heartbeat is written, and how long a replica counts as live without one.
const HEARTBEAT: Duration = Duration::from_secs(2);
const LIVE_FOR: Duration = Duration::from_secs(10);

/// Longest wait for a call reading or writing stored data (the Responses API's responses).
const DATA_TIMEOUT: Duration = Duration::from_secs(1);

/// Most settlements kept while Redis is away; older ones are dropped first (and logged).
const MAX_PENDING: usize = 100_000;

/// The shared state of a fleet of replicas.
pub struct Fleet {
    client: redis::Client,
    connection: ConnectionManager,
    /// The connection a replica waits for deploys on (`rollout`), made on first use.
    watcher: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    prefix: String,
    timeout: Duration,
    breaker_failures: u32,
    cooldown: Duration,
    breaker: Mutex<Breaker>,
    /// This replica's name in the fleet.
    replica: String,
    /// Replicas with a recent heartbeat, as last counted (at least 1: this one).
    live: AtomicU32,
    /// Settlements waiting for Redis.
    pending: Mutex<VecDeque<Settlement>>,
    /// Settlements and releases under way, waited for when the proxy stops.
    tasks: TaskTracker,
}

impl Fleet {
    /// The fleet state `config` names, with its background work started (on the current Tokio
    /// runtime); the connection is made on first use, so a replica starts while Redis is down.
    pub fn new(config: &StateConfig) -> Result<Arc<Self>, FleetError> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| FleetError::Setup(e.to_string()))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|e| FleetError::Setup(e.to_string()))?;
        let fleet = Arc::new(Self {
            client,
            connection,
            watcher: tokio::sync::Mutex::new(None),
            prefix: config.prefix.clone(),
            timeout,
            breaker_failures: config.breaker_failures,
            cooldown: Duration::from_millis(config.breaker_cooldown_ms),
            breaker: Mutex::new(Breaker::default()),
            replica: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            live: AtomicU32::new(1),
            pending: Mutex::new(VecDeque::new()),
            tasks: TaskTracker::new(),
        });
        fleet.spawn_background();
        Ok(fleet)
    }

    /// Connect, waiting up to a second, so that a replica starting beside a running Redis
    /// serves its first requests from it; when Redis is down, the replica starts all the same
    /// and its teams' `on_state_error` applies until Redis answers.
    pub async fn connect(&self) {
        let mut connection = self.connection.clone();
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<()>(&mut connection);
        match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(Ok(())) => {
                if let Err(e) = self.heartbeat().await {
                    tracing::warn!("the fleet's first heartbeat failed: {e}");
                }
            }
            Ok(Err(e)) => tracing::warn!("redis is not reachable yet: {e}"),
            Err(_) => tracing::warn!("redis did not answer within a second; starting without it"),
        }
    }

    /// The live replicas as last counted, this one included.
    pub fn live_replicas(&self) -> u32 {
        self.live.load(Ordering::Relaxed).max(1)
    }

    /// Settlements waiting for Redis.
    pub fn pending(&self) -> usize {
        self.lock_pending().len()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, VecDeque<Settlement>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run one Redis call through the breaker, within the timeout.
    async fn call<T, F>(&self, call: impl FnOnce(ConnectionManager) -> F) -> Result<T, FleetError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        {
            let breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
            if breaker
                .open_until
                .is_some_and(|until| Instant::now() < until)
            {
                return Err(FleetError::BreakerOpen(breaker.failures));
            }
        }
        let result = match tokio::time::timeout(self.timeout, call(self.connection.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is_timeout() => Err(FleetError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(FleetError::Redis(e.to_string())),
            Err(_) => Err(FleetError::Timeout(self.timeout)),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(FleetError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        metrics::counter!("switchyard_fleet_calls_total", "result" => outcome).increment(1);
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => *breaker = Breaker::default(),
            Err(_) => {
                breaker.failures += 1;
                if breaker.failures >= self.breaker_failures {
                    breaker.open_until = Some(Instant::now() + self.cooldown);
                }
            }
        }
        result
    }

    /// A call for stored data (not for limits): bounded by [`DATA_TIMEOUT`], and outside the
    /// breaker, so that large values do not turn the limits' checks away.
    async fn data<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, FleetError> {
        match tokio::time::timeout(DATA_TIMEOUT, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(FleetError::Redis(e.to_string())),
            Err(_) => Err(FleetError::Timeout(DATA_TIMEOUT)),
        }
    }

    /// The value of the fleet's key `name` (under the prefix), if it has one.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, FleetError> {
        let key = format!("{}:{name}", self.prefix);
        let mut c = self.connection.clone();
        let get = redis::cmd("GET").arg(&key).to_owned();
        self.data(get.query_async::<Option<Vec<u8>>>(&mut c)).await
    }

    /// Set the fleet's key `name` (under the prefix) to `value` for `ttl`.
    pub async fn set(&self, name: &str, value: &[u8], ttl: Duration) -> Result<(), FleetError> {
        let key = format!("{}:{name}", self.prefix);
        let millis = ttl.as_millis().max(1) as u64;
        let mut c = self.connection.clone();
        let set = redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("PX")
            .arg(millis)
            .to_owned();
        self.data(set.query_async::<()>(&mut c)).await
    }

    /// Run `work` (a settlement or a release) on its own, tracked so that [`Fleet::flush`] waits
    /// for it.
    fn track(&self, work: impl Future<Output = ()> + Send + 'static) {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.tasks.spawn(work);
        }
    }

    /// When the proxy stops: wait for the settlements under way and make those that wait for
    /// Redis, for at most `within`; what is left is logged (its reservations expire).
    pub async fn flush(&self, within: Duration) {
        self.tasks.close();
        let flushed = async {
            self.tasks.wait().await;
            self.settle_pending().await;
        };
        let _ = tokio::time::timeout(within, flushed).await;
        let left = self.pending();
        if left > 0 {
            tracing::warn!(
                "{left} settlements could not be made in redis before exit; their reservations expire"
            );
        }
    }

    /// Settle a served request, now or, when Redis cannot be reached, once it can.
    pub async fn settle(&self, settlement: Settlement) {
        if self.pending() > 0 {
            // Keep the order: earlier settlements go first.
            self.keep(settlement);
            return;
        }
        if let Err(e) = self.settle_now(&settlement).await {
            tracing::warn!(team = %settlement.team, request_id = %settlement.request_id, "settling with redis failed ({e}); kept to settle later");
            self.keep(settlement);
        }
    }

    fn keep(&self, settlement: Settlement) {
        let mut pending = self.lock_pending();
        if pending.len() >= MAX_PENDING {
            let dropped = pending.pop_front();
            tracing::error!(request_id = ?dropped.map(|d| d.request_id), "too many settlements wait for redis; the oldest was dropped");
        }
        pending.push_back(settlement);
    }

    /// Make the settlements that wait, oldest first, until Redis cannot be reached; one Redis
    /// refuses (a script error, which a retry would meet again) is dropped and logged.
    async fn settle_pending(&self) {
        loop {
            let Some(next) = self.lock_pending().front().cloned() else {
                return;
            };
            match self.settle_now(&next).await {
                Ok(()) => {}
                Err(FleetError::Redis(e)) => {
                    tracing::error!(team = %next.team, request_id = %next.request_id, "redis refused a settlement; it is dropped: {e}");
                }
                Err(_) => return,
            }
            // The queue may have lost its oldest meanwhile (when full): remove this one by id.
            let mut pending = self.lock_pending();
            if let Some(at) = pending.iter().position(|s| s.request_id == next.request_id) {
                pending.remove(at);
            }
        }
    }

    /// Write this replica's heartbeat and count the live replicas.
    async fn heartbeat(&self) -> Result<(), FleetError> {
        let key = format!("{}:replicas", self.prefix);
        let replica = self.replica.clone();
        let live: u32 = self
            .call(|mut c| async move {
                let now: (u64, u64) = redis::cmd("TIME").query_async(&mut c).await?;
                let now_ms = now.0 * 1000 + now.1 / 1000;
                let oldest = now_ms.saturating_sub(LIVE_FOR.as_millis() as u64);
                redis::pipe()
                    .zadd(&key, &replica, now_ms)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(oldest)
                    .ignore()
                    .zcard(&key)
                    .query_async::<(u32,)>(&mut c)
                    .await
                    .map(|(live,)| live)
            })
            .await?;
        self.live.store(live.max(1), Ordering::Relaxed);
        metrics::gauge!("switchyard_fleet_live_replicas").set(f64::from(live));
        Ok(())
    }

    /// The background work of a replica in a fleet: its heartbeat, and the settlements that
    /// wait for Redis; for as long as the fleet state is in use.
    fn spawn_background(self: &Arc<Self>) {
        let fleet = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT / 4);
            let mut beats = 0u32;
            loop {
                tick.tick().await;
                let Some(fleet) = fleet.upgrade() else {
                    return;
                };
                if beats.is_multiple_of(4)
                    && let Err(e) = fleet.heartbeat().await
                {
                    tracing::debug!("fleet heartbeat failed: {e}");
                }
                beats = beats.wrapping_add(1);
                fleet.settle_pending().await;
                metrics::gauge!("switchyard_fleet_pending_settlements").set(fleet.pending() as f64);
            }
        });
    }
}
