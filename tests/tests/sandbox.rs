//! Hostile functions get a precise error within their deadline, and the server keeps
//! serving everyone else. Runs on both backends.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use trellis_client::{Error, SettingsPatch};
use trellis_client::{LogLevel, LogSource};
use trellis_tests::{Backend, Options, TestServer, component, on_both_backends};

on_both_backends!(
    infinite_loop_times_out,
    memory_bomb_hits_its_limit,
    unbounded_recursion_traps,
    panic_traps_with_its_message,
    huge_output_is_refused,
    log_flood_is_truncated_not_fatal,
    host_files_and_env_are_invisible,
    scratch_dir_is_private_and_fresh,
    scratch_dir_is_capped,
    stdout_and_stderr_are_captured,
    a_full_pool_answers_503,
    a_full_pool_queues_before_refusing,
    the_memory_budget_holds_calls_back,
);

/// Uploads `name`, applies `patch` (with a 5 s deadline unless it sets one),
/// invokes with `params`, and returns the error's status, code and details,
/// checking that the error came within the deadline and that `echo` still works
/// afterwards.
async fn hostile(
    server: &TestServer,
    name: &str,
    mut patch: SettingsPatch,
    params: Value,
) -> (u16, String, Value) {
    let deadline_ms = *patch.timeout_ms.get_or_insert(5000);
    server
        .client
        .upload_function(name, component(name))
        .await
        .expect("upload");
    server
        .client
        .update_function_settings(name, &patch)
        .await
        .expect("settings");
    let started = std::time::Instant::now();
    let outcome = server.client.invoke_function(name, &params).await;
    // The deadline plus generous slack for HTTP on a loaded 2-core machine.
    let bound = Duration::from_millis(u64::from(deadline_ms) + 1500);
    assert!(
        started.elapsed() < bound,
        "{name}: no answer within its deadline ({:?})",
        started.elapsed()
    );
    let failure = match outcome {
        Err(Error::Api {
            status,
            code,
            details,
            ..
        }) => (status, code, details),
        other => panic!("{name}: expected an API error, got {other:?}"),
    };
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload echo");
    let echo = server
        .client
        .invoke_function("echo", &json!({ "still": "serving" }))
        .await;
    assert_eq!(
        echo.expect("echo after a hostile call").output,
        json!({ "still": "serving" })
    );
    failure
}

async fn infinite_loop_times_out(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("loop-forever", component("loop-forever"))
        .await
        .expect("upload");
    let patch = SettingsPatch {
        timeout_ms: Some(300),
        ..Default::default()
    };
    server
        .client
        .update_function_settings("loop-forever", &patch)
        .await
        .expect("settings");
    let started = Instant::now();
    let outcome = server.client.invoke_function("loop-forever", &json!({})).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(&outcome, Err(Error::Api { status: 504, code, details, .. }) if code == "function_timeout" && details["retryable"] == true),
        "{outcome:?}"
    );
    // Stopped at its deadline, not before. How soon after depends on the machine's
    // load; the bound only tells a stopped call from one that was never stopped.
    assert!(
        elapsed >= Duration::from_millis(300),
        "stopped early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(30), "never stopped: {elapsed:?}");
    let echo = server.client.upload_function("echo", component("echo")).await;
    echo.expect("the server still serves");
}

async fn memory_bomb_hits_its_limit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let patch = SettingsPatch {
        memory_limit_mb: Some(32),
        ..Default::default()
    };
    let (status, code, details) = hostile(&server, "memory-bomb", patch, json!({})).await;
    assert_eq!((status, code.as_str()), (500, "function_out_of_memory"));
    assert!(details["message"].as_str().expect("message").contains("32 MiB"));
}

async fn unbounded_recursion_traps(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, code, details) =
        hostile(&server, "deep-recursion", SettingsPatch::default(), json!({})).await;
    assert_eq!((status, code.as_str()), (500, "function_trapped"));
    let message = details["message"].as_str().expect("message");
    assert!(
        message.contains("stack"),
        "the trap reason names the stack: {message}"
    );
}

async fn panic_traps_with_its_message(backend: Backend) {
    let server = TestServer::start(backend).await;
    let params = json!({ "message": "the flux capacitor broke" });
    let (status, code, details) = hostile(&server, "panic", SettingsPatch::default(), params).await;
    assert_eq!((status, code.as_str()), (500, "function_trapped"));
    let message = details["message"].as_str().expect("message");
    assert!(message.contains("the flux capacitor broke"), "{message}");
}

