//! Orchestrations as a capability: create, read, update, delete definitions with
//! step-scoped `encryptedParams` (docs/architecture.md#secrets), sealed and masked by
//! the rules in [`crate::secrets::params`]. The REST API, and through it the MCP tools
//! and the CLI, goes through here; below it is the store.
//!
//! - [`body`]: a definition out of a request body, with errors naming step and field.
//! - [`model`]: the definition as sent, stored and read back.
//! - [`step_ids`]: ids for steps sent without one.
//! - [`validate`]: shape, references and sizes of a definition.

pub mod body;
pub mod model;
pub mod step_ids;
pub mod validate;

use crate::secrets::{Keyring, params};
use crate::store::{OrchestrationRecord, Store, UpdateOutcome};
use anyhow::Context;
use model::{Definition, Step};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OrchestrationsError {
    #[error("orchestration `{0}` not found")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] validate::InvalidDefinition),
    #[error(transparent)]
    InvalidParam(#[from] params::InvalidParam),
    #[error("step `{step}`: function `{function}` does not exist; upload it first")]
    UnknownFunction { step: String, function: String },
    #[error("orchestration `{0}` was changed by another request meanwhile; read it again and retry")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = OrchestrationsError> = std::result::Result<T, E>;

/// What every read returns: the definition with every secret masked.
pub use model::Orchestration;

#[derive(Clone)]
pub struct Orchestrations {
    store: Store,
    keyring: Arc<Keyring>,
}

impl Orchestrations {
    pub fn new(store: Store, keyring: Arc<Keyring>) -> Self {
        Self { store, keyring }
    }

    /// Stores a new definition; steps sent without an id get one.
    pub async fn create(&self, mut definition: Definition) -> Result<Orchestration> {
        validate::check_step_count(definition.steps.len())?;
        step_ids::assign(&mut definition);
        self.check(&definition).await?;
        let id = uuid::Uuid::new_v4().to_string();
        params::seal_sent(&mut definition, None, &id, &self.keyring)?;
        let record = self
            .store
            .create_orchestration(&id, &stored_text(&definition)?)
            .await?;
        masked(record)
    }

    pub async fn get(&self, id: &str) -> Result<Orchestration> {
        masked(self.current(id).await?)
    }

    pub async fn list(&self) -> Result<Vec<Orchestration>> {
        self.store
            .list_orchestrations()
            .await?
            .into_iter()
            .map(masked)
            .collect()
    }

    /// Full replace under the save rules (docs/secrets.md#updating): new secrets are
    /// sealed, `encrypted: true` entries keep the stored blob of the same step and
    /// name, omitted ones go. With `read_version`, the update is refused unless that
    /// version is still current.
    pub async fn update(
        &self,
        id: &str,
        mut definition: Definition,
        read_version: Option<i64>,
    ) -> Result<Orchestration> {
        validate::check_step_count(definition.steps.len())?;
        step_ids::assign(&mut definition);
        self.check(&definition).await?;
        let current = self.current(id).await?;
        if read_version.is_some_and(|version| version != current.version) {
            return Err(OrchestrationsError::Conflict(id.to_owned()));
        }
        let previous = parse(&current.definition)?;
        params::seal_sent(&mut definition, Some(&previous), id, &self.keyring)?;
        // Only replaces the version the blobs were taken from, so a concurrent update
        // can never be overwritten with secrets it did not see.
        match self
            .store
            .update_orchestration(id, current.version, &stored_text(&definition)?)
            .await?
        {
            UpdateOutcome::Updated(record) => masked(record),
            UpdateOutcome::NotFound => Err(OrchestrationsError::NotFound(id.to_owned())),
            UpdateOutcome::Conflict { .. } => Err(OrchestrationsError::Conflict(id.to_owned())),
        }
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        match self.store.delete_orchestration(id).await? {
            true => Ok(()),
            false => Err(OrchestrationsError::NotFound(id.to_owned())),
        }
    }

    async fn current(&self, id: &str) -> Result<OrchestrationRecord> {
        self.store
            .get_orchestration(id)
            .await?
            .ok_or_else(|| OrchestrationsError::NotFound(id.to_owned()))
    }

    /// Shape, references and sizes, then that every function exists.
    async fn check(&self, definition: &Definition) -> Result<()> {
        validate::check(definition)?;
        for step in &definition.steps {
            if let Step::Compute(compute) = step
                && self.store.get_function(&compute.function_id).await?.is_none()
            {
                return Err(OrchestrationsError::UnknownFunction {
                    step: compute.id.clone(),
                    function: compute.function_id.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Stored definitions were written by this code; failing to read one is our bug.
/// The error gives the position only: serde's message could quote stored text.
pub fn parse(text: &str) -> Result<Definition> {
    serde_json::from_str(text).map_err(|error| {
        OrchestrationsError::Internal(anyhow::anyhow!(
            "a stored definition is unreadable at line {} column {}",
            error.line(),
            error.column()
        ))
    })
}

pub(crate) fn stored_text(definition: &Definition) -> Result<String> {
    Ok(serde_json::to_string(definition).context("serialising a definition")?)
}

fn masked(record: OrchestrationRecord) -> Result<Orchestration> {
    let mut definition = parse(&record.definition)?;
    params::mask(&mut definition);
    Ok(Orchestration {
        id: record.id,
        version: record.version,
        definition,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}
