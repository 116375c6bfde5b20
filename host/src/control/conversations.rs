//! The conversation store: what the proxy keeps of the Responses API responses it served, so that
//! a follow-up naming one (`previous_response_id`) works on every provider and
//! `GET /v1/responses/{id}` can answer.
//!
//! A response made by translation is kept whole: the response object as its client got it, and
//! the conversation so far (every turn's input and output items) for rebuilding a follow-up for
//! any provider. A response a provider made itself is kept as a pin: which catalog model and
//! provider made it, since only that provider holds it. Each entry belongs to the team that made
//! it and lives for the configured time to live; the store's total size is capped, the oldest
//! entries going first when it is full. A client's `store: false` is honoured by not calling
//! [`ResponseStore::put`].
//!
//! [`ResponseStore`] is the one small seam: [`MemoryStore`] keeps entries in this process;
//! [`RedisStore`] keeps them in the fleet's Redis (with `[state]`), so a follow-up may reach any
//! replica. Time is passed in to
//! [`MemoryStore`]'s own methods, so its expiry is tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use serde_json::value::RawValue;

use crate::fleet::{Fleet, FleetError};

/// What is kept of one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Made by translation: the response object, and the conversation's items up to and
    /// including its output (a JSON array).
    Translated { response: Bytes, items: Bytes },
    /// Made by a provider serving the Responses API itself.
    Native { model: String, provider: String },
}

impl Stored {
    fn size(&self) -> usize {
        match self {
            Self::Translated { response, items } => response.len() + items.len(),
            Self::Native { model, provider } => model.len() + provider.len(),
        }
    }
}

/// One kept response and the team it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub team: Arc<str>,
    pub stored: Stored,
}

/// Where responses are kept.
pub trait ResponseStore: Send + Sync {
    /// The entry kept under `id`, unless it expired; an error when the store cannot be reached.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Entry>, FleetError>>;
    /// Keep `entry` under `id` (best effort: a store that cannot be reached logs it).
    fn put(&self, id: String, entry: Entry) -> BoxFuture<'_, ()>;
    /// Apply new limits (a config reload).
    fn set_limits(&self, limits: Limits);
}

/// How long entries live and how much the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub ttl: Duration,
    pub max_bytes: usize,
}

/// The store in this process's memory.
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

struct Inner {
    limits: Limits,
    entries: HashMap<String, Kept>,
    /// Ids in the order they were kept, oldest first, with when.
    order: VecDeque<(String, Instant)>,
    bytes: usize,
}

struct Kept {
    entry: Entry,
    at: Instant,
    size: usize,
}

impl MemoryStore {
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Mutex::new(Inner {
                limits,
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry under `id` at `now`.
    pub fn get_at(&self, id: &str, now: Instant) -> Option<Entry> {
        let inner = self.lock();
        let kept = inner.entries.get(id)?;
        (now.saturating_duration_since(kept.at) < inner.limits.ttl).then(|| kept.entry.clone())
    }

    /// Keep `entry` under `id` at `now`, making room by dropping expired and then the oldest
    /// entries; an entry larger than the whole store is not kept.
    pub fn put_at(&self, id: String, entry: Entry, now: Instant) {
        let size = id.len() + entry.stored.size();
        let mut inner = self.lock();
        if size > inner.limits.max_bytes {
            return;
        }
        inner.remove(&id);
        let ttl = inner.limits.ttl;
        while let Some((oldest, at)) = inner.order.pop_front() {
            let expired = now.saturating_duration_since(at) >= ttl;
            if !expired && inner.bytes + size <= inner.limits.max_bytes {
                inner.order.push_front((oldest, at));
                break;
            }
            // An id kept again later has a newer place in the order; this one is stale.
            if inner.entries.get(&oldest).is_some_and(|kept| kept.at == at) {
                inner.remove(&oldest);
            }
        }
        inner.bytes += size;
        inner.order.push_back((id.clone(), now));
        inner.entries.insert(
            id,
            Kept {
                entry,
                at: now,
                size,
            },
        );
        // Ids kept again leave stale places behind; drop them before they outnumber the rest.
        if inner.order.len() > 2 * inner.entries.len() + 64 {
            let Inner { order, entries, .. } = &mut *inner;
            order.retain(|(id, at)| entries.get(id).is_some_and(|kept| kept.at == *at));
        }
    }

    /// How many entries are kept, expired or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Inner {
    fn remove(&mut self, id: &str) {
        if let Some(kept) = self.entries.remove(id) {
            self.bytes -= kept.size;
        }
    }
}

impl ResponseStore for MemoryStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Entry>, FleetError>> {
        std::future::ready(Ok(self.get_at(id, Instant::now()))).boxed()
    }

    fn put(&self, id: String, entry: Entry) -> BoxFuture<'_, ()> {
        self.put_at(id, entry, Instant::now());
        std::future::ready(()).boxed()
    }

