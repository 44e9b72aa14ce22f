//! The engine executes orchestration runs (docs/architecture.md#how-a-run-travels);
//! the runs service ([`crate::runs`]) starts, reads and decides them.
//!
//! - [`worker`]: claims due runs and drives them; [`plan`] is its state machine,
//!   [`compute`] one function call with its secrets.
//! - [`context`], [`template`], [`decision`]: the run context, `{{ path }}` params and
//!   decision steps.
//! - [`Definitions`]: the definition versions runs execute, parsed once per process.

pub mod compute;
pub mod context;
pub mod decision;
mod definitions;
pub mod plan;
pub mod template;
pub mod worker;

pub use definitions::Definitions;
pub use worker::{Worker, WorkerConfig, WorkerHandle};

use crate::functions::Functions;
use crate::secrets::Keyring;
use crate::store::Store;
use std::sync::Arc;

/// What workers share: the store, the functions they call, the keyring that opens
/// the steps' secrets, and the definitions they execute.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub functions: Functions,
    pub keyring: Arc<Keyring>,
    pub definitions: Definitions,
}

impl Engine {
    pub fn new(store: Store, functions: Functions, keyring: Arc<Keyring>) -> Self {
        Self {
            definitions: Definitions::new(store.clone()),
            store,
            functions,
            keyring,
        }
    }
}
