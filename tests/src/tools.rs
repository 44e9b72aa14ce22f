//! The programs some tests drive that are not ours: the `trellis` binary as users
//! run it, Python with the official MCP SDK, and Node with the TypeScript SDK and the
//! MCP conformance suite. `scripts/test` installs them under `target/tools`; a test
//! that needs a missing one fails and says how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_owned()
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is missing at {}: run scripts/test (it installs the test tools, then runs cargo test --workspace)",
        path.display()
    );
    path
}

/// The `trellis` binary cargo built beside this test (`target/<profile>/trellis`).
pub fn trellis_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/trellis
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join("trellis");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p trellis` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// Python from the venv holding `tests/mcp/requirements.txt`.
pub fn python() -> PathBuf {
    require(
        repo_root().join("target/tools/venv/bin/python"),
        "the test venv (Python MCP SDK)",
    )
}

/// `node_modules` of an npm package in the repository, installed by `npm ci`.
pub fn npm_package(dir: &str) -> PathBuf {
    let dir = repo_root().join(dir);
    require(
        dir.join("node_modules"),
        &format!("{}'s npm packages", dir.display()),
    );
    dir
}

/// Runs `command`, and fails the test with everything it printed unless it succeeds.
pub fn run_to_success(mut command: Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("starting {what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
