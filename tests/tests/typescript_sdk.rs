//! The TypeScript SDK (`sdk/typescript`), driven by `node --test` against the real
//! server on both backends: the announcement's snippet verbatim, update semantics,
//! functions, runs and approvals, and its `TrellisError`.

use std::process::Command;
use trellis_tests::tools::{npm_package, run_to_success};
use trellis_tests::{Backend, TOKEN, TestServer, examples, on_both_backends};

async fn the_sdk_suite_passes(backend: Backend) {
    let sdk = npm_package("sdk/typescript");
    let server = TestServer::start(backend).await;
    let mut npm = Command::new("npm");
    npm.arg("test")
        .current_dir(&sdk)
        .env("TRELLIS_URL", &server.base_url)
        .env("TRELLIS_API_TOKEN", TOKEN)
        .env("TRELLIS_FUNCTIONS_DIR", examples::dir());
    let output = tokio::task::spawn_blocking(move || run_to_success(npm, "npm test in sdk/typescript"))
        .await
        .expect("npm test");
    let report = String::from_utf8_lossy(&output.stdout);
    // node --test ends with its own counts; a suite that ran nothing is a failure.
    assert!(report.contains("# fail 0"), "{report}");
    assert!(!report.contains("# pass 0"), "{report}");
}

on_both_backends!(the_sdk_suite_passes);
