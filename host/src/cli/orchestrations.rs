//! `trellis orchestrations …`. Definitions are JSON, given inline, as `@file` or `-`
//! (stdin); output is masked, as every API read is.

use super::{Remote, print_json, read_json};
use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum OrchestrationsCommand {
    /// Create from a definition `{ name, description?, steps }`.
    Create {
        /// The definition: `@file.json`, `-` for stdin, or inline JSON (not for
        /// secrets: an inline argument shows in `ps` and the shell history).
        definition: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List orchestrations.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one orchestration.
    Get {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Replace a definition (send secrets back as read to keep them).
    Update {
        id: String,
        /// The definition: `@file.json`, `-` for stdin, or inline JSON (not for
        /// secrets: an inline argument shows in `ps` and the shell history).
        definition: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete an orchestration (its runs go on).
    Delete {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

impl OrchestrationsCommand {
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Create { definition, remote } => {
                let definition = read_json(Some(&definition), "the definition")?.context("a definition")?;
                print_json(&remote.client()?.create_orchestration(&definition).await?)
            }
            Self::List { remote } => print_json(&remote.client()?.list_orchestrations().await?),
            Self::Get { id, remote } => print_json(&remote.client()?.get_orchestration(&id).await?),
            Self::Update {
                id,
                definition,
                remote,
            } => {
                let definition = read_json(Some(&definition), "the definition")?.context("a definition")?;
                print_json(&remote.client()?.update_orchestration(&id, &definition).await?)
            }
            Self::Delete { id, remote } => {
                remote.client()?.delete_orchestration(&id).await?;
                eprintln!("deleted {id}");
                Ok(())
            }
        }
    }
}
