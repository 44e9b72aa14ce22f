//! Functions as a capability: upload (validate, compile, store), settings, invoke.
//! The REST API, the MCP tools (through the API), the CLI's server side and the
//! orchestration engine all go through here; below it are the runtime (wasmtime)
//! and the store.
//!
//! - [`settings`]: checking and applying a settings `PATCH`, and the limits a call
//!   runs under.
//! - [`records`]: the records of recently invoked functions, kept for a second.

mod records;
mod settings;

/// What callers of the service see of the runtime and the store: the invocation
/// they describe, the record they get back, and why a call failed.
pub use crate::runtime::{Invocation, InvokeError, LogEntry, Outcome};
pub use crate::store::{FunctionRecord, PutOutcome};

use crate::runtime::{self, Allocator, PrepareError, Runtime, ValidationError};
use crate::store::Store;
use anyhow::Context;
use records::RecordCache;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use trellis_types::SettingsPatch;

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

/// Compare-and-swap rounds a settings update makes before giving up. Each round
/// loses only to an update that succeeded, so a few settle any realistic contention.
const SETTINGS_UPDATE_ROUNDS: usize = 8;

/// How much of an invalid functionId an error repeats: a valid one has at most 63
/// characters, so a near miss is shown whole, and a runaway path segment is not.
const MAX_ECHOED_ID_CHARS: usize = 80;

#[derive(Clone)]
pub struct Functions {
    store: Store,
    runtime: Runtime,
    records: Arc<RecordCache>,
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

/// What `/metrics` reports about this node's runtime.
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    /// Components compiled by this process (artifact cache misses).
    pub compilations: u64,
    /// Components loaded from the on-disk artifact cache without compiling.
    pub artifact_cache_hits: u64,
    /// Invocations holding a slot now.
    pub in_flight: u64,
    /// Whether the pooling allocator is in use (else on-demand allocation).
    pub pooling_allocator: bool,
}

impl Functions {
    pub fn new(store: Store, runtime: Runtime) -> Self {
        Self {
            store,
            runtime,
            records: Arc::default(),
        }
    }

    pub fn metrics(&self) -> Metrics {
        let runtime = &self.runtime;
        Metrics {
            compilations: runtime.compilations(),
            artifact_cache_hits: runtime.artifact_cache_hits(),
            in_flight: runtime.in_flight(),
            pooling_allocator: runtime.allocator() == Allocator::Pooling,
        }
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
        let deleted = self.store.delete_function(id).await;
        // After the delete: an invoke that read the record just before it put it
        // back otherwise, to be served until it aged.
        self.records.evict(id);
        match deleted? {
            true => Ok(()),
            false => Err(FunctionsError::NotFound(id.to_owned())),
        }
    }

    /// Applies a partial update. Validated first; then read, merged and written with
    /// a compare-and-swap, re-read and re-merged if another update landed in between,
    /// so concurrent patches of different fields all take effect.
    pub async fn update_settings(&self, id: &str, patch: SettingsPatch) -> Result<FunctionRecord> {
        settings::validate_patch(&patch)?;
        for _ in 0..SETTINGS_UPDATE_ROUNDS {
            let current = self.get(id).await?;
            let settings = settings::apply_patch(&patch, current.settings);
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
                // A function deleted through another node is not served while its
                // refresh keeps failing; after another error the aged record stays
                // for the grace period, sparing a struggling database the reads.
                let record = self.get(&invocation.function_id).await.inspect_err(|error| {
                    if matches!(error, FunctionsError::NotFound(_)) {
                        self.records.evict(&invocation.function_id);
                    }
                })?;
                self.records.insert(record.clone());
                record
            }
        };
        let prepared = match self.runtime.cached(&record.sha256) {
            Some(prepared) => prepared,
            None => self.load(&record).await?,
        };
        let mut limits = settings::limits(&record.settings);
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
        false => Err(FunctionsError::InvalidId(
            id.chars().take(MAX_ECHOED_ID_CHARS).collect(),
        )),
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
}
