//! The announcement's `provision-repo` step end to end, against a mock GitHub on
//! loopback that verifies the app JWT's RS256 signature and the installation token:
//! `create-github-repo` called directly, with both key formats and every refusal, and
//! in the orchestration evaluate-request → approval → create-github-repo with the key
//! in `encryptedParams`. No key or token may reach a record, a response or a log.

// In a test a panic is the failure report; the assertion messages carry the context.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::time::Duration;
use trellis_client::SettingsPatch;
use trellis_tests::mock_github::{MockGitHub, PRIVATE_KEY_PKCS1, PRIVATE_KEY_PKCS8};
use trellis_tests::search::{assert_nowhere, database_bytes};
use trellis_tests::{Backend, TOKEN, TestServer, component, logs, on_both_backends};

on_both_backends!(
    the_function_creates_a_repository_as_the_app,
    the_announced_orchestration_provisions_a_repository
);

const APP_ID: &str = "123456";
const INSTALLATION_ID: &str = "987";

async fn start(backend: Backend, github: &MockGitHub) -> TestServer {
    logs::capture();
    let server = TestServer::start(backend).await;
    for function in ["create-github-repo", "evaluate-request"] {
        server
            .client
            .upload_function(function, component(function))
            .await
            .unwrap();
    }
    let patch = SettingsPatch {
        allowed_hosts: Some(vec![github.url.clone()]),
        ..Default::default()
    };
    server
        .client
        .update_function_settings("create-github-repo", &patch)
        .await
        .unwrap();
    server
}

fn params(github: &MockGitHub, key: &str, name: &str) -> Value {
    json!({
        "GITHUB_APP_ID": APP_ID,
        "GITHUB_PRIVATE_KEY": key,
        "GITHUB_INSTALLATION_ID": INSTALLATION_ID,
        "GITHUB_API_URL": github.url,
        "org": "acme",
        "name": name,
    })
}

/// The secret-shaped parts of `key`: every base64 line. The two fixtures encode the
/// same key differently, so they share none.
fn key_lines(key: &str) -> Vec<&str> {
    key.lines().filter(|line| !line.starts_with("-----")).collect()
}

async fn the_function_creates_a_repository_as_the_app(backend: Backend) {
    let github = MockGitHub::start(APP_ID, INSTALLATION_ID).await;
    let server = start(backend, &github).await;
    for key in [PRIVATE_KEY_PKCS1, PRIVATE_KEY_PKCS8] {
        let result = server
            .client
            .invoke_function("create-github-repo", &params(&github, key, "payments-api"))
            .await
            .unwrap();
        assert_eq!(
            result.output,
            json!({ "id": 4242, "fullName": "acme/payments-api", "htmlUrl": "https://github.com/acme/payments-api" })
        );
        let shown = serde_json::to_string(&result).unwrap();
        assert_nowhere(
            &shown,
            &[github.issued_token().unwrap().as_str()],
            "the output and logs",
        );
        assert_nowhere(&shown, &key_lines(key), "the output and logs");
    }
    // `private` defaults to true.
    assert_eq!(
        github.calls(),
        [
            "access_tokens 201",
            "repos private=true 201",
            "access_tokens 201",
            "repos private=true 201"
        ]
    );

    let with = |name: &str, value: Value| {
        let mut params = params(&github, PRIVATE_KEY_PKCS1, "payments-api");
        params[name] = value;
        params
    };
    for (params, code) in [
        (
            with(
                "GITHUB_PRIVATE_KEY",
                json!("-----BEGIN RSA PRIVATE KEY-----\nnot a key"),
            ),
            "invalid_params",
        ),
        (with("GITHUB_APP_ID", json!("999")), "github_unauthorized"),
        (with("GITHUB_INSTALLATION_ID", json!(1)), "github_not_found"),
        (with("name", json!("exists")), "github_unprocessable"),
        (with("org", json!("forbidden")), "github_forbidden"),
        (with("org", json!("acme/../app")), "invalid_params"),
        (
            with("GITHUB_INSTALLATION_ID", json!("987/../1")),
            "invalid_params",
        ),
    ] {
        let error = server
            .client
            .invoke_function("create-github-repo", &params)
            .await
            .unwrap_err();
        let trellis_client::Error::Api {
            status,
            code: got,
            details,
            ..
        } = error
        else {
            panic!("not an API error")
        };
        assert_eq!((status, got.as_str()), (422, code), "{details}");
        assert_nowhere(&details.to_string(), &key_lines(PRIVATE_KEY_PKCS1), "an error");
    }
}

async fn the_announced_orchestration_provisions_a_repository(backend: Backend) {
    let github = MockGitHub::start(APP_ID, INSTALLATION_ID).await;
    let server = start(backend, &github).await;
    // The example the README walks through, with the test key and this mock's address.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/provision-repo.json");
    let mut definition: Value = serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let provision = &mut definition["steps"][2];
    provision["encryptedParams"]["GITHUB_PRIVATE_KEY"]["value"] = json!(PRIVATE_KEY_PKCS1);
    provision["params"]["GITHUB_API_URL"] = json!(github.url);
    let orchestration = server.client.create_orchestration(&definition).await.unwrap().id;
    let input = json!({ "org": "acme", "name": "payments-api", "private": true });
    let run = server
        .client
        .start_run(&orchestration, Some(&input))
        .await
        .unwrap()
        .id;
    let waiting = server
        .client
        .wait_run(&run, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(waiting.status, "waiting", "{waiting:#?}");
    server
        .client
        .approve_step(&run, "approve", Some("ok"))
        .await
        .unwrap();
    let done = server
        .client
        .wait_run(&run, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, "completed", "{done:#?}");
    assert_eq!(
        done.step("provision-repo").unwrap().output,
        Some(
            json!({ "id": 4242, "fullName": "acme/payments-api", "htmlUrl": "https://github.com/acme/payments-api" })
        )
    );

    let token = github.issued_token().unwrap();
    let mut secrets = key_lines(PRIVATE_KEY_PKCS1);
    secrets.push(&token);
    let record = server
        .http
        .get(server.url(&format!("/v1/runs/{run}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_nowhere(&record, &secrets, "the run record");
    assert_nowhere(
        &String::from_utf8_lossy(&database_bytes(server.database_url())),
        &secrets,
        "the database",
    );
    // The search means something only if the capture holds this step's own log line.
    logs::assert_captured(&[
        "creating acme/payments-api",
        &format!("key={run}/provision-repo/"),
    ]);
    assert_nowhere(&logs::captured(), &secrets, "the debug log");
}
