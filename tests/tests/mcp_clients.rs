//! The MCP server driven by clients we did not write: the official Python SDK over
//! stdio (`trellis mcp`) and over streamable HTTP (`/mcp`), on both backends, and the
//! MCP conformance suite against `/mcp`.

use std::process::Command;
use trellis_tests::tools::{npm_package, python, repo_root, run_to_success, trellis_binary};
use trellis_tests::{Backend, TOKEN, TestServer, component, logs, on_both_backends};

/// A server with the functions the MCP scenario uses, its log captured at DEBUG.
async fn server(backend: Backend) -> TestServer {
    logs::capture();
    let server = TestServer::start(backend).await;
    for name in ["echo", "digest"] {
        server
            .client
            .upload_function(name, component(name))
            .await
            .expect("upload");
    }
    server
}

/// Runs the Python SDK scenario (`tests/mcp/mcp_client_test.py`) over `transport`.
async fn python_scenario(server: &TestServer, transport: &str) {
    let mut script = Command::new(python());
    script
        .arg(repo_root().join("tests/mcp/mcp_client_test.py"))
        .args(["--transport", transport])
        .env("TRELLIS_URL", &server.base_url)
        .env("TRELLIS_API_TOKEN", TOKEN)
        .env("TRELLIS_BIN", trellis_binary());
    let what = format!("the Python MCP client over {transport}");
    let output = tokio::task::spawn_blocking(move || run_to_success(script, &what))
        .await
        .expect("the Python client");
    // The scenario's secrets are `sk_live_` and random hex; it searched every result
    // (and `trellis mcp`'s stderr) itself. The server's own log must not hold one.
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|line| line.starts_with("ok")),
        "the scenario reported no checks"
    );
    let log = logs::captured();
    assert!(!log.contains(SECRET_PREFIX), "a secret reached the server's log");
}

/// How every secret the Python scenario creates begins.
const SECRET_PREFIX: &str = "sk_live_";

async fn python_sdk_over_stdio(backend: Backend) {
    python_scenario(&server(backend).await, "stdio").await;
}

async fn python_sdk_over_streamable_http(backend: Backend) {
    python_scenario(&server(backend).await, "http").await;
}

on_both_backends!(python_sdk_over_stdio, python_sdk_over_streamable_http);

/// `npx conformance server` against `/mcp`, behind a proxy that adds the token (the
/// suite sends no headers of its own). The committed baseline lists only scenarios
/// that need the suite's own fixture tools; anything else failing, or a listed
/// scenario passing, fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_server_scenarios() {
    let suite = npm_package("tests/mcp");
    let server = server(Backend::Sqlite).await;
    let proxy = trellis_tests::auth_proxy::start(&server.base_url, TOKEN).await;
    let mut npx = Command::new("npx");
    npx.args(["--no-install", "conformance", "server", "--url"])
        .arg(format!("{proxy}/mcp"))
        .arg("--expected-failures")
        .arg(suite.join("conformance-baseline.yml"))
        .current_dir(&suite);
    let output = tokio::task::spawn_blocking(move || run_to_success(npx, "the MCP conformance suite"))
        .await
        .expect("the conformance suite");
    let report = String::from_utf8_lossy(&output.stdout);
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
        "server-sse-multiple-streams",
    ] {
        assert!(report.contains(scenario), "{scenario} did not run:\n{report}");
    }
}
