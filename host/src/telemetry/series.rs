//! Metric handles resolved once per label set, for the series every request records.
//!
//! Recording through the `metrics` macros builds each label's string and looks the series up in
//! the recorder's registry, every time: the `log` phase did eight lookups and a dozen label
//! allocations per request. A [`Series`] cache keeps the handles of each label set it has seen,
//! so a request after the first of its kind records through handles it finds with one hash and
//! no allocation. The hash is foldhash's (label sets come from the config, not from clients, so
//! SipHash's resistance to chosen collisions buys nothing here, at several times the cost). Label sets are names from the config, status codes and fixed words, so they are
//! few; past [`MAX_LABEL_SETS`] a cache stops keeping new ones and resolves them on each use.
//! Handles come from the recorder installed when they are first resolved, so the proxy installs
//! its recorder before it serves. A handle is resolved when first used, so a series appears in
//! `/metrics` only once something was recorded in it. It touches nothing but the recorder.

use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, OnceLock, RwLock};

use foldhash::HashMap;
use foldhash::fast::RandomState;
use metrics::{Counter, Histogram};

/// Most label sets one cache keeps.
pub const MAX_LABEL_SETS: usize = 4096;

/// The handles of one label set, each resolved when first used.
pub struct Handles<L> {
    labels: L,
    counters: [OnceLock<Counter>; 4],
    histograms: [OnceLock<Histogram>; 2],
}

impl<L> Handles<L> {
    fn new(labels: L) -> Self {
        Self {
            labels,
            counters: Default::default(),
            histograms: Default::default(),
        }
    }

    /// The labels these handles are for.
    pub fn labels(&self) -> &L {
        &self.labels
    }

    /// Counter number `slot`, resolved by `resolve` the first time.
    pub fn counter(&self, slot: usize, resolve: impl FnOnce(&L) -> Counter) -> &Counter {
        self.counters[slot].get_or_init(|| resolve(&self.labels))
    }

    /// Histogram number `slot`, resolved by `resolve` the first time.
    pub fn histogram(&self, slot: usize, resolve: impl FnOnce(&L) -> Histogram) -> &Histogram {
        self.histograms[slot].get_or_init(|| resolve(&self.labels))
    }
}

/// The handles of every label set of one kind seen so far; `L` is the owned label set.
pub struct Series<L> {
    hasher: RandomState,
    /// By the labels' hash; a bucket holds the label sets that share one.
    sets: RwLock<HashMap<u64, Vec<Arc<Handles<L>>>>>,
}

impl<L> Default for Series<L> {
    fn default() -> Self {
        Self {
            hasher: RandomState::default(),
            sets: RwLock::default(),
        }
    }
}

impl<L> Series<L> {
    /// The handles of the label set `key` describes: `matches` says whether kept labels are it,
    /// `own` makes the labels to keep. Only `key` is hashed: every call for one label set must
    /// pass equal keys of one type.
    pub fn get<K: Hash + ?Sized>(
        &self,
        key: &K,
        matches: impl Fn(&L) -> bool,
        own: impl FnOnce() -> L,
    ) -> Arc<Handles<L>> {
        let hash = self.hasher.hash_one(key);
        let found = |sets: &HashMap<u64, Vec<Arc<Handles<L>>>>| {
            sets.get(&hash)
                .and_then(|bucket| bucket.iter().find(|h| matches(&h.labels)).cloned())
        };
        if let Some(handles) = found(&self.sets.read().unwrap_or_else(|p| p.into_inner())) {
            return handles;
        }
        let mut sets = self.sets.write().unwrap_or_else(|p| p.into_inner());
        if let Some(handles) = found(&sets) {
            return handles;
        }
        let handles = Arc::new(Handles::new(own()));
        if sets.len() < MAX_LABEL_SETS {
            sets.entry(hash).or_default().push(handles.clone());
        }
        handles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(key: &(&str, u16)) -> (String, u16) {
        (key.0.to_string(), key.1)
    }

    #[test]
    fn one_label_set_resolves_its_handles_once_and_another_gets_its_own() {
        let series: Series<(String, u16)> = Series::default();
        let get =
            |key: (&str, u16)| series.get(&key, |l| l.0 == key.0 && l.1 == key.1, || owned(&key));
        let first = get(("team-a", 200));
        let mut resolved = 0;
        for _ in 0..3 {
            get(("team-a", 200)).counter(0, |_| {
                resolved += 1;
                Counter::noop()
            });
        }
        assert_eq!(resolved, 1);
        assert!(Arc::ptr_eq(&first, &get(("team-a", 200))));
        let other = get(("team-a", 500));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.labels(), &("team-a".to_string(), 500));
    }

    #[test]
    fn past_the_cap_label_sets_are_resolved_but_not_kept() {
        let series: Series<(String, u16)> = Series::default();
        for status in 0..MAX_LABEL_SETS as u16 + 10 {
            let key = ("t", status);
            series.get(&key, |l| l.1 == status, || owned(&key));
        }
        let kept: usize = series.sets.read().unwrap().values().map(Vec::len).sum();
        assert_eq!(kept, MAX_LABEL_SETS);
        let key = ("t", MAX_LABEL_SETS as u16 + 5);
        let handles = series.get(&key, |l| l.1 == key.1, || owned(&key));
        assert_eq!(handles.labels().1, key.1);
    }
}
