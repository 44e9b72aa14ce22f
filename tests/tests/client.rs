//! `trellis-client` as a Rust user holds it: the typed builder, enum statuses, the
//! API's status and code on errors, and the two ways a request never gets an answer.

use std::time::Duration;
use trellis_client::{
    ApprovalStep, Client, ComputeStep, Definition, Error, RunFilter, RunStatus, StepStatus,
};
use trellis_tests::{Backend, TestServer, component, on_both_backends};

async fn a_typed_definition_runs_to_completion(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("digest", component("digest"))
        .await
        .expect("upload");
    let definition = Definition::new("typed")
        .step(ApprovalStep::new("Go?").id("approve"))
        .step(
            ComputeStep::new("digest")
                .secret("API_KEY", "sk_live_typed")
                .param("org", "acme"),
        );
    let created = server
        .client
        .create_orchestration(&definition)
        .await
        .expect("create");
    assert_eq!(
        created.definition.steps[1].id(),
        "digest",
        "the server named the step"
    );
    let started = server.client.start_run(&created.id, None).await.expect("start");
    assert_eq!(started.status, RunStatus::Pending);
    let run = server
        .client
        .wait_run(&started.id, Duration::from_secs(30))
        .await
        .expect("wait");
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(run.step("approve").expect("approve").status, StepStatus::Waiting);
    let waiting = server
        .client
        .list_runs(
            &created.id,
            &RunFilter {
                status: Some(RunStatus::Waiting),
                limit: None,
            },
        )
        .await
        .expect("list");
    assert_eq!(waiting.len(), 1);
    let none = server
        .client
        .list_runs(
            &created.id,
            &RunFilter {
                status: Some(RunStatus::Completed),
                limit: None,
            },
        )
        .await
        .expect("list");
    assert!(none.is_empty());

    server
        .client
        .approve_step(&run.id, "approve", Some("ship it"))
        .await
        .expect("approve");
    let run = server
        .client
        .wait_run(&run.id, Duration::from_secs(30))
        .await
        .expect("wait");
    assert_eq!(run.status, RunStatus::Completed);
    let output = run
        .step("digest")
        .and_then(|step| step.output.clone())
        .expect("output");
    assert_eq!(output["org"], hex_sha256("acme"));
    assert_eq!(output["API_KEY"], hex_sha256("sk_live_typed"));

    // A second decision on a finished run is the API's 409, with its code.
    match server.client.approve_step(&run.id, "approve", None).await {
        Err(error @ Error::Api { .. }) => {
            assert_eq!(
                (error.status(), error.code()),
                (Some(409), Some("run_state_conflict"))
            );
        }
        other => panic!("expected a conflict: {other:?}"),
    }
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

on_both_backends!(a_typed_definition_runs_to_completion);

#[tokio::test]
async fn nothing_listening_is_unreachable_with_a_hint() {
    // Bind and drop, so the port is known to be closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let client = Client::new(format!("http://127.0.0.1:{port}"), "token-0123456789abcdef");
    let error = client.list_functions().await.expect_err("nothing listens");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("is `trellis serve` running there?"), "{message}");
    assert!(message.to_lowercase().contains("connection refused"), "{message}");
    assert_eq!(error.status(), None);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    // Accepts connections and holds them without a word.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = Client::new(url, "token-0123456789abcdef").with_timeout(Duration::from_millis(300));
    let error = client.get_run("r").await.expect_err("no answer");
    assert!(
        matches!(error, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{error:?}"
    );
}
