//! Function records recently read for invocation, keyed by functionId, so invoking a
//! hot function costs no database round trip.

use crate::cache::Lru;
use crate::store::FunctionRecord;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// How long an invoke may use a function record without asking the database again.
/// Writes through this node take effect at once (they evict the entry); a function
/// replaced through another node is picked up here within this window.
const RECORD_TTL: Duration = Duration::from_secs(1);

/// Records kept. A record is a few hundred bytes (its settings), so the cache stays
/// well under a MiB; a node invoking more distinct functions than this within
/// [`RECORD_TTL`] reads only the least recently invoked ones again.
const MAX_RECORDS: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

pub(super) struct RecordCache(Lru<String, (FunctionRecord, Instant)>);

impl Default for RecordCache {
    fn default() -> Self {
        Self(Lru::new(MAX_RECORDS))
    }
}

impl RecordCache {
    /// The record of `id`, if read less than [`RECORD_TTL`] ago.
    pub(super) fn fresh(&self, id: &str) -> Option<FunctionRecord> {
        let (record, read_at) = self.0.get(id)?;
        (read_at.elapsed() < RECORD_TTL).then_some(record)
    }

    pub(super) fn insert(&self, record: FunctionRecord) {
        self.0.put(record.id.clone(), (record, Instant::now()));
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

    #[test]
    fn a_write_evicts_the_record() {
        let cache = RecordCache::default();
        cache.insert(record("f"));
        cache.evict("f");
        assert!(cache.fresh("f").is_none());
    }
}
