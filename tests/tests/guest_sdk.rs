//! The guest SDK on its own: it carries the repository's WIT unchanged.

// In a test a panic is the failure report; the assertion messages carry the context.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trellis_tests::tools::repo_root;

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
