//! The store conformance suite: every case is written once and runs against both
//! backends (`sqlite::*` and `postgres::*`), each on a fresh database, so the two
//! implementations behave the same. PostgreSQL must be running; see
//! `trellis_tests::db` for how to point the tests at it.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use trellis::store::{
    CancelOutcome, DecideOutcome, Decision, FunctionSettings, OrchestrationRecord, PutOutcome, RunRecord,
    RunStatus, StepRecord, StepStatus, Store, StoredDefinition, Transition, UpdateOutcome,
};

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
    create_orchestration_stores_version_one_verbatim,
    create_orchestration_rejects_a_used_id,
    large_orchestration_round_trips,
    missing_orchestration_is_absent_everywhere,
    update_orchestration_adds_a_version_and_keeps_the_old,
    stale_update_conflicts_and_writes_nothing,
    concurrent_updates_of_one_version_let_one_win,
    delete_orchestration_keeps_its_versions,
    list_orchestrations_is_ordered_by_creation,
    definitions_page_walks_every_version,
    replace_definition_swaps_only_the_expected_text,
    a_new_run_is_claimed_once_and_leased,
    transitions_are_fenced_on_the_lease_and_the_status,
    an_expired_lease_is_taken_over_and_the_old_holder_is_refused,
    concurrent_claims_never_share_a_run,
    released_leases_are_due_at_once_and_only_the_workers_own,
    a_waiting_approval_is_decided_once,
    cancelling_ends_an_unfinished_run_once,
    runs_list_newest_first_by_status,
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
        .update_function_settings("fn-a", &custom_settings(), created.updated_at)
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
        store
            .update_function_settings("nope", &custom_settings(), chrono::Utc::now())
            .await?,
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
        .update_function_settings("fn-a", &custom_settings(), created.updated_at)
        .await?
        .context("settings update of an existing function")?;
    assert_eq!(updated.settings, custom_settings());
    assert_eq!(updated.version, 1, "settings are not code: no new version");
    assert_eq!(updated.sha256, created.sha256);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get_function("fn-a").await?, Some(updated.clone()));

    // A write based on the older read loses, and changes nothing.
    let stale = store
        .update_function_settings("fn-a", &FunctionSettings::default(), created.updated_at)
        .await?;
    assert_eq!(stale, None, "a stale updated_at must not overwrite");
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
    let created = store.put_function("fn-a", &wasm(1), &sha(1)).await?.into_record();
    let before = store
        .update_function_settings("fn-a", &custom_settings(), created.updated_at)
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

/// A definition as the API would store it: JSON text whose exact bytes (spacing, key
/// order, non-ASCII) must survive the store, because key rotation compares them.
fn definition(name: &str) -> String {
    format!(
        r#"{{ "name": "{name}", "description": "Grüße — 日本語 🚀",  "steps":[{{"id":"s1","type":"compute","functionId":"fn-a","encryptedParams":{{"TOKEN":{{"value":"aXY=:Y3Q=:dGFn","encrypted":true,"keyVersion":1}}}}}}] }}"#
    )
}

async fn create_orchestration_stores_version_one_verbatim(store: Store, _url: &str) -> Result<()> {
    let created = store.create_orchestration("orch-a", &definition("a1")).await?;
    assert_eq!(created.id, "orch-a");
    assert_eq!(created.version, 1);
    assert_eq!(created.definition, definition("a1"));
    assert_eq!(created.created_at, created.updated_at);

    assert_eq!(store.get_orchestration("orch-a").await?, Some(created));
    assert_eq!(
        store.get_orchestration_version("orch-a", 1).await?,
        Some(StoredDefinition {
            orchestration_id: "orch-a".into(),
            version: 1,
            definition: definition("a1"),
        })
    );
    Ok(())
}

