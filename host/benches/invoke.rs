//! In-process hot path: instantiate the `echo` component in a fresh sandbox and call
//! it, as every invocation does (no HTTP, no database). Also the cold path of loading
//! a compiled artifact from the disk cache, as after a restart.
//!
//! Needs the examples built: `cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml`.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use trellis::runtime::{Invocation, Limits, Runtime, RuntimeConfig};

fn echo_bytes() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/target/wasm32-wasip2/release/echo.wasm"
    );
    std::fs::read(path).unwrap_or_else(|error| {
        panic!("{path}: {error}; build the examples: cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml")
    })
}

fn runtime(dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        artifact_dir: dir.join("artifacts"),
        scratch_root: dir.join("scratch"),
        max_concurrency: 64,
        queue_timeout: Duration::from_secs(10),
        memory_budget_mb: 16 << 10,
    })
    .expect("runtime")
}

fn invoke_echo(c: &mut Criterion) {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = runtime(dir.path());
    let bytes = echo_bytes();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let prepared = tokio
        .block_on(runtime.prepare(&sha256, bytes.into()))
        .expect("prepare");
    let limits = Limits {
        timeout: Duration::from_secs(30),
        memory_limit_bytes: 128 << 20,
        scratch_dir: false,
        allowed_hosts: Default::default(),
    };
    let invocation = Invocation {
        function_id: "echo".into(),
        run_id: None,
        step_id: None,
        attempt: 1,
        idempotency_key: "bench".into(),
    };
    let params = json!({ "repository": "trellis", "private": true, "count": 3 }).to_string();
    c.bench_function("instantiate + call echo", |b| {
        b.to_async(&tokio).iter(|| async {
            let outcome = runtime
                .invoke(&prepared, &limits, &invocation, &params)
                .await
                .expect("invoke");
            assert_eq!(outcome.output.get(), params);
        })
    });
}

fn load_from_artifact_cache(c: &mut Criterion) {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = echo_bytes();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    tokio
        .block_on(runtime(dir.path()).prepare(&sha256, bytes.clone().into()))
        .expect("compile once");
    // A fresh runtime each iteration has nothing in memory, as after a restart.
    c.bench_function("load echo from the artifact cache (restart)", |b| {
        b.iter_batched(
            || runtime(dir.path()),
            |fresh| {
                tokio
                    .block_on(fresh.prepare(&sha256, bytes.clone().into()))
                    .expect("load");
                assert_eq!(fresh.compilations(), 0);
            },
            criterion::BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, invoke_echo, load_from_artifact_cache);
criterion_main!(benches);
