//! `GET /openapi.json`: served without a token, OpenAPI 3.1, generated from the
//! router itself. Every documented operation is answered by the router (not 404 or
//! 405), carries its auth and error responses, and the copy the TypeScript SDK
//! generates its types from is the served document.

use reqwest::Method;
use serde_json::Value;
use trellis_tests::tools::repo_root;
use trellis_tests::{Backend, TestServer};

async fn document(server: &TestServer) -> Value {
    let response = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200, "served without a token");
    response.json().await.expect("JSON")
}

/// Each (method, path, operation) of the document, with path parameters filled in.
fn operations(document: &Value) -> Vec<(Method, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("a method");
            let concrete = path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "x" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            found.push((method, concrete, operation.clone()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_with_its_auth_and_errors() {
    let server = TestServer::start(Backend::Sqlite).await;
    let document = document(&server).await;
    assert_eq!(document["openapi"], "3.1.0");
    let operations = operations(&document);
    let expected = [
        ("PUT", "/v1/functions/x"),
        ("PATCH", "/v1/functions/x"),
        ("GET", "/v1/functions"),
        ("GET", "/v1/functions/x"),
        ("DELETE", "/v1/functions/x"),
        ("POST", "/v1/functions/x/invoke"),
        ("POST", "/v1/orchestrations"),
        ("GET", "/v1/orchestrations"),
        ("GET", "/v1/orchestrations/x"),
        ("PUT", "/v1/orchestrations/x"),
        ("DELETE", "/v1/orchestrations/x"),
        ("POST", "/v1/orchestrations/x/runs"),
        ("GET", "/v1/orchestrations/x/runs"),
        ("GET", "/v1/runs/x"),
        ("POST", "/v1/runs/x/steps/x/approve"),
        ("POST", "/v1/runs/x/steps/x/reject"),
        ("POST", "/v1/runs/x/cancel"),
        ("POST", "/mcp"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ];
    for (method, path) in expected {
        assert!(
            operations
                .iter()
                .any(|(m, p, _)| m.as_str() == method && p == path),
            "{method} {path} is not in the document"
        );
    }
    assert_eq!(
        operations.len(),
        expected.len(),
        "every documented operation is listed above"
    );

    for (method, path, operation) in &operations {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.contains_key("500"), "{method} {path}: no 500");
        let secured = operation["security"] != serde_json::json!([]);
        let answer = server
            .http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .expect("request");
        let status = answer.status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} is documented but the router answers {status}"
        );
        if secured {
            assert!(responses.contains_key("401"), "{method} {path}: no 401");
            assert_eq!(operation["security"][0]["bearer"], serde_json::json!([]));
            assert_eq!(status, 401, "{method} {path} without a token");
        } else {
            assert!(status < 400, "{method} {path} is public but answered {status}");
        }
        for (code, response) in responses {
            if code.starts_with('4') || code.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
        }
    }

    // Methods the document does not list are not served either.
    for (method, path) in [
        ("DELETE", "/v1/runs/x"),
        ("PUT", "/v1/runs/x/cancel"),
        ("GET", "/mcp"),
    ] {
        let status = server
            .http
            .request(
                Method::from_bytes(method.as_bytes()).expect("method"),
                server.url(path),
            )
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 405, "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_generates_its_types_from_the_served_document() {
    let server = TestServer::start(Backend::Sqlite).await;
    let served = document(&server).await;
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("sdk/typescript/openapi.json")).expect("the SDK's copy"),
    )
    .expect("JSON");
    assert!(
        committed == served,
        "sdk/typescript/openapi.json is stale: run `cargo run -p trellis -- openapi > sdk/typescript/openapi.json` and `npm run generate` in sdk/typescript"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tool_schemas_are_the_api_schemas() {
    let server = TestServer::start(Backend::Sqlite).await;
    let served = document(&server).await;
    let tools = trellis::mcp::tools::catalogue();
    let create = tools
        .iter()
        .find(|tool| tool.name == "create_orchestration")
        .expect("create_orchestration");
    let tool_fields: Vec<&String> = create.input_schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    let api_fields: Vec<&String> = served["components"]["schemas"]["Definition"]["properties"]
        .as_object()
        .expect("Definition")
        .keys()
        .collect();
    assert_eq!(
        tool_fields, api_fields,
        "create_orchestration takes exactly the REST body"
    );
    let update = tools
        .iter()
        .find(|tool| tool.name == "update_orchestration")
        .expect("update_orchestration");
    let mut update_fields: Vec<&String> = update.input_schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    update_fields.retain(|field| !["id", "version"].contains(&field.as_str()));
    assert_eq!(
        update_fields, api_fields,
        "update_orchestration takes id (and the version read) plus the REST body"
    );
}
