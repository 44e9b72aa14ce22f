//! Outbound HTTP from functions (`wasi:http`) through the real server, against small
//! HTTP servers on loopback: the allowlist (scheme, host and port; internal addresses
//! only when named literally; `localhost` never), redirects handed back unfollowed,
//! the per-invocation request cap, the deadline over a slow server, the `Host`
//! header on the wire, bodies sent with `Content-Length` rather than chunked, URLs
//! that only a lenient parser reads as a listed address, and the response body cap.

// In a test a panic is the failure report; the assertion messages carry the context.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use trellis_client::SettingsPatch;
use trellis_tests::{Backend, TestServer, component, on_both_backends};

on_both_backends!(
    a_listed_address_is_reached_with_its_host_header,
    unlisted_hosts_are_refused_with_the_setting_that_would_allow_them,
    localhost_is_refused_even_when_listed,
    redirects_come_back_unfollowed,
    an_invocation_may_send_at_most_32_requests,
    a_slow_server_is_cut_at_the_deadline,
    a_json_body_reaches_a_server_that_refuses_chunked_requests,
    shorthand_hosts_port_zero_and_user_info_are_refused_and_the_function_still_works,
    a_response_body_over_10_mib_fails_the_request,
);

/// A one-route HTTP/1.1 server that answers every request alike, after `delay`, and
/// records each request's head.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start(status: u16, headers: &[(&str, String)], body: &str, delay: Duration) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut response = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(body);
        let recorded = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (recorded, response) = (recorded.clone(), response.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match socket.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    recorded
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    tokio::time::sleep(delay).await;
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Upstream { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A server that, like many small ones, cannot read a chunked body: it answers `411`
/// to `Transfer-Encoding: chunked` and otherwise echoes the `Content-Length` bytes of
/// the body back. Records each request's head.
async fn start_strict_upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                recorded.lock().unwrap().push(head.clone());
                let response = if head.contains("\r\ntransfer-encoding:") {
                    "HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                } else {
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse().unwrap());
                    let mut body = vec![0u8; length];
                    socket.read_exact(&mut body).await.unwrap();
                    let body = String::from_utf8(body).unwrap();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, seen)
}

async fn start(backend: Backend, allowed: &[String], timeout_ms: Option<u32>) -> TestServer {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("fetch", component("fetch"))
        .await
        .unwrap();
    let patch = SettingsPatch {
        allowed_hosts: Some(allowed.to_vec()),
        timeout_ms,
        ..Default::default()
    };
    server
        .client
        .update_function_settings("fetch", &patch)
        .await
        .unwrap();
    server
}

/// The function's output, or the error body (code, message, logs).
async fn fetch(server: &TestServer, params: Value) -> Result<Value, Value> {
    match server.client.invoke_function("fetch", &params).await {
        Ok(result) => Ok(result.output),
        Err(trellis_client::Error::Api { details, .. }) => Err(details),
        Err(other) => panic!("{other}"),
    }
}

fn logs_text(error: &Value) -> String {
    error["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn a_listed_address_is_reached_with_its_host_header(backend: Backend) {
    let upstream = Upstream::start(200, &[("x-upstream", "yes".into())], "hello", Duration::ZERO).await;
    let origin = format!("http://127.0.0.1:{}", upstream.port);
    let server = start(backend, std::slice::from_ref(&origin), None).await;
    let output = fetch(
        &server,
        json!({ "url": format!("{origin}/path?q=1"), "headers": { "x-test": "1" } }),
    )
    .await
    .unwrap();
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], "hello");
    assert_eq!(output["headers"]["x-upstream"], "yes");
    let head = upstream.requests().pop().unwrap();
    assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
    let host = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("host:"))
        .unwrap_or_default();
    assert_eq!(
        host.to_ascii_lowercase(),
        format!("host: 127.0.0.1:{}", upstream.port)
    );
    assert!(head.to_ascii_lowercase().contains("x-test: 1"), "{head}");
}