async fn create_orchestration_rejects_a_used_id(store: Store, _url: &str) -> Result<()> {
    let created = store.create_orchestration("orch-a", &definition("a1")).await?;
    let error = store
        .create_orchestration("orch-a", &definition("other"))
        .await
        .expect_err("an existing id cannot be created again");
    assert!(
        !format!("{error:#}").contains("other"),
        "errors never show the definition: {error:#}"
    );
    assert_eq!(store.get_orchestration("orch-a").await?, Some(created));

    // Nor can a deleted one: runs pinned to its versions must keep reading what they
    // started with.
    assert!(store.delete_orchestration("orch-a").await?);
    ensure!(
        store
            .create_orchestration("orch-a", &definition("other"))
            .await
            .is_err(),
        "the id of a deleted orchestration cannot be reused"
    );
    assert_eq!(store.get_orchestration("orch-a").await?, None);
    let kept = store
        .get_orchestration_version("orch-a", 1)
        .await?
        .context("kept")?;
    assert_eq!(kept.definition, definition("a1"));
    Ok(())
}

async fn large_orchestration_round_trips(store: Store, _url: &str) -> Result<()> {
    // Many steps, each with a few encrypted params, make a definition of a few hundred
    // KiB; over 1 MiB of one- to four-byte characters and JSON escapes leaves a margin.
    let filler = "aé日🚀\\\"".repeat(100_000);
    let big = format!(r#"{{"name":"big","blob":"{filler}"}}"#);
    assert!(big.len() >= 1024 * 1024);
    let created = store.create_orchestration("orch-big", &big).await?;
    assert!(created.definition == big);
    let stored = store.get_orchestration("orch-big").await?.context("exists")?;
    assert!(stored.definition == big, "1 MiB of text comes back unchanged");
    let page = store.definitions_page(None, 10).await?;
    ensure!(
        page.len() == 1 && page[0].definition == big,
        "the walk reads it unchanged too"
    );
    assert!(
        store.replace_definition("orch-big", 1, &big, "{}").await?,
        "a swap compares all of it"
    );
    Ok(())
}

async fn missing_orchestration_is_absent_everywhere(store: Store, _url: &str) -> Result<()> {
    assert_eq!(store.get_orchestration("nope").await?, None);
    assert_eq!(store.get_orchestration_version("nope", 1).await?, None);
    assert_eq!(
        store.update_orchestration("nope", 1, &definition("x")).await?,
        UpdateOutcome::NotFound
    );
    assert!(!store.delete_orchestration("nope").await?);
    assert!(!store.replace_definition("nope", 1, "", &definition("x")).await?);
    assert!(store.list_orchestrations().await?.is_empty());
    assert!(store.definitions_page(None, 10).await?.is_empty());
    Ok(())
}

async fn update_orchestration_adds_a_version_and_keeps_the_old(store: Store, _url: &str) -> Result<()> {
    let created = store.create_orchestration("orch-a", &definition("a1")).await?;
    let outcome = store.update_orchestration("orch-a", 1, &definition("a2")).await?;
    let UpdateOutcome::Updated(updated) = outcome else {
        panic!("update expecting the current version should succeed, got {outcome:?}");
    };
    assert_eq!(updated.id, "orch-a");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.definition, definition("a2"));
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);

    assert_eq!(store.get_orchestration("orch-a").await?, Some(updated));
    let v1 = store
        .get_orchestration_version("orch-a", 1)
        .await?
        .context("v1 kept")?;
    assert_eq!(v1.definition, definition("a1"), "runs pinned to v1 still read v1");
    let v2 = store
        .get_orchestration_version("orch-a", 2)
        .await?
        .context("v2")?;
    assert_eq!(v2.definition, definition("a2"));
    assert_eq!(store.get_orchestration_version("orch-a", 3).await?, None);
    Ok(())
}

