//! `trellis runs …`: start, read, follow and decide runs.

use super::{Remote, print_json, read_json};
use anyhow::{Result, bail};
use clap::Subcommand;
use std::time::Duration;

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Start a run of an orchestration's current version.
    Start {
        orchestration: String,
        /// The run's input object: JSON, `@file.json`, or `-` for stdin (default `{}`).
        input: Option<String>,
        /// Wait until the run finishes or waits on an approval, and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a run with every step.
    Get {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List an orchestration's runs, newest first.
    List {
        orchestration: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Follow a run, printing each change of status, until it finishes; exits
    /// non-zero unless it completed.
    Watch {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Approve a waiting approval step.
    Approve {
        run: String,
        step: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Reject a waiting approval step.
    Reject {
        run: String,
        step: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel an unfinished run.
    Cancel {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// How long one long-poll holds; the server caps it at 60 s.
const POLL: Duration = Duration::from_secs(30);

impl RunsCommand {
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Start {
                orchestration,
                input,
                wait,
                remote,
            } => {
                let client = remote.client()?;
                let input = read_json(input.as_deref(), "the input")?;
                let started = client.start_run(&orchestration, input.as_ref()).await?;
                if !wait {
                    return print_json(&started);
                }
                loop {
                    let run = client.wait_run(&started.id, POLL).await?;
                    if !["pending", "running"].contains(&run.status.as_str()) {
                        return print_json(&run);
                    }
                }
            }
            Self::Get { run, remote } => print_json(&remote.client()?.get_run(&run).await?),
            Self::List {
                orchestration,
                limit,
                remote,
            } => print_json(&remote.client()?.list_runs(&orchestration, limit).await?),
            Self::Watch { run, remote } => watch(&remote, &run).await,
            Self::Approve {
                run,
                step,
                comment,
                remote,
            } => print_json(
                &remote
                    .client()?
                    .approve_step(&run, &step, comment.as_deref())
                    .await?,
            ),
            Self::Reject {
                run,
                step,
                comment,
                remote,
            } => print_json(
                &remote
                    .client()?
                    .reject_step(&run, &step, comment.as_deref())
                    .await?,
            ),
            Self::Cancel { run, remote } => print_json(&remote.client()?.cancel_run(&run).await?),
        }
    }
}

async fn watch(remote: &Remote, run_id: &str) -> Result<()> {
    let client = remote.client()?;
    let mut last = String::new();
    loop {
        let run = client.wait_run(run_id, POLL).await?;
        let at = run.current_step_id.as_deref().unwrap_or("-");
        let line = format!("{} (step {at})", run.status);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        match run.status.as_str() {
            "completed" => return print_json(&run),
            "failed" | "cancelled" => {
                print_json(&run)?;
                bail!("run {run_id} {}", run.status);
            }
            // Waiting on a human: ask again after a while rather than at once.
            "waiting" => tokio::time::sleep(Duration::from_secs(1)).await,
            _ => {}
        }
    }
}
