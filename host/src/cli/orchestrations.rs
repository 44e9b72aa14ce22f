//! `trellis orchestrations …`. Definitions are JSON, from `-f FILE` (`-` for stdin),
//! `@file` or inline; output is masked, as every API read is.

use super::output::{self, Format, Table};
use super::{Connection, read_json};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use trellis_client::{Orchestration, Step};

#[derive(Subcommand)]
pub enum OrchestrationsCommand {
    /// Create from a definition `{ name, description?, steps }`.
    Create {
        #[command(flatten)]
        definition: DefinitionArg,
    },
    /// List orchestrations.
    List,
    /// Show one orchestration and its steps.
    Get { id: String },
    /// Replace a definition (send secrets back as read to keep them, omit to remove).
    Update {
        id: String,
        #[command(flatten)]
        definition: DefinitionArg,
    },
    /// Delete an orchestration (its runs go on).
    Delete { id: String },
}

/// Where a definition comes from.
#[derive(Args)]
pub struct DefinitionArg {
    /// The definition file; `-` reads stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,

    /// Or the definition itself: inline JSON or `@file.json` (not for secrets: an
    /// inline argument shows in `ps` and the shell history).
    #[arg(conflicts_with = "file", value_name = "DEFINITION")]
    inline: Option<String>,
}

impl DefinitionArg {
    fn read(&self) -> Result<serde_json::Value> {
        let arg = match (&self.file, &self.inline) {
            (Some(file), _) if file == "-" => "-".to_owned(),
            (Some(file), _) => format!("@{file}"),
            (None, Some(inline)) => inline.clone(),
            (None, None) => bail!("give the definition: -f FILE (or - for stdin)"),
        };
        Ok(read_json(Some(&arg), "the definition")?.expect("an argument was given"))
    }
}

impl OrchestrationsCommand {
    pub async fn run(self, Connection { client, format }: Connection) -> Result<()> {
        match self {
            Self::Create { definition } => {
                show(format, &client.create_orchestration(&definition.read()?).await?)
            }
            Self::List => {
                let orchestrations = client.list_orchestrations().await?;
                if format == Format::Json {
                    return output::json(&trellis_client::List { data: orchestrations });
                }
                let mut table = Table::new(["ID", "NAME", "VERSION", "STEPS", "UPDATED"]);
                for orchestration in &orchestrations {
                    table.row([
                        orchestration.id.clone(),
                        orchestration.definition.name.clone(),
                        orchestration.version.to_string(),
                        orchestration.definition.steps.len().to_string(),
                        output::time(orchestration.updated_at),
                    ]);
                }
                table.print();
                Ok(())
            }
            Self::Get { id } => show(format, &client.get_orchestration(&id).await?),
            Self::Update { id, definition } => show(
                format,
                &client.update_orchestration(&id, &definition.read()?).await?,
            ),
            Self::Delete { id } => {
                client.delete_orchestration(&id).await?;
                if format == Format::Table {
                    println!("deleted orchestration {id}");
                }
                Ok(())
            }
        }
    }
}

/// The header, then one line per step: what it does, where it goes, which secrets it
/// holds (names only; values are never shown).
fn show(format: Format, orchestration: &Orchestration) -> Result<()> {
    if format == Format::Json {
        return output::json(orchestration);
    }
    output::fields(&[
        ("id", orchestration.id.clone()),
        ("name", orchestration.definition.name.clone()),
        ("version", orchestration.version.to_string()),
        ("updated", output::time(orchestration.updated_at)),
    ]);
    println!();
    let mut table = Table::new(["STEP", "TYPE", "DOES", "NEXT", "SECRETS"]);
    for step in &orchestration.definition.steps {
        let (does, secrets) = match step {
            Step::Compute(compute) => (
                format!("calls {}", compute.function_id),
                compute
                    .encrypted_params
                    .iter()
                    .flatten()
                    .filter(|(_, entry)| entry.encrypted == Some(true))
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Step::Approval(approval) => (
                approval
                    .message
                    .clone()
                    .unwrap_or_else(|| "waits for approval".into()),
                String::new(),
            ),
            Step::Decision(decision) => (
                format!(
                    "{} case(s), else {}",
                    decision.cases.len(),
                    decision.default_next_step_id
                ),
                String::new(),
            ),
            Step::Delay(delay) => (format!("waits {}ms", delay.delay_ms), String::new()),
        };
        table.row([
            step.id().to_owned(),
            step.kind().to_string(),
            does,
            output::or_dash(step.next_step_id()),
            if secrets.is_empty() { "-".into() } else { secrets },
        ]);
    }
    table.print();
    Ok(())
}
