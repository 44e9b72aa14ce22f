//! `POST /mcp`: the MCP streamable HTTP endpoint, behind the same bearer auth as
//! `/v1`. The protocol is `rmcp`'s ([`crate::mcp`]); this route adds one thing:
//! a session id. The server keeps no session, but clients and test suites expect
//! `initialize` to name one, so an answer to a request without an id (initialize
//! is one) carries a fresh one, and a request's own id is echoed back. Any node
//! accepts any id: the id carries nothing, and every request is authenticated by
//! its token.

use super::AppState;
use super::openapi::{Operation, Routes};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use tower::ServiceExt;

const SESSION_HEADER: &str = "mcp-session-id";

/// The MCP service this node serves at `/mcp`.
#[derive(Clone)]
pub struct McpEndpoint {
    service: rmcp::transport::streamable_http_server::StreamableHttpService<
        crate::mcp::TrellisMcp,
        rmcp::transport::streamable_http_server::session::never::NeverSessionManager,
    >,
}

impl McpEndpoint {
    /// `api_url` is this node's REST API; `allowed_hosts` the `Host` names accepted.
    pub fn new(api_url: String, allowed_hosts: Vec<String>) -> Self {
        Self {
            service: crate::mcp::http_service(api_url, allowed_hosts),
        }
    }
}

pub fn routes() -> Routes {
    Routes::new().add(
        Operation::post("/mcp", "mcp", "MCP streamable HTTP endpoint (JSON-RPC)")
            .describe("The Model Context Protocol for AI agents: tools for orchestrations, functions and runs, each calling this API with the request's bearer token. Send JSON-RPC messages with `Accept: application/json, text/event-stream`. Stateless: any node answers any request. Besides the errors listed, the MCP transport answers in plain text: 403 for a `Host` or `Origin` that is not allowed, 406 for a missing `Accept`, 413 for a body over 1 MiB, 415 for a body that is not one JSON-RPC message.")
            .body::<serde_json::Value>()
            .returns::<serde_json::Value>(StatusCode::OK),
        serve,
    )
}

async fn serve(State(state): State<AppState>, request: Request) -> Response {
    // The spec's session ids: visible ASCII. 128 bytes is room for any UUID or hash.
    let sent = request
        .headers()
        .get(SESSION_HEADER)
        .filter(|id| id.len() <= 128 && id.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b)))
        .cloned();
    let mut response = match state.mcp.service.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    // rmcp answers an unparsable body with serde's message, which can quote a
    // value that was sent (a secret in a tool's arguments): say what is wrong
    // without it.
    if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        *response.body_mut() = Body::from(
            "Unsupported Media Type: the body must be one JSON-RPC message, sent as application/json",
        );
        response.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
    }
    let session = match sent {
        Some(id) if response.status().is_success() => Some(id),
        None if response.status() == StatusCode::OK => {
            Some(HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a header value"))
        }
        _ => None,
    };
    if let Some(session) = session {
        response.headers_mut().insert(SESSION_HEADER, session);
    }
    response
}
