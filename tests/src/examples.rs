//! The example and hostile functions in `functions/` (their own workspace, target
//! `wasm32-wasip2`), built the first time a test asks for them, so that `cargo test`
//! on any package of a fresh clone finds them.
//!
//! Shared, as this one file, by `trellis-tests` and the `trellis` package's own
//! integration tests (`host/tests/`), which include it by path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the components are, built first if needed: `functions/target/
/// wasm32-wasip2/release`, each `functions/<name>` as `<name with _>.wasm`.
///
/// Cargo decides what is stale, so a change to a function, the guest SDK or the WIT
/// is picked up; the build runs once per test process, and cargo's own lock on
/// `functions/target` serialises test processes that build at the same time.
pub fn dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(functions.join("Cargo.toml"))
            // The test's own build settings must not reach the wasm build.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .current_dir(&functions)
            .status()
            .expect("running cargo to build functions/");
        assert!(
            status.success(),
            "building functions/ for wasm32-wasip2 failed (`rustup toolchain install` adds the target)"
        );
        functions.join("target/wasm32-wasip2/release")
    })
}

/// The bytes of the component built from `functions/<name>`.
pub fn component(name: &str) -> Vec<u8> {
    let path = dir().join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}
