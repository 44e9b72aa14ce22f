//! Function records recently read for invocation, keyed by functionId, so invoking a
//! hot function costs no database round trip.

use crate::cache::Lru;
use crate::store::FunctionRecord;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// How long an invoke may use a function record without asking the database again.
/// Writes through this node take effect at once (they evict the entry); a function
/// replaced through another node is picked up here within this window and one read.
const RECORD_TTL: Duration = Duration::from_secs(1);

/// How long the other callers keep using an aged record while the first to find it
/// aged reads it again; after that (the read failed, or is stuck) the next caller
/// reads it too.
const REFRESH_GRACE: Duration = Duration::from_secs(1);

/// Records kept. A record is a few hundred bytes (its settings), so the cache stays
/// well under a MiB; a node invoking more distinct functions than this within
/// [`RECORD_TTL`] reads only the least recently invoked ones again.
const MAX_RECORDS: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

pub(super) struct RecordCache(Lru<String, Entry>);

#[derive(Clone)]
struct Entry {
    record: FunctionRecord,
    read_at: Instant,
    /// When a caller took on reading the aged record again.
    refreshing_since: Option<Instant>,
}

impl Default for RecordCache {
    fn default() -> Self {
        Self(Lru::new(MAX_RECORDS))
    }
}

impl RecordCache {
    /// The record of `id` to invoke with, or `None`: read it and [`insert`] it (or
    /// [`evict`] it if the function is gone). A record read less than [`RECORD_TTL`] ago is
    /// fresh. Once it is older, the first caller gets `None` and the others the aged
    /// record meanwhile, for up to [`REFRESH_GRACE`] more, so that the calls in flight
    /// when a hot function's record ages do not all read it at once.
    ///
    /// [`insert`]: RecordCache::insert
    /// [`evict`]: RecordCache::evict
    pub(super) fn fresh(&self, id: &str) -> Option<FunctionRecord> {
        self.fresh_at(id, Instant::now())
    }

    fn fresh_at(&self, id: &str, now: Instant) -> Option<FunctionRecord> {
        self.0
            .update(id, |entry| {
                let age = now.saturating_duration_since(entry.read_at);
                let refreshing = entry
                    .refreshing_since
                    .is_some_and(|since| now.saturating_duration_since(since) < REFRESH_GRACE);
                if age < RECORD_TTL || (refreshing && age < RECORD_TTL + REFRESH_GRACE) {
                    return Some(entry.record.clone());
                }
                entry.refreshing_since = Some(now);
                None
            })
            .flatten()
    }

    pub(super) fn insert(&self, record: FunctionRecord) {
        self.insert_at(record, Instant::now());
    }

    fn insert_at(&self, record: FunctionRecord, now: Instant) {
        let entry = Entry {
            record,
            read_at: now,
            refreshing_since: None,
        };
        self.0.put(entry.record.id.clone(), entry);
    }

    pub(super) fn evict(&self, id: &str) {
        self.0.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> FunctionRecord {
        FunctionRecord {
            id: id.to_owned(),
            version: 1,
            sha256: "0".repeat(64),
            size_bytes: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            settings: Default::default(),
        }
    }

    #[test]
    fn a_hot_function_keeps_its_record_while_others_fill_the_cache() {
        let cache = RecordCache::default();
        cache.insert(record("hot"));
        // A full cache's worth of other functions, each invoked once, while `hot` is
        // invoked between them.
        for n in 0..MAX_RECORDS.get() {
            cache.insert(record(&format!("cold-{n}")));
            assert!(cache.fresh("hot").is_some(), "evicted after {n} others");
        }
        assert!(
            cache.fresh("cold-0").is_none(),
            "the least recently used made room"
        );
        let newest = format!("cold-{}", MAX_RECORDS.get() - 1);
        assert!(cache.fresh(&newest).is_some());
    }

    /// When a hot record ages, one caller reads it again while the others keep
    /// invoking with it; if that read never lands, another caller tries after the
    /// grace period.
    #[test]
    fn an_aged_record_is_read_again_by_one_caller_at_a_time() {
        let cache = RecordCache::default();
        let start = Instant::now();
        cache.insert_at(record("f"), start);
        assert!(cache.fresh_at("f", start + RECORD_TTL / 2).is_some(), "fresh");

        let aged = start + RECORD_TTL;
        assert!(cache.fresh_at("f", aged).is_none(), "the first caller reads it");
        for _ in 0..3 {
            assert!(cache.fresh_at("f", aged).is_some(), "the others wait for it");
        }
        assert!(
            cache.fresh_at("f", aged + REFRESH_GRACE).is_none(),
            "a read that never landed is tried again"
        );
        assert!(
            cache.fresh_at("f", aged + REFRESH_GRACE).is_none(),
            "and the aged record is not served past the grace period"
        );

        let read_again = aged + REFRESH_GRACE;
        cache.insert_at(record("f"), read_again);
        assert!(cache.fresh_at("f", read_again).is_some(), "fresh again");
    }

    #[test]
    fn a_write_evicts_the_record() {
        let cache = RecordCache::default();
        cache.insert(record("f"));
        cache.evict("f");
        assert!(cache.fresh("f").is_none());
    }
}