async fn huge_output_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let params = json!({ "bytes": 8 << 20 });
    let (status, code, _) = hostile(&server, "huge-output", SettingsPatch::default(), params).await;
    assert_eq!((status, code.as_str()), (422, "function_output_too_large"));
    // Under the cap it is fine.
    let ok = server
        .client
        .invoke_function("huge-output", &json!({ "bytes": 1000 }))
        .await
        .expect("small output");
    assert_eq!(ok.output.as_str().map(str::len), Some(1000));
}

async fn log_flood_is_truncated_not_fatal(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("log-flood", component("log-flood"))
        .await
        .expect("upload");
    let result = server
        .client
        .invoke_function("log-flood", &json!({ "count": 50000, "stdoutBytes": 1 << 20 }))
        .await
        .expect("a log flood still completes");
    assert_eq!(result.output, json!({ "done": true }));
    let total: usize = result
        .logs
        .iter()
        .filter(|entry| entry.source != LogSource::Host)
        .map(|entry| entry.message.len())
        .sum();
    assert!(total <= 256 << 10, "logs are capped, got {total} bytes");
    let notice = result.logs.last().expect("a truncation notice");
    assert_eq!(notice.source, LogSource::Host);
    assert!(notice.message.starts_with("log truncated"), "{}", notice.message);
}

async fn host_files_and_env_are_invisible(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, code, details) = hostile(
        &server,
        "read-file",
        SettingsPatch::default(),
        json!({ "path": "/etc/passwd" }),
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "io_error"), "{details}");

    server
        .client
        .upload_function("read-env", component("read-env"))
        .await
        .expect("upload");
    let result = server
        .client
        .invoke_function("read-env", &json!({}))
        .await
        .expect("invoke");
    assert_eq!(
        result.output["vars"],
        json!({}),
        "no host environment reaches the guest"
    );
    assert_eq!(result.output["args"], json!([]));
}