    /// Entries over the new limits go at the next `put`.
    fn set_limits(&self, limits: Limits) {
        self.lock().limits = limits;
    }
}

/// The store shared by a fleet, in Redis: any replica answers a follow-up. Each entry is one key
/// (`PREFIX:response:ID`) living for the time to live; an entry larger than the size cap is not
/// kept, and Redis's own `maxmemory` bounds the whole.
pub struct RedisStore {
    fleet: Arc<Fleet>,
    limits: Mutex<Limits>,
}

/// An entry as Redis holds it: the response and the items of one made by translation (as raw
/// JSON, not re-parsed), or the model and provider of one a provider made.
#[derive(serde::Serialize, serde::Deserialize)]
struct EntryWire {
    team: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    items: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
}

impl RedisStore {
    pub fn new(fleet: Arc<Fleet>, limits: Limits) -> Self {
        Self {
            fleet,
            limits: Mutex::new(limits),
        }
    }

    fn limits(&self) -> Limits {
        *self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn to_wire(entry: Entry) -> Option<EntryWire> {
    let raw = |bytes: Bytes| RawValue::from_string(String::from_utf8(bytes.to_vec()).ok()?).ok();
    let mut wire = EntryWire {
        team: entry.team.to_string(),
        response: None,
        items: None,
        model: None,
        provider: None,
    };
    match entry.stored {
        Stored::Translated { response, items } => {
            wire.response = Some(raw(response)?);
            wire.items = Some(raw(items)?);
        }
        Stored::Native { model, provider } => {
            wire.model = Some(model);
            wire.provider = Some(provider);
        }
    }
    Some(wire)
}

fn from_wire(wire: EntryWire) -> Option<Entry> {
    let bytes = |raw: Box<RawValue>| Bytes::from(String::from(Box::<str>::from(raw)));
    let stored = match wire {
        EntryWire {
            response: Some(response),
            items: Some(items),
            ..
        } => Stored::Translated {
            response: bytes(response),
            items: bytes(items),
        },
        EntryWire {
            model: Some(model),
            provider: Some(provider),
            ..
        } => Stored::Native { model, provider },
        _ => return None,
    };
    Some(Entry {
        team: wire.team.into(),
        stored,
    })
}

impl ResponseStore for RedisStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Entry>, FleetError>> {
        async move {
            let kept = self.fleet.get(&format!("response:{id}")).await?;
            Ok(kept
                .and_then(|bytes| serde_json::from_slice::<EntryWire>(&bytes).ok())
                .and_then(from_wire))
        }
        .boxed()
    }

    fn put(&self, id: String, entry: Entry) -> BoxFuture<'_, ()> {
        async move {
            let limits = self.limits();
            let Some(wire) = to_wire(entry) else {
                return;
            };
            let bytes = serde_json::to_vec(&wire).expect("an entry serialises");
            if bytes.len() > limits.max_bytes {
                return;
            }
            let key = format!("response:{id}");
            if let Err(e) = self.fleet.set(&key, &bytes, limits.ttl).await {
                tracing::warn!(response = %id, "keeping the response in redis failed: {e}");
            }
        }
        .boxed()
    }

