//! `encryptedParams` through the HTTP API on both backends, exactly as announced:
//! encrypted before the database, masked on every read, decrypted only for the step
//! that owns them, rotatable without re-encrypting, and never in a response, an
//! error, a stored row or a log line.

use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use trellis::engine::Definitions;
use trellis::orchestrations::model::Step;
use trellis::secrets::{Rotation, input};
use trellis_tests::search::{assert_nowhere, database_bytes};
use trellis_tests::{Backend, Options, TOKEN, TestServer, component, keyring_json, logs, on_both_backends};

on_both_backends!(
    saves_encrypt_and_reads_mask,
    updates_keep_remove_and_refuse,
    storage_holds_no_plaintext,
    the_same_value_encrypts_differently,
    rotation_then_rewrap_then_retire_the_old_key,
    a_moved_blob_fails_to_decrypt_by_name,
    malformed_requests_never_echo_secrets,
    definitions_are_validated,
    the_rust_client_keeps_secrets_masked,
    rewrap_walks_every_page,
    rewrap_reports_what_it_cannot_open_and_writes_none_of_it,
);

/// On SQLite, rewrap leaves no blob under the retired key in any database file: the
/// rows it rewrites (here longer, `keyVersion` 9 → 10) keep no old bytes where they
/// were (rewrap's connections zero what they free), and the write-ahead log, which
/// still held the old pages, is emptied. Another connection's open read keeps the log
/// from emptying: rewrap says so, and a later rewrap finishes the job. (PostgreSQL
/// keeps old row versions until `VACUUM`, which no dump shows; nothing to test there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rewrap_leaves_no_retired_blob_in_any_file() {
    use sqlx::Connection;
    logs::capture();
    let nine = Options {
        secret_keys: keyring_json(9, &[9]),
        ..Options::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, nine).await;
    server
        .client
        .upload_function("digest", component("digest"))
        .await
        .expect("upload digest");
    let id = create(&server, &secret("key"), &secret("app")).await;
    let mut retired = Vec::new();
    for param in ["GITHUB_APP_ID", "GITHUB_PRIVATE_KEY"] {
        let (blob, version) = stored_blob(&server, &id, param).await;
        assert_eq!(version, 9);
        retired.push(blob.split(':').nth(1).expect("iv:ciphertext:tag").to_owned());
    }
    let server = server
        .restart_with(Options {
            secret_keys: keyring_json(10, &[9, 10]),
            ..Options::default()
        })
        .await;

    let mut reader = sqlx::SqliteConnection::connect(server.database_url())
        .await
        .expect("another connection");
    sqlx::query("BEGIN").execute(&mut reader).await.expect("BEGIN");
    sqlx::query("SELECT count(*) FROM orchestration_versions")
        .execute(&mut reader)
        .await
        .expect("a read that holds the log");
    let rotation = rotation(&server).await;
    let report = rotation.rewrap_all().await.expect("rewrap");
    assert_eq!(
        (report.params, report.checkpointed),
        (2, false),
        "the open read kept the log"
    );

    sqlx::query("COMMIT").execute(&mut reader).await.expect("COMMIT");
    reader.close().await.expect("closing");
    let report = rotation.rewrap_all().await.expect("rewrap again");
    assert_eq!((report.params, report.checkpointed), (0, true));
    let stored = String::from_utf8_lossy(&database_bytes(server.database_url())).into_owned();
    for ciphertext in &retired {
        assert!(
            !stored.contains(ciphertext.as_str()),
            "a blob under the retired key is still stored"
        );
    }
}

const MASKED: &str = "********";

