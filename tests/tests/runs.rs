//! Orchestration runs through the HTTP API on both backends: every step type,
//! routing, templates, retries, approvals with their timeouts, cancellation, the
//! version pin, caps, restarts, and secrets that reach exactly one step and nothing
//! stored or logged.

// In a test a panic is the failure report; the assertion messages carry the context.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;
use trellis_client::{Run, SettingsPatch};
use trellis_tests::gate::{Event, Gate};
use trellis_tests::search::{assert_nowhere, database_bytes};
use trellis_tests::{Backend, Options, TOKEN, TestServer, component, logs, on_both_backends};

on_both_backends!(
    the_announced_scenario_runs_end_to_end,
    decisions_route_with_every_operator,
    templates_resolve_against_the_run_context,
    delays_survive_a_restart,
    approval_timeouts_approve_or_reject,
    rejections_fail_or_continue,
    retries_until_success_or_exhaustion,
    cancelling_a_waiting_run,
    cancelling_a_running_run_stops_its_call,
    runs_keep_the_version_they_started_with,
    bad_requests_get_precise_errors,
    caps_stop_loops_and_oversized_outputs,
    without_workers_runs_wait_for_one,
    a_step_longer_than_the_lease_keeps_it,
    a_multi_line_secret_printed_line_by_line_is_masked,
    every_encoding_of_a_secret_is_masked_in_outputs_logs_and_errors,
);

const WAIT: Duration = Duration::from_secs(30);

async fn start(backend: Backend) -> TestServer {
    start_with(backend, Options::default()).await
}

async fn start_with(backend: Backend, options: Options) -> TestServer {
    logs::capture();
    let server = TestServer::start_with(backend, options).await;
    for function in ["echo", "digest", "flaky", "huge-output", "log-flood"] {
        server
            .client
            .upload_function(function, component(function))
            .await
            .unwrap_or_else(|error| panic!("uploading {function}: {error}"));
    }
    server
}

async fn create(server: &TestServer, steps: Value) -> String {
    server
        .client
        .create_orchestration(&json!({ "name": "test", "steps": steps }))
        .await
        .expect("creating the orchestration")
        .id
}

async fn start_run(server: &TestServer, orchestration: &str, input: Value) -> String {
    let started = server
        .client
        .start_run(orchestration, Some(&input))
        .await
        .expect("starting a run");
    assert_eq!(
        started.status, "pending",
        "a new run is pending until a worker takes it"
    );
    started.id
}

/// The run once it stops moving (finished, or waiting on a human).
async fn settled(server: &TestServer, run: &str) -> Run {
    let run = server.client.wait_run(run, WAIT).await.expect("reading the run");
    assert!(
        !["pending", "running"].contains(&run.status.as_str()),
        "the run did not settle within {WAIT:?}: {run:#?}"
    );
    run
}

async fn run_to_end(server: &TestServer, steps: Value, input: Value) -> Run {
    let orchestration = create(server, steps).await;
    let run = start_run(server, &orchestration, input).await;
    settled(server, &run).await
}

