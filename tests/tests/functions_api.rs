//! Functions through the HTTP API, on both backends: upload, versioning, invoke,
//! auth, validation, limits, and the artifact cache across a restart.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trellis_client::{Error, SettingsPatch};
use trellis_tests::{Backend, TOKEN, TestServer, component, on_both_backends};

on_both_backends!(
    upload_then_invoke_echo,
    digest_proves_what_it_received,
    versions_follow_the_bytes,
    settings_are_validated_and_kept,
    unknown_and_invalid_ids,
    requests_need_the_bearer_token,
    invalid_components_are_refused_and_not_stored,
    oversized_bodies_get_413,
    malformed_json_gets_a_precise_400,
    restart_serves_from_the_artifact_cache,
    deleted_functions_are_gone,
    concurrent_patches_of_different_fields_all_land,
);

/// The `code` of an API error, or a panic describing what came instead.
fn api_error<T: std::fmt::Debug>(result: Result<T, Error>) -> (u16, String, Value) {
    match result {
        Err(Error::Api {
            status,
            code,
            details,
            ..
        }) => (status, code, details),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn upload_then_invoke_echo(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server
        .http
        .put(server.url("/v1/functions/echo"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/wasm")
        .body(component("echo"))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
    let record: Value = response.json().await.expect("record");
    assert_eq!(record["id"], "echo");
    assert_eq!(record["version"], 1);
    assert_eq!(record["sha256"], hex::encode(Sha256::digest(component("echo"))));
    assert_eq!(record["sizeBytes"], component("echo").len());
    assert_eq!(
        record["settings"],
        json!({ "timeoutMs": 30000, "memoryLimitMb": 128, "allowedHosts": [], "scratchDir": false })
    );

    let params =
        json!({ "greeting": "hello", "nested": { "list": [1, 2.5, null, true] }, "unicode": "żółw 🐢" });
    let result = server
        .client
        .invoke_function("echo", &params)
        .await
        .expect("invoke");
    assert_eq!(result.output, params);
    assert!(result.duration_ms > 0.0);

    // Passed through exactly: numbers beyond f64 and key order survive the round trip.
    let exact =
        r#"{"zeta":1,"big":123456789012345678901234567890,"precise":0.1000000000000000055511151231257827}"#;
    let response = server
        .http
        .post(server.url("/v1/functions/echo/invoke"))
        .bearer_auth(TOKEN)
        .body(exact)
        .send()
        .await
        .expect("invoke");
    let text = response.text().await.expect("body");
    assert!(text.starts_with(&format!(r#"{{"output":{exact},"#)), "{text}");

    // No body at all means empty triggerParams.
    let response = server
        .http
        .post(server.url("/v1/functions/echo/invoke"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.expect("body")["output"], json!({}));

    // triggerParams must be an object.
    let (status, code, _) = api_error(server.client.invoke_function("echo", &json!([1, 2])).await);
    assert_eq!((status, code.as_str()), (400, "invalid_params"));
}

async fn digest_proves_what_it_received(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("digest", component("digest"))
        .await
        .expect("upload");
    let result = server
        .client
        .invoke_function(
            "digest",
            &json!({ "token": "s3cr3t", "count": 42, "obj": { "a": [1, "b"] } }),
        )
        .await
        .expect("invoke");
    let sha = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    assert_eq!(
        result.output,
        json!({ "token": sha(b"s3cr3t"), "count": sha(b"42"), "obj": sha(br#"{"a":[1,"b"]}"#) })
    );
}

async fn versions_follow_the_bytes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server
        .client
        .upload_function("f", component("echo"))
        .await
        .expect("create");
    assert_eq!(first.version, 1);

    let response = server
        .http
        .put(server.url("/v1/functions/f"))
        .bearer_auth(TOKEN)
        .body(component("echo"))
        .send()
        .await
        .expect("same bytes");
    assert_eq!(response.status(), StatusCode::OK);
    let same: Value = response.json().await.expect("record");
    assert_eq!(same["version"], 1, "identical bytes must not bump the version");
    assert_eq!(same["updatedAt"], json!(first.updated_at));

    let replaced = server
        .client
        .upload_function("f", component("digest"))
        .await
        .expect("replace");
    assert_eq!(replaced.version, 2);
    assert_ne!(replaced.sha256, first.sha256);
    // The new bytes run: digest, not echo.
    let result = server
        .client
        .invoke_function("f", &json!({ "x": "y" }))
        .await
        .expect("invoke");
    assert_eq!(result.output["x"], hex::encode(Sha256::digest(b"y")));
}

async fn settings_are_validated_and_kept(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload");
    let patch = SettingsPatch {
        timeout_ms: Some(5000),
        memory_limit_mb: Some(64),
        ..Default::default()
    };
    let updated = server
        .client
        .update_function_settings("echo", &patch)
        .await
        .expect("patch");
    assert_eq!(
        (updated.settings.timeout_ms, updated.settings.memory_limit_mb),
        (5000, 64)
    );
    assert_eq!(updated.version, 1, "settings do not change the version");

    for bad in [
        SettingsPatch {
            timeout_ms: Some(300_001),
            ..Default::default()
        },
        SettingsPatch {
            timeout_ms: Some(0),
            ..Default::default()
        },
        SettingsPatch {
            memory_limit_mb: Some(4097),
            ..Default::default()
        },
        SettingsPatch {
            allowed_hosts: Some(vec!["api.github.com/path".into()]),
            ..Default::default()
        },
    ] {
        let (status, code, _) = api_error(server.client.update_function_settings("echo", &bad).await);
        assert_eq!((status, code.as_str()), (400, "invalid_settings"), "{bad:?}");
    }
    let response = server
        .http
        .patch(server.url("/v1/functions/echo"))
        .bearer_auth(TOKEN)
        .json(&json!({ "timeoutMillis": 5 }))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("unknown field `timeoutMillis`")
    );

    let kept = server.client.get_function("echo").await.expect("get");
    assert_eq!(
        (kept.settings.timeout_ms, kept.settings.memory_limit_mb),
        (5000, 64)
    );
}

async fn unknown_and_invalid_ids(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, code, _) = api_error(server.client.get_function("nope").await);
    assert_eq!((status, code.as_str()), (404, "function_not_found"));
    let (status, code, _) = api_error(server.client.invoke_function("nope", &json!({})).await);
    assert_eq!((status, code.as_str()), (404, "function_not_found"));
    for bad in ["Upper", "-dash", "a.b", &"x".repeat(64)] {
        let (status, code, _) = api_error(server.client.upload_function(bad, component("echo")).await);
        assert_eq!((status, code.as_str()), (400, "invalid_function_id"), "{bad}");
    }
    let response = server
        .http
        .get(server.url("/v1/nothing-here"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn requests_need_the_bearer_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);

    let without = server
        .http
        .get(server.url("/v1/functions"))
        .send()
        .await
        .expect("list");
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        without.json::<Value>().await.expect("body")["error"]["code"],
        "unauthorized"
    );

    let wrong = server
        .http
        .get(server.url("/v1/functions"))
        .bearer_auth("test-token-0123456789abcdeX")
        .send()
        .await
        .expect("list");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let upload = server
        .http
        .put(server.url("/v1/functions/echo"))
        .body(component("echo"))
        .send()
        .await
        .expect("upload");
    assert_eq!(upload.status(), StatusCode::UNAUTHORIZED);
    assert!(
        server.client.list_functions().await.expect("list").is_empty(),
        "nothing was stored"
    );
}

async fn invalid_components_are_refused_and_not_stored(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, code, details) = api_error(
        server
            .client
            .upload_function("bad", b"definitely not wasm".to_vec())
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_wasm"));
    assert!(
        details["message"]
            .as_str()
            .expect("message")
            .contains("not a WebAssembly binary")
    );

    // A valid, empty core module: wasm, but not a component.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let (status, _, details) = api_error(server.client.upload_function("bad", core_module).await);
    assert_eq!(status, 400);
    assert!(
        details["message"]
            .as_str()
            .expect("message")
            .contains("core WebAssembly module")
    );

    // A component header followed by garbage.
    let (status, code, _) = api_error(
        server
            .client
            .upload_function("bad", b"\0asm\x0d\0\x01\0garbage".to_vec())
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_wasm"));

    // A real component, but a CLI command rather than a Trellis function.
    let (status, code, details) = api_error(
        server
            .client
            .upload_function("bad", component("plain-command"))
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_wasm"));
    let message = details["message"].as_str().expect("message");
    assert!(message.contains("trellis:function/handler@0.1.0"), "{message}");

    assert!(
        server.client.list_functions().await.expect("list").is_empty(),
        "nothing invalid was stored"
    );
}

async fn oversized_bodies_get_413(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload");
    let huge_upload = vec![0u8; (50 << 20) + 1];
    let response = server
        .http
        .put(server.url("/v1/functions/big"))
        .bearer_auth(TOKEN)
        .body(huge_upload)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<Value>().await.expect("body")["error"]["code"],
        "payload_too_large"
    );

    let huge_params = json!({ "blob": "x".repeat(1 << 20) });
    let (status, code, _) = api_error(server.client.invoke_function("echo", &huge_params).await);
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    // Still serving.
    server
        .client
        .invoke_function("echo", &json!({ "ok": true }))
        .await
        .expect("invoke after 413");
}

async fn malformed_json_gets_a_precise_400(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload");
    let response = server
        .http
        .post(server.url("/v1/functions/echo/invoke"))
        .bearer_auth(TOKEN)
        .body(r#"{"a": 1,"#)
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("line 1")
    );
}

async fn restart_serves_from_the_artifact_cache(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload");
    assert_eq!(server.metric("trellis_component_compilations_total").await, 1.0);

    let server = server.restart().await;
    let result = server
        .client
        .invoke_function("echo", &json!({ "after": "restart" }))
        .await
        .expect("invoke");
    assert_eq!(result.output, json!({ "after": "restart" }));
    assert_eq!(
        server.metric("trellis_component_compilations_total").await,
        0.0,
        "a restart must not recompile"
    );
    assert_eq!(server.metric("trellis_artifact_cache_hits_total").await, 1.0);
}

async fn deleted_functions_are_gone(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload");
    server
        .client
        .upload_function("digest", component("digest"))
        .await
        .expect("upload");
    let ids: Vec<_> = server
        .client
        .list_functions()
        .await
        .expect("list")
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, ["digest", "echo"]);
    server.client.delete_function("echo").await.expect("delete");
    let (status, _, _) = api_error(server.client.invoke_function("echo", &json!({})).await);
    assert_eq!(status, 404);
    let (status, _, _) = api_error(server.client.delete_function("echo").await);
    assert_eq!(status, 404);
    server
        .client
        .invoke_function("digest", &json!({}))
        .await
        .expect("the other function still runs");
}

async fn concurrent_patches_of_different_fields_all_land(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .client
        .upload_function("echo", component("echo"))
        .await
        .expect("upload");
    for round in 1..=5u32 {
        let (a, b) = (server.client.clone(), server.client.clone());
        let timeout = SettingsPatch {
            timeout_ms: Some(1000 + round),
            ..Default::default()
        };
        let memory = SettingsPatch {
            memory_limit_mb: Some(64 + round),
            ..Default::default()
        };
        let (first, second) = tokio::join!(
            a.update_function_settings("echo", &timeout),
            b.update_function_settings("echo", &memory)
        );
        first.expect("timeout patch");
        second.expect("memory patch");
        let settings = server.client.get_function("echo").await.expect("get").settings;
        assert_eq!(
            (settings.timeout_ms, settings.memory_limit_mb),
            (1000 + round, 64 + round),
            "round {round}"
        );
    }
}
