//! The guest SDK on its own: it carries the repository's WIT unchanged, it packages
//! as a crate, the README's first example builds outside the repository against a
//! copy of just `guest-sdk/` and runs, and records of the `log` facade reach the
//! invocation's logs.

// In a test a panic is the failure report; the assertion messages carry the context.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use trellis_client::{LogLevel, LogSource};
use trellis_tests::tools::{repo_root, run_to_success};
use trellis_tests::{Backend, TestServer, component};

/// Every file under `dir`, by its path relative to `dir`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// The SDK generates its bindings from `guest-sdk/wit/` so that it builds without the
/// rest of the repository; the host serves `wit/`. A difference would build guests
/// against a contract the host does not serve.
#[test]
fn the_sdk_carries_the_repository_wit_unchanged() {
    let root = repo_root();
    let canonical = tree(&root.join("wit"));
    let copy = tree(&root.join("guest-sdk/wit"));
    assert!(!canonical.is_empty(), "wit/ holds the world");
    let names = |files: &BTreeMap<PathBuf, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&canonical),
        names(&copy),
        "wit/ and guest-sdk/wit/ hold different files: copy wit/ over guest-sdk/wit/"
    );
    for (name, bytes) in &canonical {
        assert!(
            copy[name] == *bytes,
            "guest-sdk/wit/{} differs from wit/{0}: copy wit/ over guest-sdk/wit/",
            name.display()
        );
    }
}

/// `target/<name>`: a build directory of its own that later runs reuse, so they are not
/// cold builds.
fn target_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target
    exe.ancestors()
        .nth(3)
        .expect("tests run from target/<profile>/deps")
        .join(name)
}

/// The cargo that runs this test, without the flags meant for the host build. The
/// toolchain is passed through: `RUSTUP_TOOLCHAIN`, which rustup sets, is inherited.
fn cargo(target_dir: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    command
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (relative, bytes) in tree(from) {
        let path = to.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// The body of the first fenced block of `language` in `markdown`.
fn first_block<'a>(markdown: &'a str, language: &str) -> &'a str {
    let fence = format!("```{language}\n");
    let start = markdown
        .find(&fence)
        .unwrap_or_else(|| panic!("no {language} block"))
        + fence.len();
    let length = markdown[start..].find("```").unwrap();
    &markdown[start..start + length]
}

/// `cargo package` builds each crate from what it would publish, so this fails if a
/// file the build needs (the WIT above all) is left out, or if either crate reaches
/// outside its folder. `--allow-dirty`: the contents are the point, not git's state.
#[test]
fn the_sdk_and_its_macro_package_and_build_as_crates() {
    let mut command = cargo(&target_dir("sdk-package"));
    command
        .args([
            "package",
            "--allow-dirty",
            "-p",
            "trellis-guest",
            "-p",
            "trellis-guest-macros",
        ])
        .current_dir(repo_root());
    run_to_success(command, "cargo package of the guest SDK");
}

/// The README's first example, as written, next to a copy of just `guest-sdk/` in a
/// directory outside the repository (laid out as the README's `path` expects:
/// `trellis/guest-sdk` beside `my-fn`), built for `wasm32-wasip2`, uploaded and
/// invoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_builds_outside_the_repository_and_runs() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("guest-sdk/README.md")).unwrap();
    let (manifest, code) = (first_block(&readme, "toml"), first_block(&readme, "rust"));
    let name = manifest
        .lines()
        .find_map(|line| line.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the example's Cargo.toml names its package");

    let outside = tempfile::tempdir().unwrap();
    copy_dir(&root.join("guest-sdk"), &outside.path().join("trellis/guest-sdk"));
    let crate_dir = outside.path().join(name);
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::write(crate_dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(crate_dir.join("src/lib.rs"), code).unwrap();
    // What an author would pin too: the toolchain with wasm32-wasip2 (it also holds
    // when no RUSTUP_TOOLCHAIN is passed through). The lockfile of functions/ seeds
    // the resolution with versions already built and cached, so the build needs no
    // fresh resolution against the registry.
    std::fs::copy(
        root.join("rust-toolchain.toml"),
        crate_dir.join("rust-toolchain.toml"),
    )
    .unwrap();
    std::fs::copy(root.join("functions/Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    // The examples' build directory: same lockfile, target and profile, so only the
    // example and the SDK copy are compiled, not every dependency again.
    let target = root.join("functions/target");
    let mut command = cargo(&target);
    command
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir);
    run_to_success(command, "building the README example outside the repository");
    let wasm = target.join(format!("wasm32-wasip2/release/{}.wasm", name.replace('-', "_")));
    let wasm = std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));

    let server = TestServer::start(Backend::Sqlite).await;
    server.client.upload_function(name, wasm).await.unwrap();
    let result = server
        .client
        .invoke_function(name, &json!({ "org": "acme", "name": "billing" }))
        .await
        .unwrap();
    assert_eq!(
        result.output,
        json!({ "url": "https://github.com/acme/billing", "described": false })
    );
    let logs: Vec<_> = result
        .logs
        .iter()
        .map(|e| (e.level, e.source, e.message.as_str()))
        .collect();
    assert_eq!(
        logs,
        [(
            LogLevel::Info,
            LogSource::Log,
            "creating acme/billing (attempt 1)"
        )]
    );
}

/// A module that knows only the `log` crate, as a dependency would, logs once per
/// level; each record arrives in the invocation's logs at its level, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_facade_records_reach_the_invocation_logs_at_their_level() {
    let server = TestServer::start(Backend::Sqlite).await;
    server
        .client
        .upload_function("log-facade", component("log-facade"))
        .await
        .unwrap();
    let result = server
        .client
        .invoke_function("log-facade", &json!({ "subject": "the ledger" }))
        .await
        .unwrap();
    assert_eq!(result.output, json!({ "subject": "the ledger" }));
    let logs: Vec<_> = result
        .logs
        .iter()
        .map(|e| (e.level, e.source, e.message.as_str()))
        .collect();
    assert_eq!(
        logs,
        [
            (LogLevel::Trace, LogSource::Log, "tracing the ledger"),
            (LogLevel::Debug, LogSource::Log, "debugging the ledger"),
            (LogLevel::Info, LogSource::Log, "working on the ledger"),
            (LogLevel::Warn, LogSource::Log, "the ledger looks odd"),
            (LogLevel::Error, LogSource::Log, "the ledger went wrong"),
        ]
    );
}
