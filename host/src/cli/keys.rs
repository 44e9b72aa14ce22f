//! `trellis keys generate | status | rewrap`: key rotation for `encryptedParams`.
//! `status` and `rewrap` work on the database directly (same `DATABASE_URL` and
//! keyring as the servers), and are safe while servers run.

use crate::config::{Generate, KeyringArgs, StoreArgs};
use crate::orchestrations::keys;
use crate::secrets::Keyring;
use crate::store::Store;
use anyhow::Result;
use clap::Subcommand;

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
            Self::Status { store, keyring } => {
                let keyring = keyring.load(&store, Generate::Never)?;
                let store = Store::connect(&store.database_url()?).await?;
                print_status(&store, &keyring).await
            }
            Self::Rewrap { store, keyring } => {
                let keyring = keyring.load(&store, Generate::Never)?;
                let store = Store::connect(&store.database_url()?).await?;
                let report = keys::rewrap_all(&store, &keyring).await?;
                println!(
                    "rewrapped {} params in {} definition versions to key version {}",
                    report.params,
                    report.definitions,
                    keyring.current_version()
                );
                print_status(&store, &keyring).await?;
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

async fn print_status(store: &Store, keyring: &Keyring) -> Result<()> {
    let counts = keys::count_by_version(store).await?;
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
