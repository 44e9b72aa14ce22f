//! The store conformance suite: every case is written once and runs against both
//! backends (`sqlite::*` and `postgres::*`), each on a fresh database, so the two
//! implementations behave the same. PostgreSQL must be running; see
//! `trellis_tests::db` for how to point the tests at it.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use trellis::store::{FunctionSettings, PutOutcome, Store};

/// Generates `mod sqlite` and `mod postgres`, each with one `#[tokio::test]` per case.
/// A case is `async fn(store: Store, url: &str) -> Result<()>`: a store connected to a
/// fresh database and that database's URL, for cases that reconnect.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        conformance!(@backend sqlite, $($case),*);
        conformance!(@backend postgres, $($case),*);
    };
    (@backend $backend:ident, $($case:ident),*) => {
        mod $backend {
            use trellis::store::Store;
            use trellis_tests::db::TestDatabase;

            $(
                // Several threads, so that the concurrency cases really race.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() -> anyhow::Result<()> {
                    let db = TestDatabase::$backend().await?;
                    let store = Store::connect(db.url()).await?;
                    assert_eq!(store.backend(), stringify!($backend));
                    super::$case(store, db.url()).await
                }
            )*
        }
    };
}

conformance!(
    put_new_function_creates_version_one,
    put_same_bytes_changes_nothing,
    put_different_bytes_replaces_and_keeps_settings,
    missing_function_is_absent_everywhere,
    list_is_sorted_by_id,
    update_settings_persists_without_new_version,
    delete_removes_function,
    concurrent_puts_of_new_id_create_it_once,
    concurrent_replacements_lose_no_version,
    large_function_round_trips,
    reconnect_keeps_data,
);

/// Stands in for a SHA-256: the store trusts the caller's hash and only compares it.
fn sha(tag: u8) -> String {
    format!("{tag:02x}").repeat(32)
}

fn wasm(tag: u8) -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend(std::iter::repeat_n(tag, 100 + usize::from(tag)));
    bytes
}

fn custom_settings() -> FunctionSettings {
    FunctionSettings {
        timeout_ms: 5_000,
        memory_limit_mb: 64,
        allowed_hosts: vec!["https://api.github.com".into(), "*.example.com".into()],
        scratch_dir: true,
    }
}

async fn put_new_function_creates_version_one(store: Store, _url: &str) -> Result<()> {
    let outcome = store.put_function("fn-a", &wasm(1), &sha(1)).await?;
    let PutOutcome::Created(created) = outcome else {
        panic!("first put should create, got {outcome:?}");
    };
    assert_eq!(created.id, "fn-a");
    assert_eq!(created.version, 1);
    assert_eq!(created.sha256, sha(1));
    assert_eq!(created.size_bytes, i64::try_from(wasm(1).len())?);
    assert_eq!(created.settings, FunctionSettings::default());
    assert_eq!(
        created.settings,
        FunctionSettings {
            timeout_ms: 30_000,
            memory_limit_mb: 128,
            allowed_hosts: vec![],
            scratch_dir: false
        }
    );
    assert_eq!(created.created_at, created.updated_at);

    assert_eq!(store.get_function("fn-a").await?, Some(created.clone()));
    let (record, bytes) = store
        .get_function_with_bytes("fn-a")
        .await?
        .context("created function should be readable with its bytes")?;
    assert_eq!(record, created);
    assert_eq!(bytes, wasm(1));
    Ok(())
}

async fn put_same_bytes_changes_nothing(store: Store, _url: &str) -> Result<()> {
    let created = store.put_function("fn-a", &wasm(1), &sha(1)).await?.into_record();
    let again = store.put_function("fn-a", &wasm(1), &sha(1)).await?;
    assert_eq!(again, PutOutcome::Unchanged(created.clone()));
    assert_eq!(store.get_function("fn-a").await?, Some(created));
    Ok(())
}

async fn put_different_bytes_replaces_and_keeps_settings(store: Store, _url: &str) -> Result<()> {
    let created = store.put_function("fn-a", &wasm(1), &sha(1)).await?.into_record();
    store
        .update_function_settings("fn-a", &custom_settings())
        .await?
        .context("settings update of an existing function")?;

    let outcome = store.put_function("fn-a", &wasm(2), &sha(2)).await?;
    let PutOutcome::Replaced(replaced) = outcome else {
        panic!("put of different bytes should replace, got {outcome:?}");
    };
    assert_eq!(replaced.version, 2);
    assert_eq!(replaced.sha256, sha(2));
    assert_eq!(replaced.size_bytes, i64::try_from(wasm(2).len())?);
    assert_eq!(replaced.created_at, created.created_at);
    assert!(replaced.updated_at >= created.updated_at);
    assert_eq!(
        replaced.settings,
        custom_settings(),
        "new code keeps the function's settings"
    );

    let (record, bytes) = store
        .get_function_with_bytes("fn-a")
        .await?
        .context("replaced function should be readable")?;
    assert_eq!(record, replaced);
    assert_eq!(bytes, wasm(2));

    // Back to the first bytes is a change too: versions only go up.
    let third = store.put_function("fn-a", &wasm(1), &sha(1)).await?;
    assert!(
        matches!(third, PutOutcome::Replaced(ref r) if r.version == 3),
        "{third:?}"
    );
    Ok(())
}

async fn missing_function_is_absent_everywhere(store: Store, _url: &str) -> Result<()> {
    assert_eq!(store.get_function("nope").await?, None);
    assert_eq!(store.get_function_with_bytes("nope").await?, None);
    assert_eq!(
        store.update_function_settings("nope", &custom_settings()).await?,
        None
    );
    assert!(!store.delete_function("nope").await?);
    assert!(store.list_functions().await?.is_empty());
    Ok(())
}

