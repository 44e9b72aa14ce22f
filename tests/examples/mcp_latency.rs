//! Latency of an MCP tool call over streamable HTTP on loopback:
//! `cargo run --release -p trellis-tests --example mcp_latency [calls]`.
//!
//! A real server (SQLite) holds one orchestration with two secrets; one keep-alive
//! client posts `tools/call get_orchestration` to `/mcp` again and again, one at a
//! time, as an agent does. Each call goes through bearer auth, rmcp's streamable
//! HTTP transport, the tool, and the REST API it calls. For comparison, the same
//! read through `GET /v1/orchestrations/{id}` directly.

// A benchmark: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use std::time::{Duration, Instant};
use trellis_tests::{Backend, TOKEN, TestServer, component};

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let server = TestServer::start(Backend::Sqlite).await;
    server
        .client
        .upload_function("digest", component("digest"))
        .await
        .unwrap();
    let created = server
        .client
        .create_orchestration(&json!({ "name": "bench", "steps": [
            { "type": "approval", "message": "ok?" },
            { "type": "compute", "functionId": "digest", "encryptedParams": {
                "A": { "value": "secret-a", "encrypt": true }, "B": { "value": "secret-b", "encrypt": true } } } ] }))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mcp = server.url("/mcp");
    let post = |body: serde_json::Value| {
        http.post(&mcp)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
    };
    let init = post(json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "bench", "version": "1" } } }))
    .await
    .unwrap();
    assert!(init.status().is_success());
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "get_orchestration", "arguments": { "id": created.id } } });

    let mut mcp_times = Vec::with_capacity(calls);
    for _ in 0..calls / 10 {
        post(call.clone()).await.unwrap().bytes().await.unwrap();
    }
    for _ in 0..calls {
        let start = Instant::now();
        let response = post(call.clone()).await.unwrap();
        let body = response.bytes().await.unwrap();
        mcp_times.push(start.elapsed());
        assert!(!body.is_empty());
    }
    let rest = server.url(&format!("/v1/orchestrations/{}", created.id));
    let mut rest_times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        http.get(&rest)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        rest_times.push(start.elapsed());
    }
    report("MCP tools/call get_orchestration (POST /mcp)", &mut mcp_times);
    report("REST GET /v1/orchestrations/{id}", &mut rest_times);
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{what}: {} calls, p50 {:?}, p90 {:?}, p99 {:?}",
        times.len(),
        at(0.5),
        at(0.9),
        at(0.99)
    );
}
