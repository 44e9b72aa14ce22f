//! Definition versions as the engine reads them, parsed once per process. A stored
//! version never changes meaning: updates write new versions, and key rotation only
//! re-encrypts blobs that the keyring loaded at start still opens either way.

use crate::cache::Lru;
use crate::orchestrations::model::Definition;
use crate::store::{RunRecord, Store};
use anyhow::Context;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// Versions kept in memory; past it the least recently used one makes room. Each
/// entry is one parsed definition (at most 256 steps), so this bounds the cache to a
/// few hundred MiB in the worst case and a few MiB in practice, and the versions
/// that runs are executing now stay parsed however many others are read.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

#[derive(Clone)]
pub struct Definitions {
    store: Store,
    cache: Arc<Lru<(String, i64), Arc<Definition>>>,
}

impl Definitions {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(Lru::new(CAPACITY)),
        }
    }

    /// Version `version` of orchestration `id`, deleted or not; `None` if never stored.
    pub async fn get(&self, id: &str, version: i64) -> anyhow::Result<Option<Arc<Definition>>> {
        let key = (id.to_owned(), version);
        if let Some(definition) = self.cache.get(&key) {
            return Ok(Some(definition));
        }
        let Some(stored) = self.store.get_orchestration_version(id, version).await? else {
            return Ok(None);
        };
        let definition = Arc::new(
            crate::orchestrations::parse(&stored.definition).map_err(|error| anyhow::anyhow!("{error}"))?,
        );
        self.cache.put(key, definition.clone());
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> String {
        serde_json::json!({ "name": name, "steps": [{ "id": "wait", "type": "delay", "delayMs": 1 }] })
            .to_string()
    }

    async fn name(definitions: &Definitions, id: &str) -> String {
        let definition = definitions.get(id, 1).await.expect("read").expect("stored");
        definition.name.clone()
    }

    #[tokio::test]
    async fn the_version_runs_keep_using_stays_parsed_while_others_fill_the_cache() {
        let dir = tempfile::tempdir().expect("a dir");
        let url = format!("sqlite://{}", dir.path().join("trellis.db").display());
        let store = Store::connect(&url).await.expect("a store");
        let definitions = Definitions::new(store.clone());
        for id in ["hot", "cold-0"] {
            store.create_orchestration(id, &text(id)).await.expect("create");
            assert_eq!(name(&definitions, id).await, id);
            // What is stored changes underneath (as only a rewrap does, keeping the
            // meaning): a version still cached is served as first parsed, one that was
            // evicted is read again.
            assert!(
                store
                    .replace_definition(id, 1, &text(id), &text("read again"))
                    .await
                    .expect("replace")
            );
        }
        // A full cache's worth of other versions, each read once, while runs of `hot`
        // keep reading it.
        for n in 1..CAPACITY.get() {
            let id = format!("cold-{n}");
            store.create_orchestration(&id, &text(&id)).await.expect("create");
            assert_eq!(name(&definitions, &id).await, id);
            assert_eq!(name(&definitions, "hot").await, "hot", "evicted after {n} others");
        }
        assert_eq!(
            name(&definitions, "cold-0").await,
            "read again",
            "the least recently used made room"
        );
        store.close().await;
    }
}