    fn set_limits(&self, limits: Limits) {
        *self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(team: &str, response: &str) -> Entry {
        Entry {
            team: team.into(),
            stored: Stored::Translated {
                response: Bytes::copy_from_slice(response.as_bytes()),
                items: Bytes::from_static(b"[]"),
            },
        }
    }

    const LIMITS: Limits = Limits {
        ttl: Duration::from_secs(60),
        max_bytes: 100,
    };

    #[test]
    fn entries_expire_after_their_time_to_live() {
        let store = MemoryStore::new(LIMITS);
        let t0 = Instant::now();
        store.put_at("resp_a".into(), entry("t", "{}"), t0);
        assert_eq!(
            store.get_at("resp_a", t0 + Duration::from_secs(59)),
            Some(entry("t", "{}"))
        );
        assert_eq!(store.get_at("resp_a", t0 + Duration::from_secs(60)), None);
        assert_eq!(store.get_at("resp_b", t0), None);
        store.put_at(
            "resp_b".into(),
            entry("t", "{}"),
            t0 + Duration::from_secs(61),
        );
        assert_eq!(store.len(), 1, "the expired entry made room");
    }

    #[test]
    fn the_oldest_go_when_the_store_is_full() {
        let store = MemoryStore::new(LIMITS);
        let t0 = Instant::now();
        let body = "x".repeat(30);
        for (i, id) in ["resp_1", "resp_2", "resp_3"].into_iter().enumerate() {
            store.put_at(
                id.into(),
                entry("t", &body),
                t0 + Duration::from_secs(i as u64),
            );
        }
        let later = t0 + Duration::from_secs(5);
        assert_eq!(store.get_at("resp_1", later), None, "the oldest made room");
        assert!(store.get_at("resp_2", later).is_some());
        assert!(store.get_at("resp_3", later).is_some());
        store.put_at("resp_big".into(), entry("t", &"y".repeat(200)), later);
        assert_eq!(
            store.get_at("resp_big", later),
            None,
            "larger than the store"
        );
        assert!(
            store.get_at("resp_3", later).is_some(),
            "nothing was dropped for it"
        );
        store.set_limits(Limits {
            max_bytes: 40,
            ..LIMITS
        });
        store.put_at("resp_4".into(), entry("t", "{}"), later);
        assert_eq!(store.len(), 1, "new limits apply at the next put");
    }

    #[test]
    fn entries_round_trip_through_their_redis_form() {
        let translated = entry("t", r#"{"id":"resp_1","output":[]}"#);
        let native = Entry {
            team: "t".into(),
            stored: Stored::Native {
                model: "m".into(),
                provider: "p".into(),
            },
        };
        for kept in [translated, native] {
            let bytes = serde_json::to_vec(&to_wire(kept.clone()).unwrap()).unwrap();
            let wire: EntryWire = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(from_wire(wire), Some(kept));
        }
    }

    #[test]
    fn an_id_kept_again_keeps_its_newest_entry() {
        let store = MemoryStore::new(LIMITS);
        let t0 = Instant::now();
        store.put_at("resp_a".into(), entry("t", "1"), t0);
        for i in 1..200 {
            store.put_at(
                "resp_a".into(),
                entry("t", "2"),
                t0 + Duration::from_millis(i),
            );
        }
        let later = t0 + Duration::from_secs(30);
        store.put_at("resp_b".into(), entry("t", &"x".repeat(40)), later);
        assert_eq!(store.get_at("resp_a", later), Some(entry("t", "2")));
        assert!(store.lock().order.len() < 100, "stale places are dropped");
        let expired = t0 + Duration::from_secs(61);
        assert_eq!(store.get_at("resp_a", expired), None);
        assert!(store.get_at("resp_b", expired).is_some());
    }
}
