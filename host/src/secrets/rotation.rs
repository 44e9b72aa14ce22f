//! Key rotation over stored definitions, as a service: counting secrets per key
//! version (`trellis keys status`), proving at start-up that the keyring opens what
//! is stored, and re-encrypting everything not on the current version (`trellis keys
//! rewrap`), so an old key can be retired. The commands run it against the database
//! directly ([`Rotation::connect`]); every node runs the check on its own store.

use super::{Binding, KeyVersion, Keyring, open, params, rewrap};
use crate::orchestrations::model::{Definition, Step};
use crate::orchestrations::{parse, stored_text};
use crate::store::{Store, StoredDefinition};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rotation over one store with one keyring.
#[derive(Clone)]
pub struct Rotation {
    store: Store,
    keyring: Arc<Keyring>,
}

impl Rotation {
    pub fn new(store: Store, keyring: Arc<Keyring>) -> Self {
        Self { store, keyring }
    }

    /// For the `trellis keys` commands: the database at `database_url` (the same one
    /// the servers use; safe while they run).
    pub async fn connect(database_url: &str, keyring: Arc<Keyring>) -> Result<Self> {
        Ok(Self::new(Store::connect_erasing(database_url).await?, keyring))
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Secrets per key version across every stored definition version.
    pub async fn count_by_version(&self) -> Result<BTreeMap<KeyVersion, u64>> {
        let mut counts = BTreeMap::new();
        each_definition(&self.store, async |stored| {
            for version in params::key_versions(&parse(&stored.definition)?) {
                *counts.entry(version).or_default() += 1;
            }
            Ok(())
        })
        .await?;
        Ok(counts)
    }

    /// Refuses to start when stored secrets use a key version the keyring lacks, or
    /// when a key does not open what was sealed under its version (a regenerated or
    /// mistyped key): every run of those steps would fail. Names the versions and how
    /// many params use each; opens one stored secret per version to prove the key.
    pub async fn check_keyring_covers_store(&self) -> Result<()> {
        let keyring = &*self.keyring;
        let mut counts: BTreeMap<KeyVersion, u64> = BTreeMap::new();
        let mut wrong_keys = Vec::new();
        each_definition(&self.store, async |stored| {
            let definition = parse(&stored.definition)?;
            for (step_id, name, version, blob) in secrets(&definition) {
                let count = counts.entry(version).or_default();
                *count += 1;
                // The first secret seen under each version doubles as a key check.
                if *count == 1 && keyring.contains(version) {
                    let binding = Binding {
                        orchestration_id: &stored.orchestration_id,
                        step_id,
                        param: name,
                    };
                    if open(keyring, &binding, version, blob).is_err() {
                        wrong_keys.push(version);
                    }
                }
            }
            Ok(())
        })
        .await?;
        let missing: Vec<String> = counts
            .iter()
            .filter(|(version, _)| !keyring.contains(**version))
            .map(|(version, count)| format!("version {version} ({count} params)"))
            .collect();
        if !missing.is_empty() {
            bail!(
                "stored encryptedParams use key versions missing from the keyring: {}. Add those keys back to \
                 SECRET_KEYS (run `trellis keys rewrap` before removing a key)",
                missing.join(", ")
            );
        }
        if !wrong_keys.is_empty() {
            let versions: Vec<String> = wrong_keys.iter().map(|v| v.to_string()).collect();
            bail!(
                "key version(s) {} in the keyring do not decrypt the secrets stored under them: the keyring \
                 is not the one they were sealed with (a regenerated or mistyped key?)",
                versions.join(", ")
            );
        }
        Ok(())
    }

    /// Re-encrypts every secret not on the current key version (new IV, same
    /// binding), one definition version per compare-and-swap, in pages. Safe while
    /// servers run: they only add versions, and a definition that changed under us
    /// is read again. Resumable: it only ever touches what is still on an old
    /// version. A secret that cannot be opened is reported and skipped; the rest
    /// still move.
    pub async fn rewrap_all(&self) -> Result<RewrapReport> {
        let mut report = RewrapReport::default();
        for _ in 0..MAX_PASSES {
            report.failures.clear();
            let moved_before = report.params;
            rewrap_pass(&self.store, &self.keyring, &mut report).await?;
            let left = self
                .count_by_version()
                .await?
                .into_iter()
                .any(|(v, n)| v != self.keyring.current_version() && n > 0);
            if !left {
                // Everything moved; a log that cannot be emptied now is reported, not
                // an error.
                report.checkpointed = self.store.checkpoint().await.unwrap_or_else(|error| {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "emptying the write-ahead log failed"
                    );
                    false
                });
                return Ok(report);
            }
            if report.params == moved_before && !report.failures.is_empty() {
                break;
            }
        }
        if report.failures.is_empty() {
            report.failures.push(format!(
                "params on old key versions remain after {MAX_PASSES} passes (updates on nodes with an older \
                 currentKeyVersion?); run rewrap again once every node uses the current key"
            ));
        }
        Ok(report)
    }
}

