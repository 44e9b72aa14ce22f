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
use trellis_client::Run;
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
    runs_keep_the_version_they_started_with,
    bad_requests_get_precise_errors,
    caps_stop_loops_and_oversized_outputs,
    without_workers_runs_wait_for_one,
    a_step_longer_than_the_lease_keeps_it,
    a_multi_line_secret_printed_line_by_line_is_masked,
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
            { "id": "pause", "type": "delay", "delayMs": 1500 },
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
    let stopped = server.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = stopped
        .start(Options::default())
        .await
        .unwrap_or_else(|(error, _)| panic!("restarting: {error:#}"));
    let run = server.client.get_run(&run_id).await.unwrap();
    assert_eq!(
        step(&run, "after").status,
        "pending",
        "the delay is not over yet after the restart"
    );
    let run = settled(&server, &run_id).await;
    assert_eq!(run.status, "completed", "{run:#?}");
    let pause = step(&run, "pause");
    let waited = pause.finished_at.unwrap() - pause.started_at.unwrap();
    assert!(
        waited >= chrono::TimeDelta::milliseconds(1500),
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

async fn a_step_longer_than_the_lease_keeps_it(backend: Backend) {
    let options = Options {
        lease: Duration::from_secs(1),
        workers: 2,
        ..Options::default()
    };
    let server = start_with(backend, options).await;
    let run = run_to_end(
        &server,
        json!([{ "id": "slow", "type": "compute", "functionId": "flaky", "params": { "sleepMs": 2500 } }]),
        json!({}),
    )
    .await;
    assert_eq!(run.status, "completed", "{run:#?}");
    // Renewed every third of a second: no other worker took the step over.
    assert_eq!(step(&run, "slow").attempts, 1);
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
    assert_nowhere(&logs::captured(), &secrets, "the debug log");
}
