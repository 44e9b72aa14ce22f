//! Steps sent without `id`: the announcement's SDK body is accepted as is, every
//! step gets a readable id that is returned, the same body sent again keeps its
//! secrets by those ids, and a missing field is an `invalid_definition` that names
//! the step and the field.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trellis_tests::{Backend, TestServer, component, on_both_backends};

async fn start(backend: Backend) -> TestServer {
    let server = TestServer::start(backend).await;
    for id in ["fn-create-repo", "digest"] {
        server
            .client
            .upload_function(id, component("digest"))
            .await
            .expect("upload digest");
    }
    server
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Runs the orchestration to its end and returns the output of step `step`.
async fn output_of(server: &TestServer, orchestration: &str, step: &str) -> Value {
    let started = server.client.start_run(orchestration, None).await.expect("start");
    let run = server
        .client
        .wait_run(&started.id, std::time::Duration::from_secs(30))
        .await
        .expect("wait");
    assert_eq!(run.status, "completed", "{run:#?}");
    run.step(step).and_then(|s| s.output.clone()).expect("an output")
}

async fn the_announcements_sdk_body_is_accepted_as_is(backend: Backend) {
    let server = start(backend).await;
    let secret = "sk_live_...";
    let body = json!({ "name": "Provision Repo", "steps": [{ "type": "compute", "functionId": "fn-create-repo",
        "encryptedParams": { "API_KEY": { "value": secret, "encrypt": true } } }] });
    let (status, created) = server
        .send_json(reqwest::Method::POST, "/v1/orchestrations", &body)
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["steps"][0]["id"], "fn-create-repo",
        "named after its function"
    );
    assert_eq!(
        created["steps"][0]["encryptedParams"]["API_KEY"],
        json!({ "value": "********", "encrypted": true })
    );
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        output_of(&server, &id, "fn-create-repo").await["API_KEY"],
        sha256(secret)
    );

    // The same body again, still without ids, but keeping the secret as read back:
    // the assigned id is the same, so the stored secret is found and kept.
    let keep = json!({ "name": "Provision Repo", "steps": [{ "type": "compute", "functionId": "fn-create-repo",
        "encryptedParams": { "API_KEY": { "value": "********", "encrypted": true } } }] });
    let (status, updated) = server
        .send_json(reqwest::Method::PUT, &format!("/v1/orchestrations/{id}"), &keep)
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(
        output_of(&server, &id, "fn-create-repo").await["API_KEY"],
        sha256(secret)
    );
}

async fn assigned_ids_are_unique_readable_and_respect_chosen_ones(backend: Backend) {
    let server = start(backend).await;
    let body = json!({ "name": "ids", "steps": [
        { "type": "compute", "functionId": "digest" },
        { "type": "approval", "message": "ok?" },
        { "type": "compute", "functionId": "digest" },
        { "id": "approval-2", "type": "delay", "delayMs": 1 },
        { "type": "approval" },
    ] });
    let (status, created) = server
        .send_json(reqwest::Method::POST, "/v1/orchestrations", &body)
        .await;
    assert_eq!(status, 201, "{created}");
    let ids: Vec<&str> = created["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| step["id"].as_str().expect("every step has an id"))
        .collect();
    assert_eq!(
        ids,
        ["digest", "approval", "digest-2", "approval-2", "approval-3"]
    );
    // What is stored is what was returned.
    let read = server
        .client
        .get_orchestration(created["id"].as_str().expect("id"))
        .await
        .expect("get");
    let stored: Vec<&str> = read.definition.steps.iter().map(|step| step.id()).collect();
    assert_eq!(stored, ids);
}

async fn a_missing_field_names_the_step_and_field(backend: Backend) {
    let server = start(backend).await;
    let body = json!({ "name": "broken", "steps": [
        { "type": "approval" },
        { "id": "provision", "type": "compute",
          "encryptedParams": { "KEY": { "value": "sk_live_never_echoed", "encrypt": true } } },
    ] });
    let (status, error) = server
        .send_json(reqwest::Method::POST, "/v1/orchestrations", &body)
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "invalid_definition");
    assert_eq!(
        error["error"]["message"],
        "steps[1] (`provision`): missing field `functionId`"
    );
    assert!(!error.to_string().contains("sk_live_never_echoed"));
    let (status, error) = server
        .send_json(
            reqwest::Method::POST,
            "/v1/orchestrations",
            &json!({ "steps": [] }),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_definition"))
    );
    let (status, error) = server
        .send_json(
            reqwest::Method::POST,
            "/v1/orchestrations",
            &json!("not an object"),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_definition"))
    );
}

async fn an_update_may_send_back_what_was_read(backend: Backend) {
    let server = start(backend).await;
    let body = json!({ "name": "send back", "steps": [{ "type": "compute", "functionId": "digest",
        "encryptedParams": { "KEY": { "value": "sk_live_send_back", "encrypt": true } } }] });
    let (status, created) = server
        .send_json(reqwest::Method::POST, "/v1/orchestrations", &body)
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/orchestrations/{id}");

    // The read, edited and sent back whole: its read-only fields are accepted.
    let mut read = created.clone();
    read["name"] = json!("renamed");
    let (status, updated) = server.send_json(reqwest::Method::PUT, &path, &read).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (updated["version"].as_i64(), updated["name"].as_str()),
        (Some(2), Some("renamed"))
    );
    assert_eq!(
        output_of(&server, &id, "digest").await["KEY"],
        sha256("sk_live_send_back")
    );

    // Sent back again, that first read is stale now: refused, nothing changed.
    let (status, error) = server.send_json(reqwest::Method::PUT, &path, &read).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{error}"
    );
    let mut other = updated.clone();
    other["id"] = json!("another-orchestration");
    let (status, error) = server.send_json(reqwest::Method::PUT, &path, &other).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_definition")),
        "{error}"
    );
    let current = server.client.get_orchestration(&id).await.expect("get");
    assert_eq!(
        (current.version, current.definition.name.as_str()),
        (2, "renamed")
    );
}

/// 30,000 steps fit in a 1 MiB body; they are refused by count before any is parsed
/// or named, and the server goes on serving.
async fn a_huge_step_list_is_refused_before_any_work(backend: Backend) {
    let server = start(backend).await;
    let steps: Vec<Value> = (0..30_000)
        .map(|_| json!({ "type": "delay", "delayMs": 1 }))
        .collect();
    let body = json!({ "name": "huge", "steps": steps });
    let (status, error) = server
        .send_json(reqwest::Method::POST, "/v1/orchestrations", &body)
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["message"], "steps must hold 1 to 256 steps");
    assert!(
        server
            .client
            .list_orchestrations()
            .await
            .expect("still serving")
            .is_empty()
    );
}

on_both_backends!(
    an_update_may_send_back_what_was_read,
    a_huge_step_list_is_refused_before_any_work,
    the_announcements_sdk_body_is_accepted_as_is,
    assigned_ids_are_unique_readable_and_respect_chosen_ones,
    a_missing_field_names_the_step_and_field,
);