async fn list_is_sorted_by_id(store: Store, _url: &str) -> Result<()> {
    let mut created = Vec::new();
    for (id, tag) in [("fn-b", 2), ("fn-c", 3), ("fn-a", 1)] {
        created.push(store.put_function(id, &wasm(tag), &sha(tag)).await?.into_record());
    }
    created.sort_by(|a, b| a.id.cmp(&b.id));
    // The records carry no bytes; that they equal what `put` returned shows the listing
    // reports the same sizes and hashes without loading the code.
    assert_eq!(store.list_functions().await?, created);
    Ok(())
}

async fn update_settings_persists_without_new_version(store: Store, _url: &str) -> Result<()> {
    let created = store.put_function("fn-a", &wasm(1), &sha(1)).await?.into_record();
    let updated = store
        .update_function_settings("fn-a", &custom_settings())
        .await?
        .context("settings update of an existing function")?;
    assert_eq!(updated.settings, custom_settings());
    assert_eq!(updated.version, 1, "settings are not code: no new version");
    assert_eq!(updated.sha256, created.sha256);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get_function("fn-a").await?, Some(updated.clone()));

    // Same bytes after a settings change: still unchanged, settings kept.
    let again = store.put_function("fn-a", &wasm(1), &sha(1)).await?;
    assert_eq!(again, PutOutcome::Unchanged(updated));
    Ok(())
}

async fn delete_removes_function(store: Store, _url: &str) -> Result<()> {
    store.put_function("fn-a", &wasm(1), &sha(1)).await?;
    store.put_function("fn-b", &wasm(2), &sha(2)).await?;
    assert!(store.delete_function("fn-a").await?);
    assert!(
        !store.delete_function("fn-a").await?,
        "second delete finds nothing"
    );
    assert_eq!(store.get_function("fn-a").await?, None);
    assert_eq!(store.get_function_with_bytes("fn-a").await?, None);
    let ids: Vec<_> = store.list_functions().await?.into_iter().map(|f| f.id).collect();
    assert_eq!(ids, ["fn-b"]);

    // The id is free again: a new upload starts over at version 1.
    let outcome = store.put_function("fn-a", &wasm(3), &sha(3)).await?;
    assert!(
        matches!(outcome, PutOutcome::Created(ref r) if r.version == 1),
        "{outcome:?}"
    );
    Ok(())
}

/// Uploads racing on the same id all run at once.
const RACERS: u8 = 8;

async fn concurrent_puts_of_new_id_create_it_once(store: Store, _url: &str) -> Result<()> {
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.put_function("fn-race", &wasm(1), &sha(1)).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await?? {
            PutOutcome::Created(_) => created += 1,
            PutOutcome::Unchanged(r) => ensure!(r.version == 1, "unchanged at version {}", r.version),
            other => panic!("identical uploads must not replace: {other:?}"),
        }
    }
    assert_eq!(created, 1, "exactly one upload creates the function");
    let stored = store
        .get_function("fn-race")
        .await?
        .context("raced function exists")?;
    assert_eq!(stored.version, 1);
    Ok(())
}

async fn concurrent_replacements_lose_no_version(store: Store, _url: &str) -> Result<()> {
    let tasks: Vec<_> = (0..RACERS)
        .map(|tag| {
            let store = store.clone();
            tokio::spawn(async move { store.put_function("fn-race", &wasm(tag), &sha(tag)).await })
        })
        .collect();
    let mut versions = BTreeSet::new();
    let mut created = 0;
    for task in tasks {
        let outcome = task.await??;
        if let PutOutcome::Created(_) = outcome {
            created += 1;
        }
        ensure!(
            !matches!(outcome, PutOutcome::Unchanged(_)),
            "distinct bytes: {outcome:?}"
        );
        versions.insert(outcome.record().version);
    }
    assert_eq!(created, 1);
    assert_eq!(
        versions,
        (1..=i64::from(RACERS)).collect(),
        "each upload got its own version"
    );

    let (record, bytes) = store
        .get_function_with_bytes("fn-race")
        .await?
        .context("exists")?;
    assert_eq!(record.version, i64::from(RACERS));
    // The stored bytes are those of whichever upload got the last version.
    assert_eq!(bytes, wasm(u8::from_str_radix(&record.sha256[..2], 16)?));
    Ok(())
}

async fn large_function_round_trips(store: Store, _url: &str) -> Result<()> {
    // Real components with a few dependencies weigh several MiB.
    let bytes: Vec<u8> = (0..8 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    store.put_function("fn-big", &bytes, &sha(9)).await?;
    let (record, stored) = store.get_function_with_bytes("fn-big").await?.context("exists")?;
    assert_eq!(record.size_bytes, i64::try_from(bytes.len())?);
    assert!(stored == bytes, "8 MiB of bytes come back unchanged");
    Ok(())
}

async fn reconnect_keeps_data(store: Store, url: &str) -> Result<()> {
    store.put_function("fn-a", &wasm(1), &sha(1)).await?;
    let before = store
        .update_function_settings("fn-a", &custom_settings())
        .await?
        .context("exists")?;
    store.close().await;

    // Connecting again re-runs the migrations, which must find nothing to do.
    let reopened = Store::connect(url).await?;
    let (record, bytes) = reopened.get_function_with_bytes("fn-a").await?.context("kept")?;
    assert_eq!(record, before);
    assert_eq!(bytes, wasm(1));
    reopened.close().await;
    Ok(())
}
