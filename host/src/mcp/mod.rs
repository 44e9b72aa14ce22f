//! The MCP server, on the official Rust SDK (`rmcp`): `trellis mcp` over stdio,
//! talking to a running server, and streamable HTTP at `/mcp` on the server itself.
//! Both answer every tool by calling the REST API with the caller's token
//! ([`tools`]), so MCP can do nothing the API would not let that token do, and shows
//! nothing the API would not show: results are the API's masked JSON.
//!
//! Over HTTP the server is stateless: no session lives on the node that answered
//! `initialize`, so several nodes behind a load balancer can each answer any request.

pub mod tools;

use anyhow::Context;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::json;
use std::sync::{Arc, OnceLock};
use tools::Failure;
use trellis_client::Client;

/// What an MCP request body may hold beyond a tool's arguments, which are at most a
/// REST body ([`crate::api::JSON_LIMIT`]): the JSON-RPC envelope around them (method,
/// id, tool name), with ample room.
const JSON_RPC_ENVELOPE_BYTES: usize = 64 << 10;

const INSTRUCTIONS: &str = "Trellis hosts WebAssembly functions and runs orchestrations of them: compute steps (a function call), approval steps (a person decides), decision steps and delays. Typical use: list_functions to see what can be called; create_orchestration with steps; start_run; wait_run until it completes or waits on an approval; approve_step or reject_step. Compute steps carry their secrets in `encryptedParams` (`{ \"value\": \"…\", \"encrypt\": true }`); they are never shown again, only masked as `{ \"value\": \"********\", \"encrypted\": true }`, which you send back unchanged on update_orchestration to keep a secret.";

/// The tool handler. `client` is the API it calls; over HTTP, each call uses the
/// bearer token of the request that carried it.
#[derive(Clone)]
pub struct TrellisMcp {
    client: Client,
    token_from_request: bool,
}

impl TrellisMcp {
    /// For stdio: every call acts with `client`'s token.
    pub fn with_client(client: Client) -> Self {
        Self {
            client,
            token_from_request: false,
        }
    }

    /// For `/mcp`: every call acts with the bearer token of its HTTP request
    /// (already checked by the API's auth), against the API at `client`'s URL.
    pub fn per_request(client: Client) -> Self {
        Self {
            client,
            token_from_request: true,
        }
    }

    fn client_for(&self, context: &RequestContext<RoleServer>) -> Result<Client, ErrorData> {
        if !self.token_from_request {
            return Ok(self.client.clone());
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| crate::api::bearer_token(&parts.headers))
            .map(|token| self.client.with_token(token))
            .ok_or_else(|| ErrorData::invalid_request("missing bearer token", None))
    }
}

fn catalogue() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(tools::catalogue)
}

impl ServerHandler for TrellisMcp {
    // Logging is deprecated for the protocol's next version (SEP-2577) but part of
    // 2025-11-25, which clients speak today.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        // Tools are the whole offer. Resources and prompts are declared so clients
        // that ask get an empty list rather than "method not found"; logging so a
        // client may set a level (Trellis sends no log notifications: its logs
        // stay on the server, where secrets are kept out of them).
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("trellis", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(catalogue().to_vec()))
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        catalogue().iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let client = self.client_for(&context)?;
        let arguments = request.arguments.unwrap_or_default();
        // A caller that goes away cancels its call: nothing keeps waiting for it.
        let outcome = tokio::select! {
            outcome = tools::call(&client, &request.name, arguments) => outcome,
            () = context.ct.cancelled() => {
                return Err(ErrorData::internal_error("the request was cancelled", None));
            }
        };
        let result = match outcome {
            Ok(value) => CallToolResult::structured(value),
            // rmcp logs a failed request with its error: the name the caller sent is
            // not repeated, as it could be anything.
            Err(Failure::UnknownTool) => {
                return Err(ErrorData::invalid_params(
                    "no such tool; tools/list names them",
                    None,
                ));
            }
            Err(Failure::Arguments(message)) => tool_error("invalid_arguments", &message, None),
            Err(Failure::Api(error)) => api_error(&error),
        };
        Ok(result.into())
    }
}

/// An API error as a tool error, with the API's code and message.
fn api_error(error: &trellis_client::Error) -> CallToolResult {
    match error {
        trellis_client::Error::Api {
            status,
            code,
            message,
            ..
        } => tool_error(code, message, Some(*status)),
        other => tool_error("unavailable", &other.to_string(), None),
    }
}

/// A tool error: the text says `code: message`; the structured content is the API's
/// error body (with the HTTP status when the API answered), never more.
fn tool_error(code: &str, message: &str, status: Option<u16>) -> CallToolResult {
    let mut body = json!({ "error": { "code": code, "message": message } });
    if let Some(status) = status {
        body["error"]["status"] = status.into();
    }
    let mut result = CallToolResult::structured_error(body);
    result.content = vec![ContentBlock::text(format!("{code}: {message}"))];
    result
}

/// `trellis mcp`: serves MCP on stdin/stdout until the client closes it. Logs go to
/// stderr; stdout carries only the protocol.
pub async fn serve_stdio(client: Client) -> anyhow::Result<()> {
    let running = TrellisMcp::with_client(client)
        .serve(rmcp::transport::stdio())
        .await
        .context("starting MCP on stdio")?;
    running.waiting().await.context("serving MCP on stdio")?;
    Ok(())
}

/// The streamable HTTP service behind `/mcp`. `api_url` is where this node's own
/// REST API answers; `allowed_hosts` are the `Host` names clients may use (DNS
/// rebinding protection: a browser page on another name is refused with 403).
pub fn http_service(
    api_url: String,
    allowed_hosts: Vec<String>,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    TrellisMcp,
    rmcp::transport::streamable_http_server::session::never::NeverSessionManager,
> {
    use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
    // A browser page may only call from an origin on an allowed host (any port):
    // with the Host check, this keeps DNS-rebinding and cross-site pages out.
    let allowed_origins: Vec<String> = allowed_hosts.iter().flat_map(|host| origins(host)).collect();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts)
        .with_allowed_origins(allowed_origins)
        .with_max_request_body_bytes(crate::api::JSON_LIMIT + JSON_RPC_ENVELOPE_BYTES);
    // The API is this very node: never through a proxy.
    let handler = TrellisMcp::per_request(Client::new(api_url, String::new()).direct());
    StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(Default::default()), config)
}

/// The browser origins of an allowed `Host`: `name` on any port, or `name:port` on
/// that port only, over http and https.
fn origins(host: &str) -> [String; 2] {
    let authority = match host.matches(':').count() {
        0 => format!("{host}:*"),
        // `name:port`.
        1 => host.to_owned(),
        // An IPv6 literal, bare or already bracketed.
        _ if host.starts_with('[') => match host.ends_with(']') {
            true => format!("{host}:*"),
            false => host.to_owned(),
        },
        _ => format!("[{host}]:*"),
    };
    [format!("http://{authority}"), format!("https://{authority}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_follow_the_allowed_hosts() {
        assert_eq!(origins("localhost")[0], "http://localhost:*");
        assert_eq!(
            origins("trellis.example.com:8443")[1],
            "https://trellis.example.com:8443"
        );
        assert_eq!(origins("::1")[0], "http://[::1]:*");
        assert_eq!(origins("[::1]")[0], "http://[::1]:*");
        assert_eq!(origins("[::1]:8080")[0], "http://[::1]:8080");
    }
}
