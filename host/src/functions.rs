//! Functions as a capability: upload (validate, compile, store), settings, invoke.
//! The REST API, the CLI's server side, the MCP server and the orchestration engine
//! all go through here.

use crate::runtime::{
    self, Invocation, InvokeError, Limits, Outcome, PrepareError, Runtime, ValidationError,
};
use crate::store::{FunctionRecord, FunctionSettings, PutOutcome, Store};
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest deadline a function may configure (`timeoutMs`), shared with clients so
/// they wait long enough for a call.
pub use trellis_types::MAX_FUNCTION_TIMEOUT_MS as MAX_TIMEOUT_MS;
/// Largest `memoryLimitMb`, matching the pool's per-slot reservation.
pub const MAX_MEMORY_LIMIT_MB: u32 = (runtime::MAX_MEMORY_BYTES >> 20) as u32;

#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    #[error("function `{0}` not found")]
    NotFound(String),
    #[error(
        "invalid functionId `{0}`: use 1 to 63 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit"
    )]
    InvalidId(String),
    #[error(transparent)]
    InvalidComponent(#[from] ValidationError),
    #[error("{0}")]
    InvalidSettings(String),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<PrepareError> for FunctionsError {
    fn from(error: PrepareError) -> Self {
        match error {
            PrepareError::Invalid(invalid) => Self::InvalidComponent(invalid),
            PrepareError::Internal(internal) => Self::Internal(internal),
        }
    }
}

pub type Result<T, E = FunctionsError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Functions {
    store: Store,
    runtime: Runtime,
    records: Arc<RecordCache>,
}

/// How long an invoke may use a function record without asking the database again.
/// Writes through this node take effect at once (they evict the entry); a function
/// replaced through another node is picked up here within this window. Saves a
/// database round trip on every hot-path invocation.
const RECORD_TTL: Duration = Duration::from_secs(1);

/// Function records recently read for invocation, keyed by functionId.
#[derive(Default)]
struct RecordCache(std::sync::Mutex<std::collections::HashMap<String, (FunctionRecord, Instant)>>);

impl RecordCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (FunctionRecord, Instant)>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh(&self, id: &str) -> Option<FunctionRecord> {
        let cache = self.lock();
        let (record, read_at) = cache.get(id)?;
        (read_at.elapsed() < RECORD_TTL).then(|| record.clone())
    }

    fn insert(&self, record: FunctionRecord) {
        let mut cache = self.lock();
        // Stale entries of functions no longer invoked would otherwise accumulate.
        cache.retain(|_, (_, read_at)| read_at.elapsed() < RECORD_TTL);
        cache.insert(record.id.clone(), (record, Instant::now()));
    }

    fn evict(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// `[a-z0-9][a-z0-9-_]{0,62}`.
pub fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A partial settings update (`PATCH`): absent fields keep their value.
pub use trellis_types::SettingsPatch;

fn validate_patch(patch: &SettingsPatch) -> Result<()> {
    if let Some(timeout_ms) = patch.timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms)
    {
        return Err(FunctionsError::InvalidSettings(format!(
            "timeoutMs must be between 1 and {MAX_TIMEOUT_MS}"
        )));
    }
    if let Some(memory_limit_mb) = patch.memory_limit_mb
        && !(1..=MAX_MEMORY_LIMIT_MB).contains(&memory_limit_mb)
    {
        return Err(FunctionsError::InvalidSettings(format!(
            "memoryLimitMb must be between 1 and {MAX_MEMORY_LIMIT_MB}"
        )));
    }
    for host in patch.allowed_hosts.iter().flatten() {
        check_allowed_host(host)?;
    }
    Ok(())
}

/// `settings` with every field the patch names replaced.
fn apply_patch(patch: &SettingsPatch, mut settings: FunctionSettings) -> FunctionSettings {
    settings.timeout_ms = patch.timeout_ms.unwrap_or(settings.timeout_ms);
    settings.memory_limit_mb = patch.memory_limit_mb.unwrap_or(settings.memory_limit_mb);
    if let Some(allowed_hosts) = &patch.allowed_hosts {
        settings.allowed_hosts = allowed_hosts.clone();
    }
    settings.scratch_dir = patch.scratch_dir.unwrap_or(settings.scratch_dir);
    settings
}

impl Functions {
    pub fn new(store: Store, runtime: Runtime) -> Self {
        Self {
            store,
            runtime,
            records: Arc::default(),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Validates and compiles the component before storing it, so a component that
    /// cannot run is never stored.
    pub async fn upload(&self, id: &str, bytes: bytes::Bytes) -> Result<PutOutcome> {
        check_id(id)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        self.runtime.prepare(&sha256, bytes.clone()).await?;
        let outcome = self.store.put_function(id, &bytes, &sha256).await?;
        self.records.evict(id);
        Ok(outcome)
    }

    pub async fn get(&self, id: &str) -> Result<FunctionRecord> {
        check_id(id)?;
        self.store
            .get_function(id)
            .await?
            .ok_or_else(|| FunctionsError::NotFound(id.to_owned()))
    }

    pub async fn list(&self) -> Result<Vec<FunctionRecord>> {
        Ok(self.store.list_functions().await?)
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        self.records.evict(id);
        match self.store.delete_function(id).await? {
            true => Ok(()),
            false => Err(FunctionsError::NotFound(id.to_owned())),
        }
    }

    /// Applies a partial update. Validated first; then read, merged and written with
    /// a compare-and-swap, re-read and re-merged if another update landed in between,
    /// so concurrent patches of different fields all take effect.
    pub async fn update_settings(&self, id: &str, patch: SettingsPatch) -> Result<FunctionRecord> {
        validate_patch(&patch)?;
        // Each round loses only to an update that succeeded; a few rounds settle any
        // realistic contention.
        for _ in 0..8 {
            let current = self.get(id).await?;
            let settings = apply_patch(&patch, current.settings);
            let updated = self
                .store
                .update_function_settings(id, &settings, current.updated_at)
                .await?;
            self.records.evict(id);
            if let Some(updated) = updated {
                return Ok(updated);
            }
        }
        Err(FunctionsError::Internal(anyhow::anyhow!(
            "settings of `{id}` kept changing during the update"
        )))
    }

    /// Invokes the current version of `invocation.function_id`.
    /// `params` is the triggerParams object as JSON text.
    pub async fn invoke(&self, invocation: &Invocation, params: &str) -> Result<Outcome> {
        self.invoke_with_timeout(invocation, params, None).await
    }

    /// As [`Functions::invoke`], with `timeout` in place of the function's own
    /// `timeoutMs` when given (an orchestration step's `timeoutMs`).
    pub async fn invoke_with_timeout(
        &self,
        invocation: &Invocation,
        params: &str,
        timeout: Option<Duration>,
    ) -> Result<Outcome> {
        let record = match self.records.fresh(&invocation.function_id) {
            Some(record) => record,
            None => {
                let record = self.get(&invocation.function_id).await?;
                self.records.insert(record.clone());
                record
            }
        };
        let prepared = match self.runtime.cached(&record.sha256) {
            Some(prepared) => prepared,
            None => self.load(&record).await?,
        };
        let mut limits = limits(&record.settings);
        if let Some(timeout) = timeout {
            limits.timeout = timeout;
        }
        Ok(self
            .runtime
            .invoke(&prepared, &limits, invocation, params)
            .await?)
    }

    /// Loads a version this process has not seen (uploaded elsewhere, or before a
    /// restart): from the artifact cache when compiled before, else compiling.
    async fn load(&self, record: &FunctionRecord) -> Result<Arc<runtime::Prepared>> {
        let (stored, bytes) = self
            .store
            .get_function_with_bytes(&record.id)
            .await?
            .ok_or_else(|| FunctionsError::NotFound(record.id.clone()))?;
        let prepared = self
            .runtime
            .prepare(&stored.sha256, bytes.into())
            .await
            .with_context(|| format!("loading stored function `{}`", record.id))
            .map_err(FunctionsError::Internal)?;
        Ok(prepared)
    }
}

fn check_id(id: &str) -> Result<()> {
    match valid_id(id) {
        true => Ok(()),
        false => Err(FunctionsError::InvalidId(id.chars().take(80).collect())),
    }
}

/// Outbound HTTP is enforced in a later release; until then the setting is only
/// validated (by the rules that will enforce it, `runtime::outbound`) and stored, so
/// configurations written now keep working.
fn check_allowed_host(entry: &str) -> Result<()> {
    entry
        .parse::<crate::runtime::outbound::AllowEntry>()
        .map(drop)
        .map_err(FunctionsError::InvalidSettings)
}

pub fn limits(settings: &FunctionSettings) -> Limits {
    Limits {
        timeout: Duration::from_millis(settings.timeout_ms.into()),
        memory_limit_bytes: (settings.memory_limit_mb as usize) << 20,
        scratch_dir: settings.scratch_dir,
        // Validated when set, so every stored entry parses.
        allowed_hosts: settings
            .allowed_hosts
            .iter()
            .filter_map(|entry| entry.parse().ok())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_ids_follow_the_contract() {
        for id in ["echo", "fn-create-github-repo", "a", "0_x", &"a".repeat(63)] {
            assert!(valid_id(id), "{id} should be valid");
        }
        for id in ["", "-a", "_a", "Echo", "a b", "a/b", "é", &"a".repeat(64)] {
            assert!(!valid_id(id), "{id} should be invalid");
        }
    }

    #[test]
    fn allowed_hosts_accept_origins_and_wildcards_only() {
        for ok in ["https://api.github.com", "http://127.0.0.1:8099", "*.example.com"] {
            assert!(check_allowed_host(ok).is_ok(), "{ok}");
        }
        for bad in ["api.github.com", "ftp://x", "https://x/path", "*.", "https://"] {
            assert!(check_allowed_host(bad).is_err(), "{bad}");
        }
    }
}
