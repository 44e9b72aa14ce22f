//! `trellis runs …`: start, read, follow and decide runs.

use super::output::{self, Format, Table};
use super::{Connection, read_json};
use anyhow::{Result, bail};
use clap::Subcommand;
use std::collections::HashMap;
use std::time::Duration;
use trellis_client::{Client, Run, RunFilter, RunStatus, RunStep, StepStatus};

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Start a run of an orchestration's current version.
    Start {
        orchestration: String,
        /// The run's input object: JSON, `@file.json`, or `-` for stdin (default `{}`).
        input: Option<String>,
        /// Wait until the run finishes or waits on an approval, and show it.
        #[arg(long)]
        wait: bool,
    },
    /// Show a run and its step timeline.
    Get { run: String },
    /// List an orchestration's runs, newest first.
    List {
        orchestration: String,
        /// Only runs in this status (pending, running, waiting, completed, failed, cancelled).
        #[arg(long)]
        status: Option<RunStatus>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Follow a run live, one line per step change, until it ends; exits non-zero
    /// unless it completed.
    Watch { run: String },
    /// Approve a waiting approval step.
    Approve {
        run: String,
        step: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a waiting approval step.
    Reject {
        run: String,
        step: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Cancel an unfinished run.
    Cancel { run: String },
}

/// How long one `--wait` long-poll holds; the server caps it at 60 s.
const POLL: Duration = Duration::from_secs(30);

/// How often `watch` looks at a moving run: fast enough to feel live, slow enough
/// to cost the server nothing.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// How often it looks at a run waiting on a person, which may take days.
const WATCH_WAITING_INTERVAL: Duration = Duration::from_secs(2);

impl RunsCommand {
    pub async fn run(self, Connection { client, format }: Connection) -> Result<()> {
        match self {
            Self::Start {
                orchestration,
                input,
                wait,
            } => {
                let input = read_json(input.as_deref(), "the input")?;
                let started = client.start_run(&orchestration, input.as_ref()).await?;
                if !wait {
                    return match format {
                        Format::Json => output::json(&started),
                        Format::Table => {
                            println!("started run {} ({})", started.id, started.status);
                            Ok(())
                        }
                    };
                }
                loop {
                    let run = client.wait_run(&started.id, POLL).await?;
                    if !run.status.is_active() {
                        return show(format, &run);
                    }
                }
            }
            Self::Get { run } => show(format, &client.get_run(&run).await?),
            Self::List {
                orchestration,
                status,
                limit,
            } => {
                let filter = RunFilter {
                    status,
                    limit: Some(limit),
                };
                let runs = client.list_runs(&orchestration, &filter).await?;
                if format == Format::Json {
                    return output::json(&trellis_client::List { data: runs });
                }
                let mut table = Table::new(["RUN", "STATUS", "CURRENT STEP", "STARTED", "DURATION"]);
                for run in &runs {
                    table.row([
                        run.id.clone(),
                        run.status.to_string(),
                        output::or_dash(run.current_step_id.as_deref()),
                        output::time(run.created_at),
                        output::duration(run.created_at, run.updated_at),
                    ]);
                }
                table.print();
                Ok(())
            }
            Self::Watch { run } => watch(&client, format, &run).await,
            Self::Approve { run, step, comment } => show(
                format,
                &client.approve_step(&run, &step, comment.as_deref()).await?,
            ),
            Self::Reject { run, step, comment } => show(
                format,
                &client.reject_step(&run, &step, comment.as_deref()).await?,
            ),
            Self::Cancel { run } => show(format, &client.cancel_run(&run).await?),
        }
    }
}

/// The run's header, then its step timeline.
fn show(format: Format, run: &Run) -> Result<()> {
    if format == Format::Json {
        return output::json(run);
    }
    output::fields(&[
        ("run", run.id.clone()),
        (
            "orchestration",
            format!("{} (version {})", run.orchestration_id, run.orchestration_version),
        ),
        ("status", run.status.to_string()),
        ("current step", output::or_dash(run.current_step_id.as_deref())),
        ("started", output::time(run.created_at)),
        ("duration", output::duration(run.created_at, run.updated_at)),
        ("error", error_text(run.error.as_ref())),
    ]);
    println!();
    let mut table = Table::new([
        "STEP", "TYPE", "STATUS", "ATTEMPTS", "STARTED", "DURATION", "ERROR",
    ]);
    for step in run.steps.iter().flatten() {
        table.row([
            step.id.clone(),
            step.kind.to_string(),
            step.status.to_string(),
            step.attempts.to_string(),
            output::or_dash(step.started_at.map(output::time)),
            match (step.started_at, step.finished_at) {
                (Some(start), Some(end)) => output::duration(start, end),
                _ => "-".into(),
            },
            error_code(step),
        ]);
    }
    table.print();
    Ok(())
}

fn error_code(step: &RunStep) -> String {
    output::or_dash(
        step.error
            .as_ref()
            .and_then(|error| error.get("code"))
            .and_then(|code| code.as_str()),
    )
}

/// `code: message` of a run's error, or `-`.
fn error_text(error: Option<&serde_json::Value>) -> String {
    match error {
        Some(error) => format!(
            "{}: {}",
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or_default()
        ),
        None => "-".into(),
    }
}

/// Prints a line whenever a step's status or attempt changes (with `-o json`, the
/// run's JSON on one line), until the run ends.
async fn watch(client: &Client, format: Format, run_id: &str) -> Result<()> {
    let mut seen: HashMap<String, (StepStatus, i64)> = HashMap::new();
    let mut last_status = None;
    loop {
        let run = client.get_run(run_id).await?;
        let mut changed = last_status != Some(run.status);
        for step in run.steps.iter().flatten() {
            let now = (step.status, step.attempts);
            let before = seen.insert(step.id.clone(), now);
            if before == Some(now) || (before.is_none() && step.status == StepStatus::Pending) {
                continue;
            }
            changed = true;
            if format == Format::Table {
                let attempt = match step.attempts {
                    0 | 1 => String::new(),
                    n => format!(" (attempt {n})"),
                };
                let error = match step.status {
                    StepStatus::Failed => format!("  {}", error_code(step)),
                    _ => String::new(),
                };
                println!(
                    "{}  {:<24} {}{attempt}{}",
                    output::time(step.finished_at.or(step.started_at).unwrap_or(run.updated_at)),
                    output::printable(&step.id),
                    step.status,
                    output::printable(&error)
                );
            }
        }
        last_status = Some(run.status);
        if changed && format == Format::Json {
            println!("{}", serde_json::to_string(&run)?);
        }
        if run.status.is_finished() {
            if format == Format::Table {
                println!(
                    "run {} {} after {}",
                    run.id,
                    run.status,
                    output::duration(run.created_at, run.updated_at)
                );
            }
            if run.status != RunStatus::Completed {
                bail!("run {run_id} {}: {}", run.status, error_text(run.error.as_ref()));
            }
            return Ok(());
        }
        let interval = match run.status {
            RunStatus::Waiting => WATCH_WAITING_INTERVAL,
            _ => WATCH_INTERVAL,
        };
        tokio::time::sleep(interval).await;
    }
}