async fn unlisted_hosts_are_refused_with_the_setting_that_would_allow_them(backend: Backend) {
    let upstream = Upstream::start(200, &[], "hello", Duration::ZERO).await;
    // Listed: another port, and the right port over https. Neither is this origin.
    let allowed = [
        format!("http://127.0.0.1:{}", upstream.port + 1),
        format!("https://127.0.0.1:{}", upstream.port),
    ];
    let server = start(backend, &allowed, None).await;
    let origin = format!("http://127.0.0.1:{}", upstream.port);
    // With and without a body: the refusal is what the function reports either way.
    for body in ["", "payload"] {
        let params = json!({ "url": format!("{origin}/?token=abc"), "method": "POST", "body": body });
        let error = fetch(&server, params).await.unwrap_err();
        assert_eq!(error["code"], "http_error");
        assert!(
            error["message"].as_str().unwrap().contains("allowedHosts"),
            "{error}"
        );
        let logs = logs_text(&error);
        assert!(
            logs.contains(&format!("add \"{origin}\" to allowedHosts")),
            "{logs}"
        );
        assert!(!logs.contains("token=abc"), "the URL is not quoted: {logs}");
    }
    assert!(upstream.requests().is_empty(), "nothing reached the server");
}

async fn localhost_is_refused_even_when_listed(backend: Backend) {
    let upstream = Upstream::start(200, &[], "hello", Duration::ZERO).await;
    let origin = format!("http://localhost:{}", upstream.port);
    let server = start(backend, std::slice::from_ref(&origin), None).await;
    let error = fetch(&server, json!({ "url": format!("{origin}/") }))
        .await
        .unwrap_err();
    let logs = logs_text(&error);
    assert!(logs.contains("which a host name may never reach"), "{logs}");
    assert!(upstream.requests().is_empty());
}

async fn redirects_come_back_unfollowed(backend: Backend) {
    let elsewhere = Upstream::start(200, &[], "followed", Duration::ZERO).await;
    let location = format!("http://127.0.0.1:{}/", elsewhere.port);
    let upstream = Upstream::start(302, &[("location", location.clone())], "", Duration::ZERO).await;
    let origin = format!("http://127.0.0.1:{}", upstream.port);
    let server = start(backend, std::slice::from_ref(&origin), None).await;
    let output = fetch(&server, json!({ "url": format!("{origin}/") }))
        .await
        .unwrap();
    assert_eq!(output["status"], 302);
    assert_eq!(output["headers"]["location"], location.as_str());
    assert!(elsewhere.requests().is_empty(), "the redirect was not followed");
}

async fn an_invocation_may_send_at_most_32_requests(backend: Backend) {
    let upstream = Upstream::start(200, &[], "ok", Duration::ZERO).await;
    let origin = format!("http://127.0.0.1:{}", upstream.port);
    let server = start(backend, std::slice::from_ref(&origin), None).await;
    let output = fetch(&server, json!({ "url": format!("{origin}/"), "times": 32 }))
        .await
        .unwrap();
    assert_eq!(output["status"], 200);
    let error = fetch(&server, json!({ "url": format!("{origin}/"), "times": 33 }))
        .await
        .unwrap_err();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("request 33") && message.contains("as many requests as it may"),
        "{error}"
    );
    assert!(logs_text(&error).contains("at most 32 requests"), "{error}");
    assert_eq!(upstream.requests().len(), 64, "32 from each invocation");
}

async fn a_slow_server_is_cut_at_the_deadline(backend: Backend) {
    let upstream = Upstream::start(200, &[], "late", Duration::from_secs(10)).await;
    let origin = format!("http://127.0.0.1:{}", upstream.port);
    let server = start(backend, std::slice::from_ref(&origin), Some(500)).await;
    let started = Instant::now();
    let error = fetch(&server, json!({ "url": format!("{origin}/") }))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut after {:?}",
        started.elapsed()
    );
    assert!(
        ["function_timeout", "http_error"].contains(&error["code"].as_str().unwrap()),
        "{error}"
    );
}

