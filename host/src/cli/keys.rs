//! `trellis keys generate | status | rewrap`: key rotation for `encryptedParams`.
//! `status` and `rewrap` work on the database directly (same `DATABASE_URL` and
//! keyring as the servers) through the rotation service, and are safe while servers
//! run.

use crate::config::{Generate, KeyringArgs, StoreArgs};
use crate::secrets::{Keyring, Rotation};
use anyhow::Result;
use clap::Subcommand;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print a new random 256-bit key (standard base64) to add to SECRET_KEYS.
    Generate,
    /// Count stored encryptedParams per key version.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// Re-encrypt every param not on the current key version, so old keys can go.
    Rewrap {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
    },
}

impl KeysCommand {
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Generate => {
                println!("{}", Keyring::generate_key_base64());
                Ok(())
            }
            Self::Status { store, keyring } => print_status(&connect(&store, &keyring).await?).await,
            Self::Rewrap { store, keyring } => {
                let rotation = connect(&store, &keyring).await?;
                let report = rotation.rewrap_all().await?;
                println!(
                    "rewrapped {} params in {} definition versions to key version {}",
                    report.params,
                    report.definitions,
                    rotation.keyring().current_version()
                );
                print_status(&rotation).await?;
                if report.failures.is_empty() && !report.checkpointed {
                    eprintln!(
                        "warning: another process was using the database, so copies of the old blobs may stay in its \
                         write-ahead log until the log is emptied; run rewrap again while the servers are idle, or \
                         stop them"
                    );
                }
                if !report.failures.is_empty() {
                    for failure in &report.failures {
                        eprintln!("not rewrapped: {failure}");
                    }
                    anyhow::bail!(
                        "{} definitions could not be rewrapped; keep the old keys",
                        report.failures.len()
                    );
                }
                Ok(())
            }
        }
    }
}

async fn connect(store: &StoreArgs, keyring: &KeyringArgs) -> Result<Rotation> {
    let keyring = keyring.load(store, Generate::Never)?;
    Rotation::connect(&store.database_url()?, Arc::new(keyring)).await
}

async fn print_status(rotation: &Rotation) -> Result<()> {
    let keyring = rotation.keyring();
    let counts = rotation.count_by_version().await?;
    println!("{:<12} {:>10}  state", "key version", "params");
    let versions: std::collections::BTreeSet<_> = keyring.versions().chain(counts.keys().copied()).collect();
    for version in versions {
        let count = counts.get(&version).copied().unwrap_or(0);
        let state = match (
            version == keyring.current_version(),
            keyring.contains(version),
            count,
        ) {
            (true, _, _) => "current",
            (false, true, 0) => "unused: can be removed from the keyring",
            (false, true, _) => "in use: run `trellis keys rewrap` before removing",
            (false, false, _) => "MISSING from the keyring",
        };
        println!("{version:<12} {count:>10}  {state}");
    }
    Ok(())
}