async fn stale_update_conflicts_and_writes_nothing(store: Store, _url: &str) -> Result<()> {
    store.create_orchestration("orch-a", &definition("a1")).await?;
    let UpdateOutcome::Updated(current) = store.update_orchestration("orch-a", 1, &definition("a2")).await?
    else {
        panic!("first update succeeds");
    };
    for expected in [1, 3] {
        assert_eq!(
            store
                .update_orchestration("orch-a", expected, &definition("a3"))
                .await?,
            UpdateOutcome::Conflict { current_version: 2 },
            "expecting version {expected}"
        );
    }
    assert_eq!(store.get_orchestration("orch-a").await?, Some(current));
    assert_eq!(store.get_orchestration_version("orch-a", 3).await?, None);
    Ok(())
}

async fn concurrent_updates_of_one_version_let_one_win(store: Store, _url: &str) -> Result<()> {
    store.create_orchestration("orch-race", &definition("v1")).await?;
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update_orchestration("orch-race", 1, &definition(&format!("racer-{i}")))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await?? {
            UpdateOutcome::Updated(record) => winners.push(record),
            UpdateOutcome::Conflict { current_version } => {
                ensure!(current_version == 2, "conflict at version {current_version}")
            }
            UpdateOutcome::NotFound => panic!("the orchestration exists"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update of version 1 wins");
    let winner = winners.remove(0);
    assert_eq!(winner.version, 2);
    assert_eq!(store.get_orchestration("orch-race").await?, Some(winner));
    assert_eq!(store.get_orchestration_version("orch-race", 3).await?, None);
    Ok(())
}

async fn delete_orchestration_keeps_its_versions(store: Store, _url: &str) -> Result<()> {
    store.create_orchestration("orch-a", &definition("a1")).await?;
    store.update_orchestration("orch-a", 1, &definition("a2")).await?;
    let other = store.create_orchestration("orch-b", &definition("b1")).await?;

    assert!(store.delete_orchestration("orch-a").await?);
    assert_eq!(store.get_orchestration("orch-a").await?, None);
    for (version, name) in [(1, "a1"), (2, "a2")] {
        let kept = store
            .get_orchestration_version("orch-a", version)
            .await?
            .with_context(|| format!("version {version} outlives the orchestration"))?;
        assert_eq!(kept.definition, definition(name));
    }
    assert!(
        !store.delete_orchestration("orch-a").await?,
        "second delete finds nothing"
    );
    assert_eq!(
        store.update_orchestration("orch-a", 2, &definition("a3")).await?,
        UpdateOutcome::NotFound
    );
    assert_eq!(store.get_orchestration_version("orch-a", 3).await?, None);
    assert_eq!(store.list_orchestrations().await?, [other]);
    Ok(())
}

async fn list_orchestrations_is_ordered_by_creation(store: Store, _url: &str) -> Result<()> {
    let mut current: Vec<OrchestrationRecord> = Vec::new();
    // Creation order differs from id order, so the listing must follow the timestamps.
    for id in ["orch-c", "orch-a", "orch-d", "orch-b"] {
        current.push(store.create_orchestration(id, &definition(id)).await?);
    }
    // An update moves neither the orchestration in the list nor its created_at.
    let UpdateOutcome::Updated(updated) = store.update_orchestration("orch-a", 1, &definition("a2")).await?
    else {
        panic!("update succeeds");
    };
    current[1] = updated;
    assert!(store.delete_orchestration("orch-d").await?);
    current.remove(2);
    // Two creations can share a microsecond; the id orders those.
    current.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));

    let listed = store.list_orchestrations().await?;
    assert_eq!(
        listed, current,
        "current versions, in creation order, without the deleted one"
    );
    Ok(())
}