/// Definitions read per page; a page is small enough to hold in memory whatever the
/// definitions' size, large enough that a scan is a handful of queries.
const PAGE: u32 = 200;

/// Visits every stored version of every orchestration (deleted ones too: runs may
/// still need them), a page at a time.
async fn each_definition(
    store: &Store,
    mut visit: impl AsyncFnMut(StoredDefinition) -> Result<()>,
) -> Result<()> {
    let mut after: Option<(String, i64)> = None;
    loop {
        let page = store
            .definitions_page(after.as_ref().map(|(id, v)| (id.as_str(), *v)), PAGE)
            .await?;
        let Some(last) = page.last() else { return Ok(()) };
        after = Some((last.orchestration_id.clone(), last.version));
        for stored in page {
            visit(stored).await?;
        }
    }
}

/// `(step id, param, key version, blob)` of every sealed param in a definition.
fn secrets(definition: &Definition) -> impl Iterator<Item = (&str, &str, KeyVersion, &str)> {
    definition.steps.iter().flat_map(|step| match step {
        Step::Compute(compute) => compute
            .encrypted_params
            .iter()
            .flatten()
            .filter_map(|(name, entry)| {
                Some((
                    compute.id.as_str(),
                    name.as_str(),
                    entry.key_version?,
                    entry.value.as_deref()?,
                ))
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    /// Definition versions rewritten.
    pub definitions: u64,
    /// Secrets re-encrypted under the current key.
    pub params: u64,
    /// Definitions that could not be moved, each with the reason (orchestration,
    /// step and param; never a value). Empty when the old keys can be retired.
    pub failures: Vec<String>,
    /// Whether the old blobs are gone from every database file too (SQLite's
    /// write-ahead log emptied): another process reading or writing at that moment
    /// keeps them in the log until it is emptied.
    pub checkpointed: bool,
}

/// Passes over the whole store before giving up on stragglers: an update that read
/// a definition before a pass and committed after it copies an old-key blob into a
/// new version, which the next pass picks up.
const MAX_PASSES: usize = 5;

/// Compare-and-swap attempts per definition version within a pass. A lost race
/// means another rewrap got there first, so a couple of rounds settle it.
const ROUNDS_PER_DEFINITION: usize = 3;

async fn rewrap_pass(store: &Store, keyring: &Keyring, report: &mut RewrapReport) -> Result<()> {
    each_definition(store, async |stored| {
        let mut text = stored.definition;
        for _ in 0..ROUNDS_PER_DEFINITION {
            let mut definition = parse(&text)?;
            let moved = match rewrap_definition(&mut definition, &stored.orchestration_id, keyring) {
                Ok(0) => return Ok(()),
                Ok(moved) => moved,
                Err(failure) => {
                    report.failures.push(format!("{failure:#}"));
                    return Ok(());
                }
            };
            let new_text = stored_text(&definition)?;
            if store
                .replace_definition(&stored.orchestration_id, stored.version, &text, &new_text)
                .await?
            {
                report.definitions += 1;
                report.params += moved;
                return Ok(());
            }
            text = store
                .get_orchestration_version(&stored.orchestration_id, stored.version)
                .await?
                .context("a definition version disappeared during rewrap")?
                .definition;
        }
        report.failures.push(format!(
            "orchestration {} version {}: changed by another rewrap {ROUNDS_PER_DEFINITION} times in a row",
            stored.orchestration_id, stored.version
        ));
        Ok(())
    })
    .await
}

/// Rewraps the secrets of one definition in place; returns how many moved.
fn rewrap_definition(definition: &mut Definition, orchestration_id: &str, keyring: &Keyring) -> Result<u64> {
    let current = keyring.current_version();
    let mut moved = 0;
    for step in &mut definition.steps {
        let Step::Compute(compute) = step else { continue };
        let step_id = compute.id.clone();
        for (name, entry) in compute.encrypted_params.iter_mut().flatten() {
            let Some(version) = entry.key_version.filter(|version| *version != current) else {
                continue;
            };
            let binding = Binding {
                orchestration_id,
                step_id: &step_id,
                param: name,
            };
            let blob = entry.value.as_deref().unwrap_or_default();
            let (new_blob, new_version) = rewrap(keyring, &binding, version, blob).map_err(|error| {
                anyhow::anyhow!("orchestration {orchestration_id} step `{step_id}` param `{name}`: {error}")
            })?;
            entry.value = Some(new_blob);
            entry.key_version = Some(new_version);
            moved += 1;
        }
    }
    Ok(moved)
}