fn step<'r>(run: &'r Run, id: &str) -> &'r trellis_client::RunStep {
    run.step(id).unwrap_or_else(|| panic!("no step {id} in {run:#?}"))
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn secret(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

async fn raw_run(server: &TestServer, run: &str) -> String {
    server
        .http
        .get(server.url(&format!("/v1/runs/{run}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET run")
        .text()
        .await
        .expect("body")
}

async fn the_announced_scenario_runs_end_to_end(backend: Backend) {
    let server = start(backend).await;
    let (private_key, app_id) = (secret("pem"), secret("app"));
    let orchestration = create(
        &server,
        json!([
            { "id": "evaluate", "type": "compute", "functionId": "digest",
              "params": { "stage": "evaluate" } },
            { "id": "approve", "type": "approval", "message": "Create the repository?" },
            { "id": "provision-repo", "type": "compute", "functionId": "digest",
              "params": { "org": "{{ input.org }}" },
              "encryptedParams": {
                  "GITHUB_PRIVATE_KEY": { "value": private_key, "encrypt": true },
                  "GITHUB_APP_ID": { "value": app_id, "encrypt": true }
              } },
            // Echoes everything it gets: the secrets must come back masked.
            { "id": "leaky", "type": "compute", "functionId": "echo",
              "encryptedParams": { "TOKEN": { "value": private_key, "encrypt": true } } }
        ]),
    )
    .await;
    // The input names a secret too: the encrypted value must win.
    let input = json!({ "org": "acme", "name": "svc", "GITHUB_PRIVATE_KEY": "from-the-input" });
    let run_id = start_run(&server, &orchestration, input).await;

    let waiting = settled(&server, &run_id).await;
    assert_eq!(waiting.status, "waiting");
    assert_eq!(waiting.current_step_id.as_deref(), Some("approve"));
    let evaluate = step(&waiting, "evaluate");
    assert_eq!(evaluate.status, "succeeded");
    let mut received: Vec<&String> = evaluate
        .output
        .as_ref()
        .expect("output")
        .as_object()
        .expect("object")
        .keys()
        .collect();
    received.sort();
    assert_eq!(
        received,
        ["GITHUB_PRIVATE_KEY", "name", "org", "stage"],
        "evaluate received the input and its own params, and no secret"
    );
    assert_eq!(
        evaluate.output.as_ref().unwrap()["GITHUB_PRIVATE_KEY"],
        sha256("from-the-input")
    );
    assert_eq!(step(&waiting, "approve").status, "waiting");
    assert_eq!(step(&waiting, "provision-repo").status, "pending");

    let approved = server
        .client
        .approve_step(&run_id, "approve", Some("ship it"))
        .await
        .expect("approving");
    assert_eq!(step(&approved, "approve").status, "succeeded");
    let run = settled(&server, &run_id).await;
    assert_eq!(run.status, "completed", "{run:#?}");
    let decision = step(&run, "approve").output.clone().expect("the decision");
    assert_eq!(decision["approved"], true);
    assert_eq!(decision["decidedBy"], "admin");
    assert_eq!(decision["comment"], "ship it");
    assert!(decision["decidedAt"].is_string());
    let provision = step(&run, "provision-repo").output.clone().expect("output");
    assert_eq!(
        provision["GITHUB_PRIVATE_KEY"],
        sha256(&private_key),
        "the secret won over the input"
    );
    assert_eq!(provision["GITHUB_APP_ID"], sha256(&app_id));
    assert_eq!(provision["org"], sha256("acme"), "the template resolved");
    let leaky = step(&run, "leaky").output.clone().expect("output");
    assert_eq!(
        leaky["TOKEN"], "********",
        "an echoed secret is masked in the output"
    );
    assert_eq!(
        leaky["GITHUB_PRIVATE_KEY"], "from-the-input",
        "the leaky step saw only its own secret"
    );

    let secrets = [private_key.as_str(), app_id.as_str()];
    assert_nowhere(&raw_run(&server, &run_id).await, &secrets, "the run record");
    let listed = serde_json::to_string(
        &server
            .client
            .list_runs(
                &orchestration,
                &trellis_client::RunFilter {
                    limit: Some(10),
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_nowhere(&listed, &secrets, "the run list");
    assert_nowhere(
        &String::from_utf8_lossy(&database_bytes(server.database_url())),
        &secrets,
        "the database",
    );
    // The search means something only if the capture holds what this test caused:
    // its own read of the run, logged at DEBUG.
    logs::assert_captured(&["finished processing request", &format!("uri=/v1/runs/{run_id} ")]);
    assert_nowhere(&logs::captured(), &secrets, "the debug log");
}

async fn decisions_route_with_every_operator(backend: Backend) {
    let server = start(backend).await;
    // Each case: a condition, an input it holds for, and one it does not hold for.
    let cases = [
        (
            "eq",
            json!("gold"),
            json!({ "tier": "gold" }),
            json!({ "tier": "silver" }),
        ),
        (
            "neq",
            json!("gold"),
            json!({ "tier": "silver" }),
            json!({ "tier": "gold" }),
        ),
        ("gt", json!(10), json!({ "tier": 11 }), json!({ "tier": 10 })),
        ("gte", json!(10), json!({ "tier": 10 }), json!({ "tier": 9.5 })),
        ("lt", json!(10), json!({ "tier": 9 }), json!({ "tier": 10 })),
        ("lte", json!(10), json!({ "tier": 10.0 }), json!({ "tier": 11 })),
        ("exists", Value::Null, json!({ "tier": 0 }), json!({ "other": 1 })),
        ("notExists", Value::Null, json!({}), json!({ "tier": "x" })),
        (
            "in",
            json!(["a", "b"]),
            json!({ "tier": "b" }),
            json!({ "tier": "c" }),
        ),
        (
            "notIn",
            json!(["a", "b"]),
            json!({ "tier": "c" }),
            json!({ "tier": "a" }),
        ),
    ];
    for (operator, value, holds, fails) in cases {
        let mut condition = json!({ "path": "input.tier", "operator": operator });
        if !value.is_null() {
            condition["value"] = value;
        }
        let orchestration = create(
            &server,
            json!([
                { "id": "route", "type": "decision",
                  "cases": [{ "conditions": [condition, { "path": "context.runId", "operator": "exists" }],
                              "nextStepId": "matched" }],
                  "defaultNextStepId": "unmatched" },
                { "id": "matched", "type": "compute", "functionId": "echo", "nextStepId": "end" },
                { "id": "unmatched", "type": "compute", "functionId": "echo" },
                { "id": "end", "type": "delay", "delayMs": 0 }
            ]),
        )
        .await;
        for (input, branch, other) in [(holds, "matched", "unmatched"), (fails, "unmatched", "matched")] {
            let run = start_run(&server, &orchestration, input.clone()).await;
            let run = settled(&server, &run).await;
            assert_eq!(run.status, "completed", "{operator} {input}: {run:#?}");
            assert_eq!(
                step(&run, branch).status,
                "succeeded",
                "{operator} {input} goes to {branch}"
            );
            assert_eq!(
                step(&run, other).status,
                "skipped",
                "{operator} {input} skips {other}"
            );
            assert_eq!(step(&run, "route").output.as_ref().unwrap()["nextStepId"], branch);
        }
    }
}

async fn templates_resolve_against_the_run_context(backend: Backend) {
    let server = start(backend).await;
    let orchestration = create(
        &server,
        json!([
            { "id": "first", "type": "compute", "functionId": "echo",
              "params": { "request": { "repo": "{{ input.repo }}", "count": 2 } } },
            { "id": "second", "type": "compute", "functionId": "echo",
              "params": {
                  "whole": "{{ steps.first.output.request }}",
                  "count": "{{ steps.first.output.request.count }}",
                  "text": "repo {{ input.repo }} #{{ steps.first.output.request.count }}",
                  "status": "{{ steps.first.status }}",
                  "run": "{{ context.runId }}",
                  "orchestration": "{{ context.orchestrationId }}",
                  "literal": "\\{{ not a template }}"
              } },
            { "id": "broken", "type": "compute", "functionId": "echo",
              "params": { "missing": "{{ input.nope }}" } }
        ]),
    )
    .await;
    let run_id = start_run(&server, &orchestration, json!({ "repo": "svc" })).await;
    let run = settled(&server, &run_id).await;
    let second = step(&run, "second").output.clone().expect("output");
    assert_eq!(
        second["whole"],
        json!({ "repo": "svc", "count": 2 }),
        "an exact template keeps the type"
    );
    assert_eq!(second["count"], 2);
    assert_eq!(second["text"], "repo svc #2");
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["run"], run_id.as_str());
    assert_eq!(second["orchestration"], orchestration.as_str());
    assert_eq!(second["literal"], "{{ not a template }}");
    assert_eq!(
        run.status, "failed",
        "a template that does not resolve fails its step"
    );
    let error = step(&run, "broken").error.clone().expect("an error");
    assert_eq!(error["code"], "template_error");
    assert!(
        error["message"].as_str().unwrap().contains("input.nope"),
        "{error}"
    );
    assert_eq!(run.error.as_ref().unwrap()["stepId"], "broken");
}

async fn delays_survive_a_restart(backend: Backend) {
    let server = start(backend).await;
    let orchestration = create(
        &server,
        json!([
            { "id": "before", "type": "compute", "functionId": "echo" },
            { "id": "pause", "type": "delay", "delayMs": 4000 },
            { "id": "after", "type": "compute", "functionId": "echo" }
        ]),
    )
    .await;
    let run_id = start_run(&server, &orchestration, json!({})).await;
    // Wait until the timer is set, then stop the whole server.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let run = server.client.get_run(&run_id).await.unwrap();
        if step(&run, "pause").status == "running" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delay never started: {run:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Back without workers, however long the restart took: the timer is still set and
    // nothing went past it.
    let server = server
        .restart_with(Options {
            workers: 0,
            ..Options::default()
        })
        .await;
    let run = server.client.get_run(&run_id).await.unwrap();
    assert_eq!(
        (
            run.status.as_str(),
            step(&run, "pause").status.as_str(),
            step(&run, "after").status.as_str()
        ),
        ("running", "running", "pending"),
        "the delay is kept across the restart: {run:#?}"
    );
    let server = server.restart_with(Options::default()).await;
    let run = settled(&server, &run_id).await;
    assert_eq!(run.status, "completed", "{run:#?}");
    let pause = step(&run, "pause");
    let waited = pause.finished_at.unwrap() - pause.started_at.unwrap();
    assert!(
        waited >= chrono::TimeDelta::milliseconds(4000),
        "the delay lasted {waited}"
    );
    assert_eq!(step(&run, "after").status, "succeeded");
}

async fn approval_timeouts_approve_or_reject(backend: Backend) {
    let server = start(backend).await;
    for (on_timeout, expected_status, approved) in
        [("approve", "completed", true), ("reject", "failed", false)]
    {
        let run = run_to_end(
            &server,
            json!([
                { "id": "gate", "type": "approval", "timeoutMs": 200, "onTimeout": on_timeout },
                { "id": "after", "type": "compute", "functionId": "echo" }
            ]),
            json!({}),
        )
        .await;
        let run = match run.status.as_str() {
            "waiting" => settled_after_timeout(&server, &run.id).await,
            _ => run,
        };
        assert_eq!(run.status, expected_status, "onTimeout {on_timeout}: {run:#?}");
        let decision = step(&run, "gate").output.clone().expect("the decision");
        assert_eq!(decision["approved"], approved);
        assert_eq!(decision["decidedBy"], "timeout");
        let after = step(&run, "after").status.as_str();
        assert_eq!(after, if approved { "succeeded" } else { "skipped" });
        if !approved {
            assert_eq!(run.error.as_ref().unwrap()["code"], "approval_rejected");
        }
    }
}

/// Waiting runs settle at once; poll until the timeout decides it.
async fn settled_after_timeout(server: &TestServer, run: &str) -> Run {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let current = server.client.get_run(run).await.unwrap();
        if current.status != "waiting" {
            return settled(server, run).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the approval never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn rejections_fail_or_continue(backend: Backend) {
    let server = start(backend).await;
    for (on_reject, expected) in [("fail", "failed"), ("continue", "completed")] {
        let orchestration = create(
            &server,
            json!([
                { "id": "gate", "type": "approval", "onReject": on_reject },
                { "id": "route", "type": "decision",
                  "cases": [{ "conditions": [{ "path": "steps.gate.output.approved", "operator": "eq", "value": false }],
                              "nextStepId": "rejected" }],
                  "defaultNextStepId": "approved" },
                { "id": "approved", "type": "compute", "functionId": "echo" },
                { "id": "rejected", "type": "compute", "functionId": "echo" }
            ]),
        )
        .await;
        let run_id = start_run(&server, &orchestration, json!({})).await;
        assert_eq!(settled(&server, &run_id).await.status, "waiting");
        server
            .client
            .reject_step(&run_id, "gate", Some("not now"))
            .await
            .expect("rejecting");
        let run = settled(&server, &run_id).await;
        assert_eq!(run.status, expected, "onReject {on_reject}: {run:#?}");
        let decision = step(&run, "gate").output.clone().unwrap();
        assert_eq!(decision["approved"], false);
        assert_eq!(decision["comment"], "not now");
        match on_reject {
            "fail" => {
                assert_eq!(step(&run, "gate").status, "failed");
                assert_eq!(run.error.as_ref().unwrap()["code"], "approval_rejected");
                assert_eq!(step(&run, "rejected").status, "skipped");
            }
            _ => {
                assert_eq!(step(&run, "gate").status, "succeeded");
                assert_eq!(
                    step(&run, "rejected").status,
                    "succeeded",
                    "the decision saw the rejection"
                );
            }
        }
        // A decided step is not waiting any more.
        let again = server
            .client
            .approve_step(&run_id, "gate", None)
            .await
            .unwrap_err();
        assert!(
            matches!(again, trellis_client::Error::Api { status: 409, .. }),
            "{again:?}"
        );
    }
}

async fn retries_until_success_or_exhaustion(backend: Backend) {
    let server = start(backend).await;
    let run = run_to_end(
        &server,
        json!([{ "id": "flaky", "type": "compute", "functionId": "flaky",
                 "params": { "succeedOnAttempt": 3 },
                 "retry": { "maxAttempts": 3, "backoffMs": 20, "multiplier": 2 } }]),
        json!({}),
    )
    .await;
    assert_eq!(run.status, "completed", "{run:#?}");
    let flaky = step(&run, "flaky");
    assert_eq!(flaky.attempts, 3);
    let output = flaky.output.clone().unwrap();
    assert_eq!(output["attempt"], 3);
    assert_eq!(
        output["idempotencyKey"],
        format!("{}/flaky/1", run.id),
        "one key for every attempt of the step execution"
    );
    let waited = flaky.finished_at.unwrap() - flaky.started_at.unwrap();
    assert!(
        waited >= chrono::TimeDelta::milliseconds(60),
        "backoffs of 20 and 40 ms: {waited}"
    );

    let run = run_to_end(
        &server,
        json!([{ "id": "flaky", "type": "compute", "functionId": "flaky",
                 "params": { "succeedOnAttempt": 5 },
                 "retry": { "maxAttempts": 2, "backoffMs": 1 } }]),
        json!({}),
    )
    .await;
    assert_eq!(run.status, "failed");
    let flaky = step(&run, "flaky");
    assert_eq!((flaky.status.as_str(), flaky.attempts), ("failed", 2));
    assert_eq!(flaky.error.as_ref().unwrap()["code"], "not_yet");
    assert_eq!(run.error.as_ref().unwrap()["code"], "step_failed");
    assert!(
        run.error.as_ref().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("after 2 attempts")
    );

    // A permanent error is not retried, whatever `retry` allows.
    let run = run_to_end(
        &server,
        json!([{ "id": "flaky", "type": "compute", "functionId": "flaky",
                 "params": { "failPermanently": true },
                 "retry": { "maxAttempts": 5, "backoffMs": 1 } }]),
        json!({}),
    )
    .await;
    assert_eq!((run.status.as_str(), step(&run, "flaky").attempts), ("failed", 1));

    // A step's own timeoutMs cuts a slow call, which counts as retryable.
    let run = run_to_end(
        &server,
        json!([{ "id": "slow", "type": "compute", "functionId": "flaky", "timeoutMs": 50,
                 "params": { "sleepMs": 2000 },
                 "retry": { "maxAttempts": 2, "backoffMs": 1 } }]),
        json!({}),
    )
    .await;
    let slow = step(&run, "slow");
    assert_eq!((run.status.as_str(), slow.attempts), ("failed", 2), "{run:#?}");
    assert_eq!(slow.error.as_ref().unwrap()["code"], "function_timeout");
}

async fn cancelling_a_waiting_run(backend: Backend) {
    let server = start(backend).await;
    let orchestration = create(
        &server,
        json!([
            { "id": "gate", "type": "approval" },
            { "id": "after", "type": "compute", "functionId": "echo" }
        ]),
    )
    .await;
    let run_id = start_run(&server, &orchestration, json!({})).await;
    assert_eq!(settled(&server, &run_id).await.status, "waiting");
    let run = server.client.cancel_run(&run_id).await.expect("cancelling");
    assert_eq!(run.status, "cancelled");
    assert_eq!(step(&run, "gate").status, "cancelled");
    assert_eq!(step(&run, "after").status, "cancelled");
    assert_eq!(run.error.as_ref().unwrap()["code"], "cancelled");
    for error in [
        server
            .client
            .approve_step(&run_id, "gate", None)
            .await
            .unwrap_err(),
        server.client.cancel_run(&run_id).await.unwrap_err(),
    ] {
        assert!(
            matches!(error, trellis_client::Error::Api { status: 409, .. }),
            "{error:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.client.get_run(&run_id).await.unwrap().status,
        "cancelled",
        "and it stays so"
    );
}

async fn runs_keep_the_version_they_started_with(backend: Backend) {
    let server = start(backend).await;
    let steps = |version: u32| {
        json!([
            { "id": "gate", "type": "approval" },
            { "id": "work", "type": "compute", "functionId": "echo", "params": { "version": version } }
        ])
    };
    let orchestration = create(&server, steps(1)).await;
    let first = start_run(&server, &orchestration, json!({})).await;
    assert_eq!(settled(&server, &first).await.status, "waiting");
    server
        .client
        .update_orchestration(&orchestration, &json!({ "name": "test", "steps": steps(2) }))
        .await
        .expect("updating");
    let second = start_run(&server, &orchestration, json!({})).await;
    assert_eq!(settled(&server, &second).await.orchestration_version, 2);
    // Deleting the orchestration does not stop the runs it started.
    server
        .client
        .delete_orchestration(&orchestration)
        .await
        .expect("deleting");
    for (run, version) in [(&first, 1), (&second, 2)] {
        server
            .client
            .approve_step(run, "gate", None)
            .await
            .expect("approving");
        let run = settled(&server, run).await;
        assert_eq!(run.status, "completed");
        assert_eq!(run.orchestration_version, version);
        assert_eq!(step(&run, "work").output.as_ref().unwrap()["version"], version);
    }
}

async fn bad_requests_get_precise_errors(backend: Backend) {
    let server = start(backend).await;
    let orchestration = create(
        &server,
        json!([{ "id": "gate", "type": "approval" }, { "id": "work", "type": "compute", "functionId": "echo" }]),
    )
    .await;
    let post = |path: String, body: Value| {
        let request = server.http.post(server.url(&path)).bearer_auth(TOKEN).json(&body);
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let runs = format!("/v1/orchestrations/{orchestration}/runs");
    let cases = [
        (
            post(runs.clone(), json!({ "input": [1, 2] })).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            post(runs.clone(), json!({ "inputs": {} })).await,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post(runs.clone(), json!({ "input": { "big": "x".repeat(1 << 20) } })).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            post("/v1/orchestrations/nope/runs".into(), json!({})).await,
            StatusCode::NOT_FOUND,
            "orchestration_not_found",
        ),
        (
            post("/v1/runs/nope/cancel".into(), json!({})).await,
            StatusCode::NOT_FOUND,
            "run_not_found",
        ),
    ];
    for ((status, body), expected_status, code) in cases {
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap()),
            (expected_status, code),
            "{body}"
        );
    }
    let run = start_run(&server, &orchestration, json!({})).await;
    assert_eq!(settled(&server, &run).await.status, "waiting");
    let decide = |step: &str| format!("/v1/runs/{run}/steps/{step}/approve");
    for (path, expected_status, code) in [
        (decide("nope"), StatusCode::NOT_FOUND, "step_not_found"),
        (decide("work"), StatusCode::BAD_REQUEST, "not_an_approval_step"),
    ] {
        let (status, body) = post(path, json!({})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap()),
            (expected_status, code),
            "{body}"
        );
    }
    let (status, body) = post(decide("gate"), json!({ "comment": "x".repeat(5000) })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    // Nothing above changed the run.
    assert_eq!(server.client.get_run(&run).await.unwrap().status, "waiting");
}

async fn caps_stop_loops_and_oversized_outputs(backend: Backend) {
    let server = start(backend).await;
    let run = run_to_end(
        &server,
        json!([
            { "id": "spin", "type": "compute", "functionId": "echo" },
            { "id": "again", "type": "decision",
              "cases": [{ "conditions": [{ "path": "input.forever", "operator": "eq", "value": true }],
                          "nextStepId": "spin" }],
              "defaultNextStepId": "spin" }
        ]),
        json!({ "forever": true }),
    )
    .await;
    assert_eq!(run.status, "failed");
    assert_eq!(run.error.as_ref().unwrap()["code"], "step_limit_exceeded");

    let run = run_to_end(
        &server,
        json!([{ "id": "huge", "type": "compute", "functionId": "huge-output", "params": { "bytes": 2_000_000 } }]),
        json!({}),
    )
    .await;
    assert_eq!(run.status, "failed");
    assert_eq!(
        step(&run, "huge").error.as_ref().unwrap()["code"],
        "output_too_large"
    );

    // Template fan-out: a thousand params, each the whole (almost 1 MiB) input. The
    // step's budget stops it at the fourth copy; the node keeps serving.
    let params: serde_json::Map<String, Value> = (0..1000)
        .map(|n| (format!("p{n:04}"), json!("{{ input }}")))
        .collect();
    let run = run_to_end(
        &server,
        json!([{ "id": "fan", "type": "compute", "functionId": "echo", "params": params }]),
        json!({ "big": "x".repeat(1_000_000) }),
    )
    .await;
    assert_eq!(run.status, "failed");
    let error = step(&run, "fan").error.clone().unwrap();
    assert_eq!(error["code"], "template_error", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("reached at param `p0003`"),
        "three copies fit in the budget, the fourth does not: {error}"
    );
    let echoed = server
        .client
        .invoke_function("echo", &json!({ "still": "serving" }))
        .await;
    assert_eq!(echoed.expect("the node still serves").output["still"], "serving");
}

async fn without_workers_runs_wait_for_one(backend: Backend) {
    let options = Options {
        workers: 0,
        ..Options::default()
    };
    let server = start_with(backend, options).await;
    let orchestration = create(
        &server,
        json!([{ "id": "work", "type": "compute", "functionId": "echo" }]),
    )
    .await;
    let run = start_run(&server, &orchestration, json!({ "n": 1 })).await;
    let pending = server
        .client
        .wait_run(&run, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(pending.status, "pending", "no worker, no progress");
    let server = server.restart_with(Options::default()).await;
    let run = settled(&server, &run).await;
    assert_eq!(run.status, "completed");
    assert_eq!(step(&run, "work").output.as_ref().unwrap()["n"], 1);
}

/// A call longer than the lease keeps its run: the worker renews the lease while it
/// calls, so the other worker never takes the step over. The call is held at a gate
/// until the stored lease has been pushed a whole lease length past where it stood
/// when the call began, so the call outlived its first lease.
async fn a_step_longer_than_the_lease_keeps_it(backend: Backend) {
    let lease = Duration::from_secs(2);
    let options = Options {
        lease,
        workers: 2,
        ..Options::default()
    };
    let server = start_with(backend, options).await;
    let mut gate = open_gate(&server).await;
    let orchestration = create(
        &server,
        json!([{ "id": "slow", "type": "compute", "functionId": "fetch", "params": { "url": gate.url } }]),
    )
    .await;
    let run_id = start_run(&server, &orchestration, json!({})).await;
    assert_eq!(gate.next().await, Event::Arrived);

    let store = server.store().await;
    let held = || async {
        let (run, _) = store.get_run(&run_id).await.unwrap().expect("the run");
        (
            run.due_at.expect("a leased run is due"),
            run.lease_owner.expect("an owner"),
        )
    };
    let (first_end, owner) = held().await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (end, holder) = held().await;
        assert_eq!(holder, owner, "the lease changed hands during the call");
        if end >= first_end + lease {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was never renewed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gate.release();
    let run = settled(&server, &run_id).await;
    assert_eq!(run.status, "completed", "{run:#?}");
    let slow = step(&run, "slow");
    assert_eq!(slow.output.as_ref().unwrap()["body"], "released");
    assert_eq!(slow.attempts, 1, "no other worker took the step over");
}

/// Cancelling a run in the middle of a call stops the call: at its next lease renewal
/// the worker finds the run gone from under it and drops the call, which closes the
/// function's connection, and the call's result never lands.
async fn cancelling_a_running_run_stops_its_call(backend: Backend) {
    let options = Options {
        lease: Duration::from_secs(2),
        ..Options::default()
    };
    let server = start_with(backend, options).await;
    let mut gate = open_gate(&server).await;
    let orchestration = create(
        &server,
        json!([
            { "id": "call", "type": "compute", "functionId": "fetch", "params": { "url": gate.url } },
            { "id": "after", "type": "compute", "functionId": "echo" }
        ]),
    )
    .await;
    let run_id = start_run(&server, &orchestration, json!({})).await;
    assert_eq!(gate.next().await, Event::Arrived);

    let run = server.client.cancel_run(&run_id).await.expect("cancelling");
    assert_eq!(run.status, "cancelled");
    assert_eq!(step(&run, "call").status, "cancelled");
    assert_eq!(step(&run, "after").status, "cancelled");
    assert_eq!(gate.next().await, Event::HungUp, "the call is stopped");

    gate.release();
    let run = server.client.get_run(&run_id).await.unwrap();
    assert_eq!(run.status, "cancelled");
    let call = step(&run, "call");
    assert_eq!((call.status.as_str(), call.attempts), ("cancelled", 1));
    assert!(call.output.is_none(), "the stopped call left no output: {run:#?}");
}

/// A gate, and the `fetch` example allowed to call it.
async fn open_gate(server: &TestServer) -> Gate {
    let gate = Gate::start().await;
    server
        .client
        .upload_function("fetch", component("fetch"))
        .await
        .expect("uploading fetch");
    // A deadline far past the gate's patience: only the engine can end a held call.
    let patch = SettingsPatch {
        allowed_hosts: Some(vec![gate.origin.clone()]),
        timeout_ms: Some(300_000),
        ..Default::default()
    };
    server
        .client
        .update_function_settings("fetch", &patch)
        .await
        .expect("allowing the gate");
    gate
}

async fn a_multi_line_secret_printed_line_by_line_is_masked(backend: Backend) {
    let server = start(backend).await;
    let lines = [
        secret("-----BEGIN PRIVATE KEY----- "),
        secret("MIIEvQIBADANBgkq"),
        secret("-----END PRIVATE KEY----- "),
    ];
    let pem = lines.join("\r\n");
    let run = run_to_end(
        &server,
        json!([{ "id": "printer", "type": "compute", "functionId": "log-flood",
                 "params": { "count": 1, "stdoutBytes": 0 },
                 "encryptedParams": { "print": { "value": pem, "encrypt": true } } }]),
        json!({}),
    )
    .await;
    assert_eq!(run.status, "completed", "{run:#?}");
    let logs: Vec<trellis_client::LogEntry> =
        serde_json::from_value(step(&run, "printer").logs.clone().expect("logs")).expect("log entries");
    let printed: Vec<&str> = logs
        .iter()
        .filter(|entry| entry.source == trellis_client::LogSource::Stdout)
        .map(|entry| entry.message.as_str())
        .collect();
    assert_eq!(
        printed, ["********"; 3],
        "each line of the key was printed and masked"
    );
    let secrets: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_nowhere(&raw_run(&server, &run.id).await, &secrets, "the run record");
    // The node logs each of the step's entries at DEBUG: its log line, and the
    // masked lines where the key was printed. Without them the search proves nothing.
    let key = format!("key={}/printer/", run.id);
    logs::assert_captured(&["the quick brown fox", &key]);
    logs::assert_captured(&["trellis::function: ********", &key]);
    assert_nowhere(&logs::captured(), &secrets, "the debug log");
}

/// What `leak-encoded` does with the secret below, in its order: each form by its
/// name there, written out by hand. The secret holds what each encoder writes its own
/// way: quotes, a backslash and a tab (JSON), a non-ASCII letter (ASCII-only JSON,
/// UTF-8 percent-encoding), a space (`%20` or `+`), `/` (kept by Python's `quote`),
/// `~*'!` (kept by some encoders and not others), `&=+@`.
const SECRET_PREFIX: &str = "p@ss w/rd\"\\\t~*'!&=+é";
const PREFIX_FORMS: [(&str, &str); 8] = [
    ("raw", SECRET_PREFIX),
    ("json", r#"p@ss w/rd\"\\\t~*'!&=+é"#),
    ("jsonAscii", r#"p@ss w/rd\"\\\t~*'!&=+\u00e9"#),
    ("percent", "p%40ss%20w%2Frd%22%5C%09~%2A%27%21%26%3D%2B%C3%A9"),
    (
        "percentLower",
        "p%40ss%20w%2frd%22%5c%09~%2a%27%21%26%3d%2b%c3%a9",
    ),
    ("queryEscape", "p%40ss+w%2Frd%22%5C%09~%2A%27%21%26%3D%2B%C3%A9"),
    ("uriComponent", "p%40ss%20w%2Frd%22%5C%09~*'!%26%3D%2B%C3%A9"),
    ("pythonQuote", "p%40ss%20w/rd%22%5C%09~%2A%27%21%26%3D%2B%C3%A9"),
];

/// Every form of `secret` (made by [`secret`] from [`SECRET_PREFIX`]) that
/// `leak-encoded` emits, by name: the hand-written ones, and base64 in both
/// alphabets, padded and not, and inside a Basic credential.
fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let tail = secret
        .strip_prefix(SECRET_PREFIX)
        .expect("a secret made from the prefix");
    let mut forms: Vec<(&str, String)> = PREFIX_FORMS
        .iter()
        .map(|(name, prefix)| (*name, format!("{prefix}{tail}")))
        .collect();
    forms.extend([
        ("base64", STANDARD.encode(secret)),
        ("base64NoPad", STANDARD_NO_PAD.encode(secret)),
        ("base64Url", URL_SAFE.encode(secret)),
        ("base64UrlNoPad", URL_SAFE_NO_PAD.encode(secret)),
        (
            "basicAuth",
            format!("Basic {}", STANDARD.encode(format!("user:{secret}"))),
        ),
    ]);
    forms
}

async fn every_encoding_of_a_secret_is_masked_in_outputs_logs_and_errors(backend: Backend) {
    let server = start(backend).await;
    server
        .client
        .upload_function("leak-encoded", component("leak-encoded"))
        .await
        .expect("uploading leak-encoded");
    // Called directly with a value of the same shape (not a secret: no encryptedParams),
    // the fixture shows it writes exactly the forms searched for below.
    let sample = secret(SECRET_PREFIX);
    let direct = server
        .client
        .invoke_function("leak-encoded", &json!({ "secret": sample }))
        .await
        .expect("invoking leak-encoded");
    for (name, form) in encodings(&sample) {
        assert_eq!(direct.output[name], form.as_str(), "the fixture's {name} form");
    }

    let secret = secret(SECRET_PREFIX);
    // A function's error code must look like one (lowercase, digits, `_`) to be kept.
    let code = format!("leak_{}", uuid::Uuid::new_v4().simple());
    let encrypted = json!({
        "secret": { "value": secret, "encrypt": true },
        "code": { "value": code, "encrypt": true }
    });
    let orchestration = create(
        &server,
        json!([
            { "id": "output", "type": "compute", "functionId": "leak-encoded",
              "encryptedParams": encrypted },
            { "id": "error", "type": "compute", "functionId": "leak-encoded",
              "params": { "fail": true }, "encryptedParams": encrypted }
        ]),
    )
    .await;
    let run_id = start_run(&server, &orchestration, json!({})).await;
    let run = settled(&server, &run_id).await;
    assert_eq!(run.status, "failed", "{run:#?}");
    let forms = encodings(&secret);
    // Where the Basic credential was, `user:`'s own base64 and the one or two
    // characters that mix its bits with the secret's stay; the rest is masked.
    let masked = |name: &str, shown: &str| match name {
        "basicAuth" => shown.starts_with("Basic ") && shown.contains("********"),
        _ => shown == "********",
    };

    // The output: every form masked where it stood.
    let output = step(&run, "output").output.clone().expect("an output");
    for (name, _) in &forms {
        let shown = output[name].as_str().unwrap_or_default();
        assert!(masked(name, shown), "output {name}: {shown}");
    }
    let all = output["all"].as_str().expect("all the forms in one text");
    for (name, _) in forms.iter().filter(|(name, _)| *name != "basicAuth") {
        assert!(all.contains(&format!("{name}=<********>")), "{all}");
    }

    // The logs of both steps: each form through the log import and on stdout.
    for step_id in ["output", "error"] {
        let logs: Vec<trellis_client::LogEntry> =
            serde_json::from_value(step(&run, step_id).logs.clone().expect("logs")).expect("log entries");
        for (name, _) in &forms {
            let logged = logs
                .iter()
                .find(|e| {
                    e.source == trellis_client::LogSource::Log && e.message.starts_with(&format!("{name}: "))
                })
                .unwrap_or_else(|| panic!("{step_id} logged no {name}: {logs:?}"));
            assert!(
                masked(name, &logged.message[name.len() + 2..]),
                "{step_id}: {}",
                logged.message
            );
            let printed = logs
                .iter()
                .find(|e| {
                    e.source == trellis_client::LogSource::Stdout
                        && e.message.starts_with(&format!("{name}="))
                })
                .unwrap_or_else(|| panic!("{step_id} printed no {name}: {logs:?}"));
            assert!(
                masked(name, &printed.message[name.len() + 1..]),
                "{step_id}: {}",
                printed.message
            );
        }
    }

    // The error: its message masked form by form; its code, which was the second
    // secret, replaced as a whole (a code is one token: there is no rest to keep).
    let error = step(&run, "error").error.clone().expect("an error");
    assert_eq!(error["code"], "function_error", "{error}");
    let message = error["message"].as_str().expect("a message");
    assert!(
        message.starts_with("leaked raw=<********> json=<********> "),
        "{message}"
    );
    for (name, _) in forms.iter().filter(|(name, _)| *name != "basicAuth") {
        assert!(message.contains(&format!("{name}=<********>")), "{message}");
    }
    let run_error = run.error.as_ref().expect("the run's error");
    assert_eq!(run_error["code"], "step_failed");
    assert!(
        run_error["message"]
            .as_str()
            .unwrap()
            .contains("leaked raw=<********>"),
        "{run_error}"
    );

    // None of the forms, nor the code, anywhere.
    let mut searched: Vec<&str> = forms.iter().map(|(_, form)| form.as_str()).collect();
    searched.push(&code);
    let record = raw_run(&server, &run_id).await;
    assert!(
        record.contains("leaked raw=<********>"),
        "the record was searched: {record}"
    );
    assert_nowhere(&record, &searched, "the run record");
    let listed = server
        .http
        .get(server.url(&format!("/v1/orchestrations/{orchestration}/runs")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("listing runs")
        .text()
        .await
        .expect("body");
    assert!(listed.contains(&run_id), "{listed}");
    assert_nowhere(&listed, &searched, "the run list");
    let stored = String::from_utf8_lossy(&database_bytes(server.database_url())).into_owned();
    assert!(
        stored.contains("leaked raw=<********>"),
        "the stored run was searched"
    );
    assert_nowhere(&stored, &searched, "the database");
    logs::assert_captured(&["raw: ********", &format!("key={run_id}/output/")]);
    logs::assert_captured(&["raw: ********", &format!("key={run_id}/error/")]);
    assert_nowhere(&logs::captured(), &searched, "the debug log");
}