async fn scratch_dir_is_private_and_fresh(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("read-file", component("read-file"))
        .await
        .expect("upload");
    let patch = SettingsPatch {
        scratch_dir: Some(true),
        ..Default::default()
    };
    server
        .client
        .update_function_settings("read-file", &patch)
        .await
        .expect("settings");

    let first = server
        .client
        .invoke_function("read-file", &json!({ "write": "hello scratch" }))
        .await
        .expect("write");
    assert_eq!(first.output["readBack"], "hello scratch");
    assert_eq!(first.output["entries"], json!(["note.txt"]));

    // The next invocation starts empty: it sees only the file it writes itself.
    let params = json!({ "write": "again", "writeTo": "/scratch/second.txt" });
    let second = server
        .client
        .invoke_function("read-file", &params)
        .await
        .expect("write");
    assert_eq!(
        second.output["entries"],
        json!(["second.txt"]),
        "the first call's file is gone"
    );

    // Host files stay invisible with a scratch dir too, however the path is spelled.
    for path in [
        "/etc/passwd",
        "/scratch/../etc/passwd",
        "/scratch/../../../../etc/passwd",
        "../etc/passwd",
    ] {
        let outside = server
            .client
            .invoke_function("read-file", &json!({ "path": path }))
            .await;
        assert!(
            matches!(&outside, Err(Error::Api { status: 422, code, .. }) if code == "io_error"),
            "{path}: {outside:?}"
        );
    }
    // Nothing is left on the host afterwards (removal runs in the background).
    let scratch_root = server.data_dir().join("scratch");
    let mut leftovers = usize::MAX;
    for _ in 0..50 {
        leftovers = std::fs::read_dir(&scratch_root).map_or(0, |dir| dir.count());
        if leftovers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(leftovers, 0, "scratch directories are removed after each call");
}

async fn scratch_dir_is_capped(backend: Backend) {
    let server = TestServer::start(backend).await;
    let patch = SettingsPatch {
        scratch_dir: Some(true),
        memory_limit_mb: Some(64),
        ..Default::default()
    };
    let params = json!({ "fill": 1u64 << 30, "writeTo": "/scratch/fill.bin" });
    let (status, code, details) = hostile(&server, "read-file", patch, params).await;
    assert_eq!(
        (status, code.as_str()),
        (422, "function_scratch_full"),
        "{details}"
    );
}

async fn stdout_and_stderr_are_captured(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("log-flood", component("log-flood"))
        .await
        .expect("upload");
    let result = server
        .client
        .invoke_function("log-flood", &json!({ "count": 2, "stdoutBytes": 160 }))
        .await
        .expect("invoke");
    let by_source = |source: LogSource| {
        result
            .logs
            .iter()
            .filter(|e| e.source == source)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_source(LogSource::Log).len(), 2);
    let stdout = by_source(LogSource::Stdout);
    assert_eq!(stdout.len(), 2, "160 bytes of 80-byte lines");
    assert!(
        stdout
            .iter()
            .all(|e| e.level == LogLevel::Info && e.message == "o".repeat(79))
    );
    let stderr = by_source(LogSource::Stderr);
    assert_eq!(stderr.len(), 2);
    assert!(stderr.iter().all(|e| e.level == LogLevel::Warn));
}

/// Waits until `n` invocations hold a slot.
async fn wait_in_flight(server: &TestServer, n: f64) {
    for _ in 0..200 {
        if server.metric("trellis_invocations_in_flight").await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw {n} invocations in flight");
}

/// A server with one invocation slot, held by `loop-forever` (deadline `loop_ms`)
/// once this returns; `echo` is uploaded too.
async fn one_busy_slot(
    backend: Backend,
    queue_timeout: Duration,
    loop_ms: u32,
) -> (
    TestServer,
    tokio::task::JoinHandle<Result<trellis_client::InvokeResult, Error>>,
) {
    let options = Options {
        max_concurrency: 1,
        queue_timeout,
        ..Options::default()
    };
    let server = TestServer::start_with(backend, options).await;
    for name in ["loop-forever", "echo"] {
        server
            .client
            .upload_function(name, component(name))
            .await
            .expect("upload");
    }
    let patch = SettingsPatch {
        timeout_ms: Some(loop_ms),
        ..Default::default()
    };
    server
        .client
        .update_function_settings("loop-forever", &patch)
        .await
        .expect("settings");
    let client = server.client.clone();
    let busy = tokio::spawn(async move { client.invoke_function("loop-forever", &json!({})).await });
    wait_in_flight(&server, 1.0).await;
    (server, busy)
}

async fn a_full_pool_answers_503(backend: Backend) {
    let (server, busy) = one_busy_slot(backend, Duration::from_millis(200), 2000).await;
    let refused = server.client.invoke_function("echo", &json!({})).await;
    assert!(
        matches!(&refused, Err(Error::Api { status: 503, code, .. }) if code == "overloaded"),
        "{refused:?}"
    );

    let timed_out = busy.await.expect("join");
    assert!(
        matches!(timed_out, Err(Error::Api { status: 504, .. })),
        "{timed_out:?}"
    );
    server
        .client
        .invoke_function("echo", &json!({ "a": 1 }))
        .await
        .expect("the slot is free again");
}

async fn a_full_pool_queues_before_refusing(backend: Backend) {
    let (server, busy) = one_busy_slot(backend, Duration::from_secs(10), 300).await;
    // Waits for the loop to hit its deadline, then runs.
    let queued = server
        .client
        .invoke_function("echo", &json!({ "queued": true }))
        .await;
    assert_eq!(
        queued.expect("a queued call runs once the slot frees").output,
        json!({ "queued": true })
    );
    assert!(busy.await.expect("join").is_err());
}

async fn the_memory_budget_holds_calls_back(backend: Backend) {
    // Room for one 64 MiB call at a time, whatever the concurrency allows.
    let options = Options {
        memory_budget_mb: 100,
        queue_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let server = TestServer::start_with(backend, options).await;
    for name in ["loop-forever", "echo"] {
        server
            .client
            .upload_function(name, component(name))
            .await
            .expect("upload");
        let patch = SettingsPatch {
            memory_limit_mb: Some(64),
            timeout_ms: Some(1500),
            ..Default::default()
        };
        server
            .client
            .update_function_settings(name, &patch)
            .await
            .expect("settings");
    }
    let client = server.client.clone();
    let busy = tokio::spawn(async move { client.invoke_function("loop-forever", &json!({})).await });
    wait_in_flight(&server, 1.0).await;

    let held_back = server.client.invoke_function("echo", &json!({})).await;
    assert!(
        matches!(&held_back, Err(Error::Api { status: 503, code, .. }) if code == "overloaded"),
        "two 64 MiB calls do not fit a 100 MiB budget: {held_back:?}"
    );
    assert!(busy.await.expect("join").is_err(), "the loop times out");
    let echo = server
        .client
        .invoke_function("echo", &json!({ "fits": "now" }))
        .await;
    assert_eq!(
        echo.expect("the budget is free again").output,
        json!({ "fits": "now" })
    );
}
