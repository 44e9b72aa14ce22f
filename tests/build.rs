//! Builds the example and hostile functions in `functions/` (their own workspace,
//! target `wasm32-wasip2`) so `cargo test` alone is enough, and tells the tests
//! where the components are (`TRELLIS_FUNCTIONS_DIR`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_owned();
    let functions = root.join("functions");
    for watched in ["functions", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--manifest-path"])
        .arg(functions.join("Cargo.toml"))
        // Flags meant for the host build must not leak into the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .current_dir(&functions)
        .status()
        .expect("running cargo to build functions/");
    assert!(status.success(), "building functions/ for wasm32-wasip2 failed");

    let out = functions.join("target/wasm32-wasip2/release");
    println!("cargo:rustc-env=TRELLIS_FUNCTIONS_DIR={}", out.display());
}
