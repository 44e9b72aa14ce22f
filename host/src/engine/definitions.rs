//! Definition versions as the engine reads them, parsed once per process. A stored
//! version never changes meaning: updates write new versions, and key rotation only
//! re-encrypts blobs that the keyring loaded at start still opens either way.

use crate::orchestrations::model::Definition;
use crate::store::{RunRecord, Store};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Versions kept in memory; past it the cache starts over. Each entry is one parsed
/// definition (at most 256 steps), so this bounds the cache to a few hundred MiB in
/// the worst case and a few MiB in practice.
const CAPACITY: usize = 1024;

type Key = (String, i64);

#[derive(Clone)]
pub struct Definitions {
    store: Store,
    cache: Arc<Mutex<HashMap<Key, Arc<Definition>>>>,
}

impl Definitions {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Default::default(),
        }
    }

    /// Version `version` of orchestration `id`, deleted or not; `None` if never stored.
    pub async fn get(&self, id: &str, version: i64) -> anyhow::Result<Option<Arc<Definition>>> {
        let key = (id.to_owned(), version);
        if let Some(definition) = self.lock().get(&key) {
            return Ok(Some(definition.clone()));
        }
        let Some(stored) = self.store.get_orchestration_version(id, version).await? else {
            return Ok(None);
        };
        let definition = Arc::new(
            crate::orchestrations::parse(&stored.definition).map_err(|error| anyhow::anyhow!("{error}"))?,
        );
        let mut cache = self.lock();
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(key, definition.clone());
        Ok(Some(definition))
    }

    /// The definition `run` executes.
    pub async fn of(&self, run: &RunRecord) -> anyhow::Result<Arc<Definition>> {
        self.get(&run.orchestration_id, run.orchestration_version)
            .await?
            .with_context(|| {
                format!(
                    "version {} of orchestration {} is not stored",
                    run.orchestration_version, run.orchestration_id
                )
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Definition>>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