async fn a_json_body_reaches_a_server_that_refuses_chunked_requests(backend: Backend) {
    let (port, seen) = start_strict_upstream().await;
    let origin = format!("http://127.0.0.1:{port}");
    let server = start(backend, std::slice::from_ref(&origin), None).await;
    let sent = json!({ "org": "acme", "name": "billing", "tags": ["a", "b"], "private": true });
    let output = fetch(
        &server,
        json!({ "url": format!("{origin}/repos"), "method": "POST", "json": sent }),
    )
    .await
    .unwrap();
    assert_eq!(output["status"], 200, "{output}");
    let echoed: Value = serde_json::from_str(output["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed, sent, "the body arrived intact");
    let head = seen.lock().unwrap().pop().unwrap();
    assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{head}");
    // An author's own `content-length` is replaced by the body's length, and a body-less
    // GET carries no length at all.
    let output = fetch(
        &server,
        json!({ "url": format!("{origin}/"), "method": "PUT", "body": "four", "headers": { "content-length": "99" } }),
    )
    .await
    .unwrap();
    assert_eq!(
        (output["status"].clone(), output["body"].clone()),
        (json!(200), json!("four"))
    );
    fetch(&server, json!({ "url": format!("{origin}/") }))
        .await
        .unwrap();
    let head = seen.lock().unwrap().pop().unwrap();
    assert!(head.starts_with("get / "), "{head}");
    assert!(
        !head.contains("content-length") && !head.contains("transfer-encoding"),
        "{head}"
    );
}

async fn shorthand_hosts_port_zero_and_user_info_are_refused_and_the_function_still_works(backend: Backend) {
    let upstream = Upstream::start(200, &[], "hello", Duration::ZERO).await;
    let port = upstream.port;
    let origin = format!("http://127.0.0.1:{port}");
    let server = start(backend, std::slice::from_ref(&origin), None).await;
    // Each names the listed 127.0.0.1 to a lenient resolver, or the system's choice
    // of port; the host refuses them before any lookup or connection.
    for authority in [
        format!("127.1:{port}"),
        format!("2130706433:{port}"),
        format!("0x7f.1:{port}"),
        "127.0.0.1:0".to_owned(),
    ] {
        let error = fetch(&server, json!({ "url": format!("http://{authority}/") }))
            .await
            .unwrap_err();
        assert_eq!(error["code"], "http_error", "{authority}: {error}");
        // What the guest SDK says when `wasi:http` answers `HTTP-request-denied`.
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("the request was refused by the host"),
            "{authority}: {error}"
        );
        let logs = logs_text(&error);
        assert!(
            logs.contains("no user info, no numeric shorthand"),
            "{authority}: {logs}"
        );
    }
    // User info is refused in the guest SDK already, before the host sees it (the host
    // refuses it too: see runtime::http's unit tests); the password is not repeated.
    let error = fetch(
        &server,
        json!({ "url": format!("http://admin:hunter2-{port}@127.0.0.1:{port}/") }),
    )
    .await
    .unwrap_err();
    assert_eq!(error["code"], "http_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("the URL has user info"),
        "{error}"
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(upstream.requests().is_empty(), "nothing reached the server");

    // The function, the server and the listed address still work.
    let output = fetch(&server, json!({ "url": format!("{origin}/") }))
        .await
        .unwrap();
    assert_eq!(
        (output["status"].clone(), output["body"].clone()),
        (json!(200), json!("hello"))
    );
    assert_eq!(upstream.requests().len(), 1);
}

async fn a_response_body_over_10_mib_fails_the_request(backend: Backend) {
    const CAP: usize = 10 << 20;
    let at_cap = Upstream::start(200, &[], &"x".repeat(CAP), Duration::ZERO).await;
    let over = Upstream::start(200, &[], &"x".repeat(CAP + 1), Duration::ZERO).await;
    let origins = [at_cap.port, over.port].map(|port| format!("http://127.0.0.1:{port}"));
    let server = start(backend, &origins, None).await;
    // At the cap the body is read whole; the function then fails only because it
    // returns all 10 MiB, more than an output may hold.
    let error = fetch(&server, json!({ "url": format!("{}/", origins[0]) }))
        .await
        .unwrap_err();
    assert_eq!(error["code"], "function_output_too_large", "{error}");
    // One byte over, reading it fails.
    let error = fetch(&server, json!({ "url": format!("{}/", origins[1]) }))
        .await
        .unwrap_err();
    assert_eq!(error["code"], "http_error", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("reading the response: HTTP response body size exceeds limit"),
        "{message}"
    );
}
