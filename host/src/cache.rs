//! The one shape of in-memory cache Trellis keeps: bounded, shared between threads,
//! and evicting the least recently used entry when full, so the entries a node
//! keeps using stay warm however many others pass through. Each cache names its
//! bound where it is declared, with the reason for it.

use lru::LruCache;
use std::borrow::Borrow;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

pub struct Lru<K, V> {
    entries: Mutex<LruCache<K, V>>,
}

impl<K: Hash + Eq, V: Clone> Lru<K, V> {
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// A copy of the entry for `key`, which becomes the most recently used.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().get(key).cloned()
    }

    /// `update`'s answer for the entry of `key`, which it may change in place (one
    /// step under the lock, so two callers never both see the old entry); the entry
    /// becomes the most recently used.
    pub fn update<Q, R>(&self, key: &Q, update: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().get_mut(key).map(update)
    }

    /// Stores `value` as the most recently used entry, evicting the least recently
    /// used one when full.
    pub fn put(&self, key: K, value: V) {
        self.lock().put(key, value);
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().pop(key);
    }

    /// A panic while the lock was held cannot leave the map half-updated (every
    /// operation is one call into it), so a poisoned lock is still good.
    fn lock(&self) -> MutexGuard<'_, LruCache<K, V>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_keeps_what_is_used_and_evicts_the_rest() {
        let cache = Lru::new(NonZeroUsize::new(3).expect("not zero"));
        for key in ["hot", "b", "c"] {
            cache.put(key, key.len());
        }
        assert_eq!(cache.get("hot"), Some(3), "reading makes it the most recent");
        cache.put("d", 1);
        cache.put("e", 1);
        assert_eq!(cache.get("hot"), Some(3), "the hot entry survives");
        assert_eq!(
            (cache.get("b"), cache.get("c")),
            (None, None),
            "the cold ones went"
        );
        assert_eq!((cache.get("d"), cache.get("e")), (Some(1), Some(1)));
    }

    #[test]
    fn a_removed_entry_is_gone() {
        let cache = Lru::new(NonZeroUsize::new(2).expect("not zero"));
        cache.put("a", 1);
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
    }
}