async fn definitions_page_walks_every_version(store: Store, _url: &str) -> Result<()> {
    // "orch-b" < "orch_a" in byte order but not in most locales' collations: the walk
    // must order ids the same way on both backends.
    let versions = [("orch_a", 3), ("orch-b", 1), ("orch-c", 2), ("orch-deleted", 2)];
    let mut expected = Vec::new();
    for (id, count) in versions {
        store
            .create_orchestration(id, &definition(&format!("{id} v1")))
            .await?;
        for version in 2..=count {
            let name = format!("{id} v{version}");
            let outcome = store
                .update_orchestration(id, version - 1, &definition(&name))
                .await?;
            ensure!(matches!(outcome, UpdateOutcome::Updated(_)), "{outcome:?}");
        }
        for version in 1..=count {
            expected.push(StoredDefinition {
                orchestration_id: id.into(),
                version,
                definition: definition(&format!("{id} v{version}")),
            });
        }
    }
    assert!(store.delete_orchestration("orch-deleted").await?);
    expected.sort_by(|a, b| {
        (a.orchestration_id.as_bytes(), a.version).cmp(&(b.orchestration_id.as_bytes(), b.version))
    });

    let mut walked = Vec::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let page = store
            .definitions_page(after.as_ref().map(|(id, v)| (id.as_str(), *v)), 2)
            .await?;
        ensure!(page.len() <= 2, "a page holds at most the limit: {}", page.len());
        let Some(last) = page.last() else { break };
        after = Some((last.orchestration_id.clone(), last.version));
        walked.extend(page);
    }
    assert_eq!(
        walked, expected,
        "every version once, deleted ones included, in key order"
    );
    Ok(())
}

async fn replace_definition_swaps_only_the_expected_text(store: Store, _url: &str) -> Result<()> {
    store.create_orchestration("orch-a", &definition("a1")).await?;
    let UpdateOutcome::Updated(current) = store.update_orchestration("orch-a", 1, &definition("a2")).await?
    else {
        panic!("update succeeds");
    };

    // Re-encrypting an old version touches only that version.
    assert!(
        store
            .replace_definition("orch-a", 1, &definition("a1"), &definition("a1 rewrapped"))
            .await?
    );
    let v1 = store
        .get_orchestration_version("orch-a", 1)
        .await?
        .context("v1")?;
    assert_eq!(v1.definition, definition("a1 rewrapped"));
    assert_eq!(store.get_orchestration("orch-a").await?, Some(current.clone()));

    // A swap based on text that has since changed writes nothing.
    assert!(
        !store
            .replace_definition("orch-a", 1, &definition("a1"), &definition("lost"))
            .await?
    );
    let v1 = store
        .get_orchestration_version("orch-a", 1)
        .await?
        .context("v1")?;
    assert_eq!(v1.definition, definition("a1 rewrapped"));
    assert!(
        !store
            .replace_definition("orch-a", 3, &definition("a2"), &definition("lost"))
            .await?,
        "no such version"
    );

    // The current version, as get sees it; and versions of deleted orchestrations too.
    assert!(
        store
            .replace_definition("orch-a", 2, &definition("a2"), &definition("a2 rewrapped"))
            .await?
    );
    let read = store.get_orchestration("orch-a").await?.context("exists")?;
    assert_eq!(read.definition, definition("a2 rewrapped"));
    assert_eq!(
        read.updated_at, current.updated_at,
        "the definition means the same"
    );
    assert!(store.delete_orchestration("orch-a").await?);
    assert!(
        store
            .replace_definition("orch-a", 2, &definition("a2 rewrapped"), &definition("a2 again"))
            .await?
    );
    let v2 = store
        .get_orchestration_version("orch-a", 2)
        .await?
        .context("v2")?;
    assert_eq!(v2.definition, definition("a2 again"));
    Ok(())
}

// Runs: the engine's durable state. Times are fixed, never the clock, so what is due
// is decided by the case alone.

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

