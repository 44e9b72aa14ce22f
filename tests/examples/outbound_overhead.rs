//! The cost of an outbound call from a function, against the same call made natively:
//! `cargo run --release -p trellis-tests --example outbound_overhead [calls]`.
//!
//! A loopback HTTP server answers `GET /` with `ok`. Measured, one at a time:
//! - native: the same `GET` on a fresh connection (as each invocation opens one),
//!   with hyper's HTTP/1 client (the stack Trellis sends with) and with reqwest;
//! - function: an in-process invocation of `fetch` making that `GET` (a fresh sandbox,
//!   the allowlist check, the connection, the response read back into the guest);
//! - and, to split the two, an invocation of `echo` (the sandbox alone).

// A benchmark: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};
use trellis::functions::Invocation;
use trellis_tests::{Backend, TestServer, component};

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app).await
    });

    let server = TestServer::start(Backend::Sqlite).await;
    for function in ["fetch", "echo"] {
        server
            .client
            .upload_function(function, component(function))
            .await
            .unwrap();
    }
    let patch = trellis_client::SettingsPatch {
        allowed_hosts: Some(vec![origin.clone()]),
        ..Default::default()
    };
    server
        .client
        .update_function_settings("fetch", &patch)
        .await
        .unwrap();
    let functions = &server.state().functions;
    let invocation = |id: &str| Invocation {
        function_id: id.into(),
        run_id: None,
        step_id: None,
        attempt: 1,
        idempotency_key: "bench".into(),
    };
    let params = serde_json::json!({ "url": format!("{origin}/") }).to_string();
    let native = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    let address: std::net::SocketAddr = origin.trim_start_matches("http://").parse().unwrap();
    let mut hyper_times = Vec::new();
    let mut native_times = Vec::new();
    let mut fetch_times = Vec::new();
    let mut echo_times = Vec::new();
    for round in 0..calls + 100 {
        let started = Instant::now();
        assert_eq!(hyper_get(address).await, "ok");
        let hyper_time = started.elapsed();
        let started = Instant::now();
        let body = native
            .get(format!("{origin}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let native_time = started.elapsed();
        assert_eq!(body, "ok");
        let started = Instant::now();
        let outcome = functions.invoke(&invocation("fetch"), &params).await.unwrap();
        let fetch_time = started.elapsed();
        assert!(outcome.output.get().contains("\"ok\""));
        let started = Instant::now();
        functions.invoke(&invocation("echo"), "{}").await.unwrap();
        let echo_time = started.elapsed();
        if round >= 100 {
            hyper_times.push(hyper_time);
            native_times.push(native_time);
            fetch_times.push(fetch_time);
            echo_times.push(echo_time);
        }
    }
    let p50 = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (hyper, native, fetch, echo) = (
        p50(&mut hyper_times),
        p50(&mut native_times),
        p50(&mut fetch_times),
        p50(&mut echo_times),
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{calls} calls, p50: native GET {:.0} µs with hyper, {:.0} µs with reqwest; a function making \
         the GET {:.0} µs ({:.2}x hyper, {:.2}x reqwest); the sandbox alone (echo) {:.0} µs",
        us(hyper),
        us(native),
        us(fetch),
        us(fetch) / us(hyper),
        us(fetch) / us(native),
        us(echo),
    );
}

/// `GET /` on a fresh connection with hyper's HTTP/1 client.
async fn hyper_get(address: std::net::SocketAddr) -> String {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("/")
        .header("host", address.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}
