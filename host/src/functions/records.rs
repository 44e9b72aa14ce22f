//! Function records recently read for invocation, keyed by functionId, so invoking a
//! hot function costs no database round trip.

use crate::store::FunctionRecord;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an invoke may use a function record without asking the database again.
/// Writes through this node take effect at once (they evict the entry); a function
/// replaced through another node is picked up here within this window.
const RECORD_TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct RecordCache(Mutex<HashMap<String, (FunctionRecord, Instant)>>);

impl RecordCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (FunctionRecord, Instant)>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The record of `id`, if read less than [`RECORD_TTL`] ago.
    pub(super) fn fresh(&self, id: &str) -> Option<FunctionRecord> {
        let cache = self.lock();
        let (record, read_at) = cache.get(id)?;
        (read_at.elapsed() < RECORD_TTL).then(|| record.clone())
    }

    pub(super) fn insert(&self, record: FunctionRecord) {
        let mut cache = self.lock();
        // Stale entries of functions no longer invoked would otherwise accumulate.
        cache.retain(|_, (_, read_at)| read_at.elapsed() < RECORD_TTL);
        cache.insert(record.id.clone(), (record, Instant::now()));
    }

    pub(super) fn evict(&self, id: &str) {
        self.lock().remove(id);
    }
}