/// A new pending run of `orch-a`, due at second 0, created at second `created`.
fn new_run(id: &str, created: i64) -> RunRecord {
    RunRecord {
        due_at: Some(at(0)),
        ..RunRecord::pending(id.into(), "orch-a".into(), 1, r#"{"n":1}"#.into(), at(created))
    }
}

fn running_step(id: &str, attempts: i64) -> StepRecord {
    StepRecord {
        step_id: id.into(),
        execution: 1,
        status: StepStatus::Running,
        attempts,
        output: None,
        error: None,
        logs: None,
        started_at: Some(at(1)),
        finished_at: None,
    }
}

/// The transition a worker writes when it starts step `s1` of a running run.
fn start_step(owner: &str, due: i64) -> Transition {
    Transition {
        expected: RunStatus::Running,
        status: RunStatus::Running,
        current_step: Some("s1".into()),
        step_executions: 1,
        due_at: Some(at(due)),
        lease_owner: Some(owner.into()),
        error: None,
        steps: vec![running_step("s1", 1)],
    }
}

async fn run_of(store: &Store, id: &str) -> Result<(RunRecord, Vec<StepRecord>)> {
    store
        .get_run(id)
        .await?
        .with_context(|| format!("run {id} is stored"))
}

async fn a_new_run_is_claimed_once_and_leased(store: Store, _url: &str) -> Result<()> {
    store.create_run(&new_run("run-1", 0)).await?;
    assert_eq!(run_of(&store, "run-1").await?, (new_run("run-1", 0), Vec::new()));

    let claim = store.claim_runs("a#1", 10, at(1), at(31)).await?;
    assert_eq!(claim.runs.len(), 1);
    let claimed = &claim.runs[0];
    assert_eq!(claimed.previous_owner, None, "nobody held it before");
    assert_eq!(
        claimed.run.status,
        RunStatus::Running,
        "a claimed pending run runs"
    );
    assert_eq!(claimed.run.lease_owner.as_deref(), Some("a#1"));
    assert_eq!(claimed.run.due_at, Some(at(31)), "due again when the lease ends");
    assert_eq!(run_of(&store, "run-1").await?.0, claimed.run);

    let again = store.claim_runs("b#1", 10, at(2), at(32)).await?;
    assert!(again.runs.is_empty(), "a leased run is nobody else's");
    assert_eq!(
        again.next_due,
        Some(at(31)),
        "the lease's end is the next thing due"
    );
    Ok(())
}

async fn transitions_are_fenced_on_the_lease_and_the_status(store: Store, _url: &str) -> Result<()> {
    store.create_run(&new_run("run-1", 0)).await?;
    store.claim_runs("a#1", 10, at(1), at(31)).await?;
    let before = run_of(&store, "run-1").await?;

    assert!(
        !store.apply("run-1", "b#1", &start_step("b#1", 31)).await?,
        "not b's run"
    );
    let stale = Transition {
        expected: RunStatus::Pending,
        ..start_step("a#1", 31)
    };
    assert!(
        !store.apply("run-1", "a#1", &stale).await?,
        "not pending any more"
    );
    assert_eq!(
        run_of(&store, "run-1").await?,
        before,
        "refused writes change nothing"
    );

    assert!(store.apply("run-1", "a#1", &start_step("a#1", 31)).await?);
    let (run, steps) = run_of(&store, "run-1").await?;
    assert_eq!(
        (run.current_step.as_deref(), run.step_executions),
        (Some("s1"), 1)
    );
    assert_eq!(steps, vec![running_step("s1", 1)]);

    // The step succeeds and the run completes, releasing it.
    let mut succeeded = running_step("s1", 1);
    succeeded.status = StepStatus::Succeeded;
    succeeded.output = Some(r#"{"ok":true}"#.into());
    succeeded.finished_at = Some(at(2));
    let done = Transition {
        expected: RunStatus::Running,
        status: RunStatus::Completed,
        current_step: None,
        step_executions: 1,
        due_at: None,
        lease_owner: None,
        error: None,
        steps: vec![succeeded.clone()],
    };
    assert!(store.apply("run-1", "a#1", &done).await?);
    let (run, steps) = run_of(&store, "run-1").await?;
    assert_eq!(
        (run.status, run.due_at, run.lease_owner),
        (RunStatus::Completed, None, None)
    );
    assert_eq!(steps, vec![succeeded]);
    assert!(
        !store.apply("run-1", "a#1", &done).await?,
        "a released run takes no more writes"
    );
    assert!(
        store
            .claim_runs("c#1", 10, at(100), at(130))
            .await?
            .runs
            .is_empty()
    );
    Ok(())
}

async fn an_expired_lease_is_taken_over_and_the_old_holder_is_refused(
    store: Store,
    _url: &str,
) -> Result<()> {
    store.create_run(&new_run("run-1", 0)).await?;
    store.claim_runs("a#1", 10, at(1), at(31)).await?;
    assert!(store.apply("run-1", "a#1", &start_step("a#1", 31)).await?);
    assert!(
        store.renew_lease("run-1", "a#1", at(41)).await?,
        "the holder renews"
    );
    assert!(
        store.claim_runs("b#1", 10, at(40), at(70)).await?.runs.is_empty(),
        "not yet expired"
    );

    let claim = store.claim_runs("b#1", 10, at(41), at(71)).await?;
    assert_eq!(claim.runs.len(), 1, "expired at second 41");
    let taken = &claim.runs[0];
    assert_eq!(taken.previous_owner.as_deref(), Some("a#1"));
    assert_eq!(taken.run.status, RunStatus::Running);
    assert_eq!(
        taken.steps,
        vec![running_step("s1", 1)],
        "with the step records as they were"
    );

    assert!(
        !store.renew_lease("run-1", "a#1", at(80)).await?,
        "a's lease is gone"
    );
    assert!(!store.apply("run-1", "a#1", &start_step("a#1", 80)).await?);
    assert_eq!(
        run_of(&store, "run-1").await?.0.lease_owner.as_deref(),
        Some("b#1")
    );
    Ok(())
}

async fn concurrent_claims_never_share_a_run(store: Store, _url: &str) -> Result<()> {
    for n in 0..40 {
        store.create_run(&new_run(&format!("run-{n:02}"), n)).await?;
    }
    let claims: Vec<_> = (0..4)
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_runs(&format!("w{worker}#1"), 15, at(50), at(80))
                    .await
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claim in claims {
        for run in claim.await??.runs {
            let stored = run_of(&store, &run.run.id).await?.0;
            assert_eq!(
                stored.lease_owner, run.run.lease_owner,
                "the claim that says so holds it"
            );
            claimed.push(run.run.id);
        }
    }
    let distinct: BTreeSet<_> = claimed.iter().collect();
    assert_eq!(distinct.len(), claimed.len(), "no run was claimed twice");
    assert_eq!(claimed.len(), 40, "and together they took every due run");
    Ok(())
}

async fn released_leases_are_due_at_once_and_only_the_workers_own(store: Store, _url: &str) -> Result<()> {
    for (n, owner) in ["w-1#1", "w-1#2", "w-10#1"].iter().enumerate() {
        let id = format!("run-{n}");
        store.create_run(&new_run(&id, n as i64)).await?;
        assert_eq!(
            store.claim_runs(owner, 1, at(1), at(31)).await?.runs[0].run.id,
            id
        );
    }
    assert_eq!(store.release_leases("w-1#", at(5)).await?, 2);
    for id in ["run-0", "run-1"] {
        let run = run_of(&store, id).await?.0;
        assert_eq!(
            (run.lease_owner, run.due_at),
            (None, Some(at(5))),
            "{id} is due at once"
        );
    }
    let kept = run_of(&store, "run-2").await?.0;
    assert_eq!(
        kept.lease_owner.as_deref(),
        Some("w-10#1"),
        "another worker's prefix"
    );
    let claim = store.claim_runs("x#1", 10, at(5), at(35)).await?;
    assert_eq!(claim.runs.len(), 2, "handed back, taken up at once");
    assert!(
        claim.runs.iter().all(|run| run.previous_owner.is_none()),
        "no takeover: given back"
    );
    Ok(())
}

async fn a_waiting_approval_is_decided_once(store: Store, _url: &str) -> Result<()> {
    store.create_run(&new_run("run-1", 0)).await?;
    store.claim_runs("a#1", 10, at(1), at(31)).await?;
    let mut waiting = running_step("gate", 0);
    waiting.status = StepStatus::Waiting;
    let wait = Transition {
        status: RunStatus::Waiting,
        current_step: Some("gate".into()),
        due_at: None,
        lease_owner: None,
        steps: vec![waiting],
        ..start_step("a#1", 0)
    };
    assert!(store.apply("run-1", "a#1", &wait).await?);

    let decision = |step: &str| Decision {
        step_id: step.into(),
        step_status: StepStatus::Succeeded,
        output: r#"{"approved":true,"decidedBy":"admin"}"#.into(),
        run_status: RunStatus::Running,
        run_error: None,
    };
    assert_eq!(
        store.decide("run-1", &decision("other"), at(2)).await?,
        DecideOutcome::NotWaiting {
            status: RunStatus::Waiting
        },
        "not the step it waits on"
    );
    assert_eq!(
        store.decide("run-1", &decision("gate"), at(3)).await?,
        DecideOutcome::Decided
    );
    let (run, steps) = run_of(&store, "run-1").await?;
    assert_eq!(
        (run.status, run.due_at, run.lease_owner),
        (RunStatus::Running, Some(at(3)), None)
    );
    assert_eq!(steps[0].status, StepStatus::Succeeded);
    assert_eq!(steps[0].output, decision("gate").output.into());
    assert_eq!(
        store.decide("run-1", &decision("gate"), at(4)).await?,
        DecideOutcome::NotWaiting {
            status: RunStatus::Running
        },
        "decided already"
    );
    assert_eq!(
        store.decide("nope", &decision("gate"), at(4)).await?,
        DecideOutcome::NotFound
    );
    Ok(())
}

async fn cancelling_ends_an_unfinished_run_once(store: Store, _url: &str) -> Result<()> {
    store.create_run(&new_run("run-1", 0)).await?;
    store.claim_runs("a#1", 10, at(1), at(31)).await?;
    assert!(store.apply("run-1", "a#1", &start_step("a#1", 31)).await?);
    let error = r#"{"code":"cancelled","message":"cancelled by a caller"}"#;
    assert_eq!(
        store.cancel_run("run-1", error, at(2)).await?,
        CancelOutcome::Cancelled
    );
    let (run, steps) = run_of(&store, "run-1").await?;
    assert_eq!(
        (run.status, run.due_at, run.lease_owner, run.error.as_deref()),
        (RunStatus::Cancelled, None, None, Some(error))
    );
    assert_eq!(steps[0].status, StepStatus::Cancelled, "its running step with it");
    assert!(
        !store.apply("run-1", "a#1", &start_step("a#1", 40)).await?,
        "the worker is fenced out"
    );
    assert_eq!(
        store.cancel_run("run-1", error, at(3)).await?,
        CancelOutcome::Finished(RunStatus::Cancelled)
    );
    assert_eq!(
        store.cancel_run("nope", error, at(3)).await?,
        CancelOutcome::NotFound
    );
    Ok(())
}

async fn runs_list_newest_first_by_status(store: Store, _url: &str) -> Result<()> {
    for n in 0..5 {
        store.create_run(&new_run(&format!("run-{n}"), n)).await?;
    }
    let mut other = new_run("elsewhere", 9);
    other.orchestration_id = "orch-b".into();
    store.create_run(&other).await?;
    store.cancel_run("run-3", "{}", at(10)).await?;

    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|run| run.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_runs("orch-a", None, 100).await?),
        ["run-4", "run-3", "run-2", "run-1", "run-0"]
    );
    assert_eq!(ids(store.list_runs("orch-a", None, 2).await?), ["run-4", "run-3"]);
    assert_eq!(
        ids(store.list_runs("orch-a", Some(RunStatus::Cancelled), 100).await?),
        ["run-3"]
    );
    assert_eq!(
        ids(store.list_runs("orch-a", Some(RunStatus::Pending), 2).await?),
        ["run-4", "run-2"]
    );
    assert!(store.list_runs("orch-c", None, 100).await?.is_empty());
    ensure!(store.get_run("nope").await?.is_none(), "an unknown run is absent");
    Ok(())
}
