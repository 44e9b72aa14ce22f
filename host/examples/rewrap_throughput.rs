//! Rewrap throughput: stores orchestrations whose secrets use key 1, then times
//! `Rotation::rewrap_all` (what `trellis keys rewrap` runs) moving them to key 2, in params per second.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/trellis_bench cargo run --release -p trellis --example rewrap_throughput -- 2000`
//! (the argument is the number of orchestrations, each with 10 secrets; the database
//! should be empty and is left with the data).

use anyhow::{Context, Result};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Instant;
use trellis::orchestrations::{Orchestrations, model::Definition};
use trellis::secrets::{Keyring, Rotation};
use trellis::store::Store;

fn keyring(current: u32, versions: &[u32]) -> Result<Keyring> {
    let keys: serde_json::Map<_, _> = versions
        .iter()
        .map(|v| {
            (
                v.to_string(),
                base64::engine::general_purpose::STANDARD
                    .encode([*v as u8; 32])
                    .into(),
            )
        })
        .collect();
    let json = serde_json::json!({ "currentKeyVersion": current, "keys": keys }).to_string();
    Keyring::from_json(&json).context("keyring")
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("DATABASE_URL").context("set DATABASE_URL")?;
    let count: usize = std::env::args().nth(1).map_or(Ok(1000), |n| n.parse())?;
    let store = Store::connect(&url).await?;
    let echo = std::fs::read("functions/target/wasm32-wasip2/release/echo.wasm")
        .context("build the examples: cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml")?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&echo));
    store.put_function("echo", &echo, &sha256).await?;

    let orchestrations = Orchestrations::new(store.clone(), Arc::new(keyring(1, &[1])?));
    let params: serde_json::Map<_, _> = (0..10)
        .map(|i| {
            (
                format!("SECRET_{i}"),
                serde_json::json!({ "value": format!("value-{i}-{}", "x".repeat(60)), "encrypt": true }),
            )
        })
        .collect();
    let definition: Definition = serde_json::from_value(serde_json::json!({ "name": "bench", "steps": [
        { "id": "call", "type": "compute", "functionId": "echo", "encryptedParams": params }
    ]}))?;
    let started = Instant::now();
    for _ in 0..count {
        orchestrations.create(definition.clone()).await?;
    }
    println!(
        "stored {count} orchestrations ({} secrets) in {:.2?}",
        count * 10,
        started.elapsed()
    );

    let started = Instant::now();
    let report = Rotation::new(store, Arc::new(keyring(2, &[1, 2])?))
        .rewrap_all()
        .await?;
    let elapsed = started.elapsed();
    println!(
        "rewrapped {} params in {} definitions in {:.2?}: {:.0} params/s",
        report.params,
        report.definitions,
        elapsed,
        report.params as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