/// A unique secret per test, so the log search finds only its own.
fn secret(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// The announcement's orchestration: evaluate → approval → provision with secrets.
fn provision_repo(private_key: &str, app_id: &str) -> Value {
    json!({
        "name": "Provision Repo",
        "description": "evaluate, approve, provision",
        "steps": [
            { "id": "evaluate", "type": "compute", "functionId": "digest" },
            { "id": "approve", "type": "approval", "message": "Create it?" },
            { "id": "provision-repo", "type": "compute", "functionId": "digest",
              "params": { "org": "acme", "GITHUB_APP_ID": "loses-to-the-secret" },
              "encryptedParams": {
                  "GITHUB_PRIVATE_KEY": { "value": private_key, "encrypt": true },
                  "GITHUB_APP_ID": { "value": app_id, "encrypt": true },
                  "REGION": { "value": "eu-west", "encrypt": false }
              } }
        ]
    })
}

async fn start(backend: Backend) -> TestServer {
    logs::capture();
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("digest", component("digest"))
        .await
        .expect("upload digest");
    server
}

async fn send(server: &TestServer, method: reqwest::Method, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = server
        .http
        .request(method, server.url(path))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(server: &TestServer, path: &str) -> Value {
    let response = server
        .http
        .get(server.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

/// Creates the provision-repo orchestration and returns its id.
async fn create(server: &TestServer, private_key: &str, app_id: &str) -> String {
    let body = provision_repo(private_key, app_id);
    let (status, created) = send(server, reqwest::Method::POST, "/v1/orchestrations", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("an id").to_owned()
}

/// The triggerParams the engine hands `step` of the current version in a run with no
/// input: the version read as the engine reads it ([`Definitions`]) and assembled by
/// the function the engine calls ([`input::assemble`]). The params are passed as
/// stored: they hold no `{{ }}` templates, which is all the engine resolves first.
async fn step_input(server: &TestServer, id: &str, step: &str) -> Result<Value, String> {
    let version = server
        .state()
        .orchestrations
        .get(id)
        .await
        .map_err(|e| e.to_string())?
        .version;
    let definition = Definitions::new(server.store().await)
        .get(id, version)
        .await
        .map_err(|e| format!("{e:#}"))?
        .expect("the current version is stored");
    let params = definition
        .steps
        .iter()
        .find_map(|candidate| match candidate {
            Step::Compute(compute) if compute.id == step => compute.params.clone(),
            _ => None,
        })
        .unwrap_or_default();
    let input = input::assemble(&definition, id, step, &Map::new(), &params, server.keyring())
        .map_err(|e| e.to_string())?;
    Ok(serde_json::from_str(&input.params).expect("JSON"))
}

/// What `trellis keys status` and `trellis keys rewrap` run: the rotation service on
/// the server's database, with the server's keyring.
async fn rotation(server: &TestServer) -> Rotation {
    Rotation::connect(server.database_url(), server.keyring().clone())
        .await
        .expect("opening the database")
}

fn assert_not_logged(secrets: &[&str]) {
    let captured = logs::captured();
    // The search means something only if requests were being logged at all.
    assert!(
        captured.contains("finished processing request"),
        "the debug log capture is not working"
    );
    assert_nowhere(&captured, secrets, "the debug log");
}

async fn saves_encrypt_and_reads_mask(backend: Backend) {
    let server = start(backend).await;
    let (key, app_id) = (secret("-----BEGIN RSA PRIVATE KEY-----\nMIIE"), secret("app"));
    let (status, created) = send(
        &server,
        reqwest::Method::POST,
        "/v1/orchestrations",
        &provision_repo(&key, &app_id),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["version"], 1);
    let id = created["id"].as_str().expect("an id").to_owned();
    let masked = json!({
        "GITHUB_PRIVATE_KEY": { "value": MASKED, "encrypted": true },
        "GITHUB_APP_ID": { "value": MASKED, "encrypted": true },
        "REGION": { "value": "eu-west", "encrypted": false }
    });
    assert_eq!(created["steps"][2]["encryptedParams"], masked);

    let read = get(&server, &format!("/v1/orchestrations/{id}")).await;
    assert_eq!(read["steps"][2]["encryptedParams"], masked);
    assert_eq!(read["name"], "Provision Repo");
    let list = get(&server, "/v1/orchestrations").await;
    assert_eq!(list["data"][0]["steps"][2]["encryptedParams"], masked);
    let (blob, _) = stored_blob(&server, &id, "GITHUB_APP_ID").await;
    let ciphertext = blob.split(':').nth(1).expect("iv:ciphertext:tag");
    for body in [&created, &read, &list] {
        assert_nowhere(
            &body.to_string(),
            &[&key, &app_id, "keyVersion", ciphertext],
            "a response",
        );
    }

    // Only the owning step receives them, decrypted, over same-named params.
    let received = step_input(&server, &id, "provision-repo")
        .await
        .expect("assembled");
    assert_eq!(received["GITHUB_PRIVATE_KEY"], key);
    assert_eq!(received["GITHUB_APP_ID"], app_id);
    assert_eq!(received["org"], "acme");
    let evaluate = step_input(&server, &id, "evaluate").await.expect("assembled");
    assert_eq!(evaluate, json!({}), "evaluate sees no secrets");
    assert_not_logged(&[&key, &app_id]);
}

async fn updates_keep_remove_and_refuse(backend: Backend) {
    let server = start(backend).await;
    let (key, app_id, new_id) = (secret("key"), secret("app"), secret("new-app"));
    let id = create(&server, &key, &app_id).await;
    let path = format!("/v1/orchestrations/{id}");

    // Send back what was read, changing one secret and dropping REGION: the kept one
    // still decrypts, the new one replaces, the omitted one is gone.
    let mut update = get(&server, &path).await;
    for field in ["id", "version", "createdAt", "updatedAt"] {
        update.as_object_mut().expect("object").remove(field);
    }
    let params = &mut update["steps"][2]["encryptedParams"];
    params["GITHUB_APP_ID"] = json!({ "value": new_id, "encrypt": true });
    params.as_object_mut().expect("object").remove("REGION");
    let (status, updated) = send(&server, reqwest::Method::PUT, &path, &update).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(
        updated["steps"][2]["encryptedParams"],
        json!({ "GITHUB_PRIVATE_KEY": { "value": MASKED, "encrypted": true }, "GITHUB_APP_ID": { "value": MASKED, "encrypted": true } })
    );
    let received = step_input(&server, &id, "provision-repo")
        .await
        .expect("assembled");
    assert_eq!(
        (
            received["GITHUB_PRIVATE_KEY"].as_str(),
            received["GITHUB_APP_ID"].as_str()
        ),
        (Some(key.as_str()), Some(new_id.as_str()))
    );
    assert!(received.get("REGION").is_none());

    // Each refused entry is a 400 naming step and param, and stores nothing.
    let refused = [
        (
            json!({ "NEVER_STORED": { "value": MASKED, "encrypted": true } }),
            "none is stored",
        ),
        (
            json!({ "GITHUB_PRIVATE_KEY": { "value": MASKED, "encrypt": true } }),
            "the mask",
        ),
        (
            json!({ "GITHUB_PRIVATE_KEY": { "value": "aGVsbG8=:aGVsbG8=:aGVsbG8=", "encrypted": true } }),
            "only keeps",
        ),
        (
            json!({ "GITHUB_PRIVATE_KEY": { "value": "x", "encrypted": true, "keyVersion": 1 } }),
            "keyVersion",
        ),
    ];
    for (params, why) in refused {
        let mut body = update.clone();
        body["steps"][2]["encryptedParams"] = params;
        let (status, error) = send(&server, reqwest::Method::PUT, &path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {error}");
        assert_eq!(error["error"]["code"], "invalid_encrypted_params");
        let message = error["error"]["message"].as_str().expect("message");
        assert!(
            message.contains("provision-repo") && message.contains(why),
            "{message}"
        );
    }
    // The step pointed at another function with its secrets kept: refused, or any
    // function (one that prints or digests what it gets) could be handed them.
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload echo");
    let mut repointed = update.clone();
    repointed["steps"][2]["functionId"] = json!("echo");
    let (status, error) = send(&server, reqwest::Method::PUT, &path, &repointed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["code"], "invalid_encrypted_params");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with(
            "step `provision-repo`: encryptedParams `GITHUB_PRIVATE_KEY`: the step now calls another function"
        ),
        "{message}"
    );
    let mut on_approval = update.clone();
    on_approval["steps"][1]["encryptedParams"] = json!({ "K": { "value": "v", "encrypt": true } });
    let (status, error) = send(&server, reqwest::Method::PUT, &path, &on_approval).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains("only compute steps")
    );

    assert_eq!(
        get(&server, &path).await["version"],
        2,
        "refused updates store nothing"
    );
    // Deleted: gone for reads and updates.
    let response = server
        .http
        .delete(server.url(&path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = send(&server, reqwest::Method::PUT, &path, &update).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_not_logged(&[&key, &app_id, &new_id]);
}

async fn storage_holds_no_plaintext(backend: Backend) {
    let server = start(backend).await;
    let (key, app_id) = (secret("stored-key"), secret("stored-app"));
    let id = create(&server, &key, &app_id).await;
    // And a second version, keeping both.
    let mut update = get(&server, &format!("/v1/orchestrations/{id}")).await;
    update
        .as_object_mut()
        .expect("object")
        .retain(|k, _| ["name", "steps"].contains(&k.as_str()));
    let (status, _) = send(
        &server,
        reqwest::Method::PUT,
        &format!("/v1/orchestrations/{id}"),
        &update,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the second version is stored");

    let bytes = database_bytes(server.database_url());
    assert!(
        bytes.windows(12).any(|w| w == b"Provision Re"),
        "the definition is in what was searched"
    );
    for plaintext in [&key, &app_id] {
        assert!(
            !bytes.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()),
            "plaintext in the database"
        );
    }
    assert_not_logged(&[&key, &app_id]);
}

async fn stored_blob(server: &TestServer, id: &str, param: &str) -> (String, u64) {
    let record = server
        .store()
        .await
        .get_orchestration(id)
        .await
        .expect("read")
        .expect("exists");
    let stored: Value = serde_json::from_str(&record.definition).expect("JSON");
    let entry = &stored["steps"][2]["encryptedParams"][param];
    (
        entry["value"].as_str().expect("blob").to_owned(),
        entry["keyVersion"].as_u64().expect("version"),
    )
}

async fn the_same_value_encrypts_differently(backend: Backend) {
    let server = start(backend).await;
    let value = secret("same");
    let id = create(&server, &value, &value).await;
    let first = stored_blob(&server, &id, "GITHUB_APP_ID").await.0;
    // The same value under the same binding (same orchestration, step and name),
    // saved again.
    let (status, _) = send(
        &server,
        reqwest::Method::PUT,
        &format!("/v1/orchestrations/{id}"),
        &provision_repo(&value, &value),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let second = stored_blob(&server, &id, "GITHUB_APP_ID").await.0;
    let parts = |blob: &str| blob.split(':').map(str::to_owned).collect::<Vec<_>>();
    let (first, second) = (parts(&first), parts(&second));
    assert_eq!((first.len(), second.len()), (3, 3), "iv:ciphertext:tag");
    assert_ne!(first[0], second[0], "a fresh IV per encryption");
    assert_ne!(first[1], second[1], "so the ciphertext differs too");
}

async fn rotation_then_rewrap_then_retire_the_old_key(backend: Backend) {
    let server = start(backend).await;
    let (old_key, old_app) = (secret("old-key"), secret("old-app"));
    let old_id = create(&server, &old_key, &old_app).await;
    assert_eq!(stored_blob(&server, &old_id, "GITHUB_APP_ID").await.1, 1);

    // Key 2 becomes current; key 1 stays for decryption.
    let rotated = Options {
        secret_keys: keyring_json(2, &[1, 2]),
        ..Options::default()
    };
    let server = server.restart_with(rotated).await;
    let received = step_input(&server, &old_id, "provision-repo")
        .await
        .expect("old params decrypt");
    assert_eq!(received["GITHUB_APP_ID"], old_app);
    let (new_key, new_app) = (secret("new-key"), secret("new-app"));
    let new_id = create(&server, &new_key, &new_app).await;
    assert_eq!(
        stored_blob(&server, &new_id, "GITHUB_APP_ID").await.1,
        2,
        "new saves use the current key"
    );

    // Removing key 1 now would strand its params: start-up refuses, naming it.
    let stopped = server.stop().await;
    let only_two = Options {
        secret_keys: keyring_json(2, &[2]),
        ..Options::default()
    };
    let (error, stopped) = match stopped.start(only_two.clone()).await {
        Ok(_) => panic!("must refuse to start without key 1"),
        Err(failure) => failure,
    };
    let message = format!("{error:#}");
    assert!(message.contains("version 1 (2 params)"), "{message}");

    // Rewrap moves everything to 2 (twice is a no-op), then key 1 can go.
    let server = stopped
        .start(Options {
            secret_keys: keyring_json(2, &[1, 2]),
            ..Options::default()
        })
        .await
        .ok()
        .expect("start");
    let rotation = rotation(&server).await;
    let report = rotation.rewrap_all().await.expect("rewrap");
    assert_eq!((report.definitions, report.params), (1, 2));
    assert_eq!(rotation.rewrap_all().await.expect("again").params, 0);
    let counts = rotation.count_by_version().await.expect("status");
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [(2, 4)]);

    // A keyring whose version 2 is some other key is refused too: it would not open
    // what was sealed under 2.
    let stopped = server.stop().await;
    let other_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]);
    let wrong_two = json!({ "currentKeyVersion": 2, "keys": { "2": other_key } }).to_string();
    let (error, stopped) = match stopped
        .start(Options {
            secret_keys: wrong_two,
            ..Options::default()
        })
        .await
    {
        Ok(_) => panic!("must refuse a wrong key 2"),
        Err(failure) => failure,
    };
    assert!(format!("{error:#}").contains("do not decrypt"), "{error:#}");

    let server = stopped
        .start(only_two)
        .await
        .ok()
        .expect("start with key 2 alone");
    for (id, app) in [(&old_id, &old_app), (&new_id, &new_app)] {
        let received = step_input(&server, id, "provision-repo")
            .await
            .expect("decrypts with key 2 alone");
        assert_eq!(&received["GITHUB_APP_ID"], app.as_str());
    }
    assert_not_logged(&[&old_key, &old_app, &new_key, &new_app]);
}

async fn a_moved_blob_fails_to_decrypt_by_name(backend: Backend) {
    let server = start(backend).await;
    let (key, app) = (secret("moved-key"), secret("moved-app"));
    let a = create(&server, &key, &app).await;
    let b = create(&server, "b-key", "b-app").await;
    let store = &server.store().await;
    let text_a = store
        .get_orchestration(&a)
        .await
        .expect("read")
        .expect("a")
        .definition;
    let text_b = store
        .get_orchestration(&b)
        .await
        .expect("read")
        .expect("b")
        .definition;

    // Into another orchestration: b's definition row now holds a's blobs.
    assert!(
        store
            .replace_definition(&b, 1, &text_b, &text_a)
            .await
            .expect("copy")
    );
    let error = step_input(&server, &b, "provision-repo")
        .await
        .expect_err("bound to a");
    assert!(
        error.contains("step `provision-repo`") && error.contains("encryptedParams `GITHUB_APP_ID`"),
        "{error}"
    );
    assert_nowhere(&error, &[&key, &app], "an error");

    // Into another param name and another step of the same orchestration.
    let mut moved: Value = serde_json::from_str(&text_a).expect("JSON");
    let params = moved["steps"][2]["encryptedParams"]
        .as_object_mut()
        .expect("params");
    let blob = params["GITHUB_PRIVATE_KEY"].clone();
    params.insert("GITHUB_APP_ID".into(), blob.clone());
    assert!(
        store
            .replace_definition(&a, 1, &text_a, &moved.to_string())
            .await
            .expect("rename")
    );
    let error = step_input(&server, &a, "provision-repo")
        .await
        .expect_err("bound to another name");
    assert!(error.contains("encryptedParams `GITHUB_APP_ID`"), "{error}");
    moved["steps"][0]["encryptedParams"] = json!({ "GITHUB_PRIVATE_KEY": blob });
    moved["steps"][2]["encryptedParams"] = json!({});
    let text_moved = store
        .get_orchestration(&a)
        .await
        .expect("read")
        .expect("a")
        .definition;
    assert!(
        store
            .replace_definition(&a, 1, &text_moved, &moved.to_string())
            .await
            .expect("move step")
    );
    let error = step_input(&server, &a, "evaluate")
        .await
        .expect_err("bound to another step");
    assert!(error.contains("step `evaluate`"), "{error}");
    assert_not_logged(&[&key, &app]);
}

async fn malformed_requests_never_echo_secrets(backend: Backend) {
    let server = start(backend).await;
    let leaked = secret("hunter2");
    let bodies = [
        // Wrong type next to a secret.
        format!(
            r#"{{"name":"x","steps":[{{"id":"a","type":"compute","functionId":"digest","encryptedParams":{{"K":{{"value":"{leaked}","encrypt":"yes"}}}}}}]}}"#
        ),
        // The secret itself in the wrong place.
        format!(
            r#"{{"name":"x","steps":[{{"id":"a","type":"compute","functionId":"digest","encryptedParams":{{"K":{{"value":{{"v":"{leaked}"}},"encrypt":true}}}}}}]}}"#
        ),
        // A secret where an enum is expected.
        format!(r#"{{"name":"x","steps":[{{"id":"a","type":"{leaked}"}}]}}"#),
        // Broken JSON right after a secret.
        format!(
            r#"{{"name":"x","steps":[{{"id":"a","type":"compute","functionId":"digest","encryptedParams":{{"K":{{"value":"{leaked}","encrypt":true}}"#
        ),
        // An unknown function with a secret on the step.
        format!(
            r#"{{"name":"x","steps":[{{"id":"a","type":"compute","functionId":"nope","encryptedParams":{{"K":{{"value":"{leaked}","encrypt":true}}}}}}]}}"#
        ),
        // A bare string instead of an entry object: the likeliest mistake.
        format!(
            r#"{{"name":"x","steps":[{{"id":"a","type":"compute","functionId":"digest","encryptedParams":{{"K":"{leaked}"}}}}]}}"#
        ),
        // The secret as a key.
        format!(
            r#"{{"name":"x","steps":[{{"id":"a","type":"compute","functionId":"digest","{leaked}":1}}]}}"#
        ),
        // A bad param name with a secret value.
        format!(
            r#"{{"name":"x","steps":[{{"id":"a","type":"compute","functionId":"digest","encryptedParams":{{"bad-name":{{"value":"{leaked}","encrypt":true}}}}}}]}}"#
        ),
    ];
    for body in bodies {
        let response = server
            .http
            .post(server.url("/v1/orchestrations"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = response.text().await.expect("body");
        assert!(text.contains(r#""error""#), "{text}");
        assert_nowhere(&text, &[&leaked], "an error response");
    }
    assert!(
        get(&server, "/v1/orchestrations").await["data"]
            .as_array()
            .expect("list")
            .is_empty()
    );
    assert_not_logged(&[&leaked]);
}

async fn definitions_are_validated(backend: Backend) {
    let server = start(backend).await;
    let cases = [
        (
            json!({ "name": "x", "steps": [{ "id": "a", "type": "compute", "functionId": "ghost" }] }),
            "unknown_function",
            "ghost",
        ),
        (
            json!({ "name": "x", "steps": [{ "id": "a", "type": "delay", "delayMs": 5, "nextStepId": "b" }] }),
            "invalid_definition",
            "`b`",
        ),
        (
            json!({ "name": "x", "steps": [{ "id": "a", "type": "delay", "delayMs": 5 }, { "id": "a", "type": "delay", "delayMs": 5 }] }),
            "invalid_definition",
            "twice",
        ),
        (
            json!({ "name": "x", "steps": [{ "id": "a", "type": "teleport" }] }),
            "invalid_definition",
            "steps[0] (`a`): invalid value: expected one of",
        ),
        (
            json!({ "name": "x", "steps": [{ "id": "a", "type": "delay", "delayMs": 5, "colour": "red" }] }),
            "invalid_definition",
            "steps[0] (`a`): unknown field `colour`",
        ),
        (json!({ "name": "x", "steps": [] }), "invalid_definition", "steps"),
    ];
    for (body, code, mentions) in cases {
        let (status, error) = send(&server, reqwest::Method::POST, "/v1/orchestrations", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["code"], code, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .expect("message")
                .contains(mentions),
            "{error}"
        );
    }
    let (status, _) = send(
        &server,
        reqwest::Method::GET,
        "/v1/orchestrations/not-there",
        &json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_rust_client_keeps_secrets_masked(backend: Backend) {
    let server = start(backend).await;
    let (key, app) = (secret("client-key"), secret("client-app"));
    let created = server
        .client
        .create_orchestration(&provision_repo(&key, &app))
        .await
        .expect("create");
    assert_eq!(
        serde_json::to_value(&created).expect("json")["steps"][2]["encryptedParams"]["GITHUB_APP_ID"],
        json!({ "value": MASKED, "encrypted": true })
    );

    // Read, change the name, send back: the secrets are kept as they were.
    let read = server.client.get_orchestration(&created.id).await.expect("get");
    let body = json!({ "name": "Renamed", "steps": read.definition.steps });
    let updated = server
        .client
        .update_orchestration(&created.id, &body)
        .await
        .expect("update");
    assert_eq!(
        (updated.version, updated.definition.name.as_str()),
        (2, "Renamed")
    );
    let received = step_input(&server, &created.id, "provision-repo")
        .await
        .expect("assembled");
    assert_eq!(
        (
            received["GITHUB_PRIVATE_KEY"].as_str(),
            received["GITHUB_APP_ID"].as_str()
        ),
        (Some(key.as_str()), Some(app.as_str()))
    );

    let listed = server.client.list_orchestrations().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_nowhere(
        &format!("{listed:?}{updated:?}"),
        &[&key, &app],
        "the client's results",
    );
    server
        .client
        .delete_orchestration(&created.id)
        .await
        .expect("delete");
    assert!(
        server
            .client
            .list_orchestrations()
            .await
            .expect("list")
            .is_empty()
    );
}

async fn rewrap_walks_every_page(backend: Backend) {
    let server = start(backend).await;
    // More definitions than one rewrap page (200) holds.
    let definition: trellis::orchestrations::model::Definition =
        serde_json::from_value(provision_repo("paged-key", "paged-app")).expect("a definition");
    for _ in 0..205 {
        server
            .state()
            .orchestrations
            .create(definition.clone())
            .await
            .expect("create");
    }
    let server = server
        .restart_with(Options {
            secret_keys: keyring_json(2, &[1, 2]),
            ..Options::default()
        })
        .await;
    let rotation = rotation(&server).await;
    let report = rotation.rewrap_all().await.expect("rewrap");
    assert_eq!((report.definitions, report.params), (205, 410));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let counts = rotation.count_by_version().await.expect("status");
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [(2, 410)]);
}

/// Rewrites the stored `GITHUB_PRIVATE_KEY` entry of orchestration `id`'s version 1
/// with `change`, as damage in the database would; returns the row's new text.
async fn tamper(server: &TestServer, id: &str, change: impl FnOnce(&mut Value)) -> String {
    let store = server.store().await;
    let before = store
        .get_orchestration(id)
        .await
        .expect("read")
        .expect("exists")
        .definition;
    let mut definition: Value = serde_json::from_str(&before).expect("JSON");
    change(&mut definition["steps"][2]["encryptedParams"]["GITHUB_PRIVATE_KEY"]);
    let after = definition.to_string();
    assert!(
        store
            .replace_definition(id, 1, &before, &after)
            .await
            .expect("tamper")
    );
    after
}

async fn rewrap_reports_what_it_cannot_open_and_writes_none_of_it(backend: Backend) {
    let server = start(backend).await;
    let (key, app) = (secret("good-key"), secret("good-app"));
    let good = create(&server, &key, &app).await;
    let mut secrets = vec![key.clone(), app.clone()];
    let mut broken = Vec::new();
    for label in ["missing", "altered", "garbled"] {
        let (key, app) = (secret(&format!("{label}-key")), secret(&format!("{label}-app")));
        broken.push(create(&server, &key, &app).await);
        secrets.extend([key, app]);
    }
    // Each breaks GITHUB_PRIVATE_KEY, which rewrap reaches after GITHUB_APP_ID
    // (params go in name order): the definition's first param is rewrapped in memory
    // before the failure, and must not be written either.
    let mut blobs = Vec::new();
    let mut rows = Vec::new();
    for (id, change) in [
        // A key version the keyring does not hold.
        (
            &broken[0],
            (|entry: &mut Value| entry["keyVersion"] = json!(7)) as fn(&mut Value),
        ),
        // One ciphertext character changed: still base64, no longer authentic.
        (&broken[1], |entry: &mut Value| {
            let blob = entry["value"].as_str().expect("a blob").to_owned();
            let (iv, rest) = blob.split_once(':').expect("iv:ciphertext:tag");
            let flipped = if rest.starts_with('A') { 'B' } else { 'A' };
            entry["value"] = json!(format!("{iv}:{flipped}{}", &rest[1..]));
        }),
        // Not a blob at all.
        (&broken[2], |entry: &mut Value| {
            entry["value"] = json!("not-a-blob")
        }),
    ] {
        rows.push(tamper(&server, id, change).await);
        blobs.push(stored_blob(&server, id, "GITHUB_PRIVATE_KEY").await.0);
    }

    // `trellis keys rewrap` with key 2 now current, while the server runs on key 1.
    let rotated = std::sync::Arc::new(
        trellis::secrets::Keyring::from_json(&keyring_json(2, &[1, 2])).expect("a keyring"),
    );
    let rotation = Rotation::connect(server.database_url(), rotated.clone())
        .await
        .expect("opening the database");
    let report = rotation.rewrap_all().await.expect("rewrap runs to the end");
    assert_eq!(
        (report.definitions, report.params),
        (1, 2),
        "the intact orchestration moved: {report:?}"
    );
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
    for (id, why) in [
        (&broken[0], "key version 7 is not in the keyring"),
        (&broken[1], "does not authenticate"),
        (&broken[2], "is not an encrypted blob"),
    ] {
        let failure = report
            .failures
            .iter()
            .find(|failure| failure.contains(&format!("orchestration {id} ")))
            .unwrap_or_else(|| panic!("no failure names {id}: {:?}", report.failures));
        assert!(
            failure.contains("step `provision-repo` param `GITHUB_PRIVATE_KEY`") && failure.contains(why),
            "{failure}"
        );
    }
    let mut hidden: Vec<&str> = secrets.iter().map(String::as_str).collect();
    hidden.extend(blobs.iter().map(String::as_str));
    assert_nowhere(&report.failures.join("\n"), &hidden, "a rewrap failure");

    // Every row that failed is byte for byte what it was; the intact one moved whole
    // and opens under key 2.
    let store = server.store().await;
    for (id, row) in broken.iter().zip(&rows) {
        let now = store
            .get_orchestration_version(id, 1)
            .await
            .expect("read")
            .expect("exists")
            .definition;
        assert_eq!(&now, row, "orchestration {id} was written");
    }
    for (param, value) in [("GITHUB_APP_ID", &app), ("GITHUB_PRIVATE_KEY", &key)] {
        let (blob, version) = stored_blob(&server, &good, param).await;
        assert_eq!(version, 2, "{param}");
        let binding = trellis::secrets::Binding {
            orchestration_id: &good,
            step_id: "provision-repo",
            param,
        };
        let opened = trellis::secrets::open(&rotated, &binding, 2, &blob).expect("opens under key 2");
        assert_eq!(opened.expose(), value.as_str());
    }
    let counts = rotation.count_by_version().await.expect("status");
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [(1, 5), (2, 2), (7, 1)],
        "what `trellis keys status` shows: key 1 still in use"
    );

    // Run again, it finds the same three and moves nothing.
    let again = rotation.rewrap_all().await.expect("rewrap again");
    assert_eq!((again.definitions, again.params), (0, 0));
    let (mut first, mut second) = (report.failures.clone(), again.failures.clone());
    first.sort();
    second.sort();
    assert_eq!(first, second);
}
