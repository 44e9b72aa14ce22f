//! Typed async client for the Trellis REST API (v1).
//!
//! The request and response types are the server's own ([`trellis_types`], re-exported
//! here), so a definition built with the typed builder is exactly what the server
//! parses:
//!
//! ```no_run
//! use trellis_client::{ApprovalStep, Client, ComputeStep, Definition, RunStatus};
//! # async fn demo() -> Result<(), trellis_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080", "trl_…");
//! let definition = Definition::new("Provision repo")
//!     .step(ComputeStep::new("evaluate-request").id("evaluate"))
//!     .step(ApprovalStep::new("Create it?").id("approve"))
//!     .step(
//!         ComputeStep::new("create-github-repo")
//!             .id("provision")
//!             .secret("GITHUB_APP_ID", "12345"),
//!     );
//! let orchestration = client.create_orchestration(&definition).await?;
//! let run = client
//!     .start_run(&orchestration.id, Some(&serde_json::json!({ "org": "acme" })))
//!     .await?;
//! let run = client.wait_run(&run.id, std::time::Duration::from_secs(30)).await?;
//! assert_eq!(run.status, RunStatus::Waiting);
//! client.approve_step(&run.id, "approve", Some("ok")).await?;
//! # Ok(()) }
//! ```
//!
//! Every request has a timeout (30 s unless [`Client::with_timeout`] says otherwise);
//! errors carry the API's status and code ([`Error::Api`]).
#![deny(missing_docs)]

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

pub use trellis_types::*;

/// What can go wrong talking to Trellis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error body `{ "error": { code, message } }`.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code, e.g. `orchestration_not_found`.
        code: String,
        /// Human-readable explanation.
        message: String,
        /// The whole `error` object (invocation failures add `retryable` and `logs`).
        details: Value,
    },
    /// No answer: nothing listens at the URL, or the connection broke.
    #[error("cannot reach Trellis at {url}: is `trellis serve` running there? ({reason})")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// The underlying cause, e.g. `Connection refused (os error 111)`.
        reason: String,
    },
    /// The server did not answer within the request's timeout.
    #[error("Trellis at {url} did not answer within {after:?}")]
    Timeout {
        /// The server's base URL.
        url: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The server answered with something that is not the documented shape.
    #[error("unexpected response (HTTP {status}): {message}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// What did not fit.
        message: String,
    },
}

impl Error {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            Error::Unreachable { .. } | Error::Timeout { .. } => None,
        }
    }

    /// The API's error code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How long a request may take unless [`Client::with_timeout`] changes it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest the server holds a waiting `GET /v1/runs/{id}?waitMs=`.
pub const MAX_WAIT: Duration = Duration::from_millis(MAX_WAIT_MS);

/// The longest a function call may take on the server.
const MAX_CALL: Duration = Duration::from_millis(MAX_FUNCTION_TIMEOUT_MS as u64);

/// A connection to one Trellis server. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: String,
    timeout: Duration,
}

/// The token is a credential: never printed.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("token", &"********")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An id as one URL path segment: anything but letters, digits, `-`, `_` and `~` is
/// percent-encoded (dots too), so `..` or `a?b` cannot change which route is called.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Client {
    /// `base_url` like `http://127.0.0.1:8080`; `token` is the bearer token. A
    /// server on this machine (`localhost`, `127.x`, `[::1]`) is always reached
    /// directly, never through `HTTP_PROXY`: the token and any secrets in a body must
    /// not leave the machine on their way to it.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self {
            http: http_client(!is_loopback(&base_url)),
            base_url,
            token: token.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client, ignoring `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY`.
    pub fn direct(mut self) -> Self {
        self.http = http_client(false);
        self
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same server and connection pool, acting with another token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            ..self.clone()
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/v1{path}", self.base_url))
            .bearer_auth(&self.token)
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, Error> {
        self.send_within(request, self.timeout).await
    }

    /// Sends with a timeout of its own: for requests the server holds (a wait, a
    /// function call).
    async fn send_within<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        timeout: Duration,
    ) -> Result<T, Error> {
        let response = self.respond(request, timeout).await?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport(error, timeout))?;
        // serde's message can quote the response; its position is enough.
        serde_json::from_slice(&bytes).map_err(|error| Error::Unexpected {
            status,
            message: format!(
                "the response is not the documented shape (line {}, column {})",
                error.line(),
                error.column()
            ),
        })
    }

    /// Sends a request whose success has no body (204).
    async fn send_empty(&self, request: RequestBuilder) -> Result<(), Error> {
        self.respond(request, self.timeout).await.map(drop)
    }

    /// The response if it is a success, else the API's error.
    async fn respond(&self, request: RequestBuilder, timeout: Duration) -> Result<reqwest::Response, Error> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| self.transport(error, timeout))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport(error, timeout))?;
        Err(api_error(status, &bytes))
    }

    fn transport(&self, error: reqwest::Error, timeout: Duration) -> Error {
        if error.is_timeout() {
            return Error::Timeout {
                url: self.base_url.clone(),
                after: timeout,
            };
        }
        // The innermost cause says what happened ("Connection refused"); the outer
        // layers only repeat the URL.
        let mut cause: &dyn std::error::Error = &error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        Error::Unreachable {
            url: self.base_url.clone(),
            reason: cause.to_string(),
        }
    }

    /// Uploads (or replaces) a component under `id`.
    pub async fn upload_function(&self, id: &str, component: Vec<u8>) -> Result<Function, Error> {
        let request = self
            .request(Method::PUT, &format!("/functions/{}", segment(id)))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(component);
        self.send(request).await
    }

    /// Every function, sorted by id.
    pub async fn list_functions(&self) -> Result<Vec<Function>, Error> {
        let list: List<Function> = self.send(self.request(Method::GET, "/functions")).await?;
        Ok(list.data)
    }

    /// One function's record.
    pub async fn get_function(&self, id: &str) -> Result<Function, Error> {
        self.send(self.request(Method::GET, &format!("/functions/{}", segment(id))))
            .await
    }

    /// Changes some settings, keeping the others.
    pub async fn update_function_settings(&self, id: &str, patch: &SettingsPatch) -> Result<Function, Error> {
        self.send(
            self.request(Method::PATCH, &format!("/functions/{}", segment(id)))
                .json(patch),
        )
        .await
    }

    /// Deletes a function.
    pub async fn delete_function(&self, id: &str) -> Result<(), Error> {
        self.send_empty(self.request(Method::DELETE, &format!("/functions/{}", segment(id))))
            .await
    }

    /// Invokes a function with `params` as its triggerParams (a JSON object). The
    /// server holds the call for up to the function's deadline (at most five
    /// minutes); the client's timeout counts after that.
    pub async fn invoke_function(&self, id: &str, params: &Value) -> Result<InvokeResult, Error> {
        let request = self
            .request(Method::POST, &format!("/functions/{}/invoke", segment(id)))
            .json(params);
        self.send_within(request, MAX_CALL + self.timeout).await
    }

    /// Creates an orchestration from a [`Definition`] (or the same JSON). Secrets go in
    /// a compute step's `encryptedParams` ([`ComputeStep::secret`]); they are encrypted
    /// before they reach the database and come back masked. Steps without an id get
    /// one, returned in the result.
    pub async fn create_orchestration(&self, definition: &impl Serialize) -> Result<Orchestration, Error> {
        self.send(self.request(Method::POST, "/orchestrations").json(definition))
            .await
    }

    /// Replaces an orchestration (full replace, `version` + 1). Send a secret back as
    /// read ([`ParamEntry::masked`], [`ComputeStep::keep_secret`]) to keep it; omit it
    /// to remove it.
    pub async fn update_orchestration(
        &self,
        id: &str,
        definition: &impl Serialize,
    ) -> Result<Orchestration, Error> {
        self.send(
            self.request(Method::PUT, &format!("/orchestrations/{}", segment(id)))
                .json(definition),
        )
        .await
    }

    /// One orchestration, masked.
    pub async fn get_orchestration(&self, id: &str) -> Result<Orchestration, Error> {
        self.send(self.request(Method::GET, &format!("/orchestrations/{}", segment(id))))
            .await
    }

    /// Every orchestration, masked.
    pub async fn list_orchestrations(&self) -> Result<Vec<Orchestration>, Error> {
        let list: List<Orchestration> = self.send(self.request(Method::GET, "/orchestrations")).await?;
        Ok(list.data)
    }

    /// Deletes an orchestration (its runs go on).
    pub async fn delete_orchestration(&self, id: &str) -> Result<(), Error> {
        self.send_empty(self.request(Method::DELETE, &format!("/orchestrations/{}", segment(id))))
            .await
    }

    /// Starts a run of the orchestration's current version with `input` (a JSON
    /// object, or `None` for `{}`).
    pub async fn start_run(
        &self,
        orchestration_id: &str,
        input: Option<&Value>,
    ) -> Result<StartedRun, Error> {
        let body = StartRun {
            input: input.cloned(),
        };
        self.send(
            self.request(
                Method::POST,
                &format!("/orchestrations/{}/runs", segment(orchestration_id)),
            )
            .json(&body),
        )
        .await
    }

    /// A run with every step.
    pub async fn get_run(&self, run_id: &str) -> Result<Run, Error> {
        self.send(self.request(Method::GET, &format!("/runs/{}", segment(run_id))))
            .await
    }

    /// The run once it is no longer pending or running (finished, or waiting on an
    /// approval), or as it is after `wait` (the server holds at most [`MAX_WAIT`]).
    pub async fn wait_run(&self, run_id: &str, wait: Duration) -> Result<Run, Error> {
        let wait = wait.min(MAX_WAIT);
        let request = self.request(
            Method::GET,
            &format!("/runs/{}?waitMs={}", segment(run_id), wait.as_millis()),
        );
        // The server holds the request for up to `wait`; the timeout covers the rest.
        self.send_within(request, wait + self.timeout).await
    }

    /// An orchestration's runs, newest first, without their steps.
    pub async fn list_runs(&self, orchestration_id: &str, filter: &RunFilter) -> Result<Vec<Run>, Error> {
        let request = self
            .request(
                Method::GET,
                &format!("/orchestrations/{}/runs", segment(orchestration_id)),
            )
            .query(filter);
        let list: List<Run> = self.send(request).await?;
        Ok(list.data)
    }

    /// Approves a waiting approval step.
    pub async fn approve_step(
        &self,
        run_id: &str,
        step_id: &str,
        comment: Option<&str>,
    ) -> Result<Run, Error> {
        self.decide(run_id, step_id, "approve", comment).await
    }

    /// Rejects a waiting approval step.
    pub async fn reject_step(
        &self,
        run_id: &str,
        step_id: &str,
        comment: Option<&str>,
    ) -> Result<Run, Error> {
        self.decide(run_id, step_id, "reject", comment).await
    }

    async fn decide(
        &self,
        run_id: &str,
        step_id: &str,
        verb: &str,
        comment: Option<&str>,
    ) -> Result<Run, Error> {
        let body = Decision {
            comment: comment.map(str::to_owned),
        };
        self.send(
            self.request(
                Method::POST,
                &format!("/runs/{}/steps/{}/{verb}", segment(run_id), segment(step_id)),
            )
            .json(&body),
        )
        .await
    }

    /// Cancels an unfinished run.
    pub async fn cancel_run(&self, run_id: &str) -> Result<Run, Error> {
        self.send(self.request(Method::POST, &format!("/runs/{}/cancel", segment(run_id))))
            .await
    }
}

/// The HTTP client: through the environment's proxies or not.
fn http_client(proxied: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    let builder = if proxied { builder } else { builder.no_proxy() };
    // Fails only without a TLS backend or resolver, which this crate's features
    // always include; `reqwest::Client::new` panics in the same case.
    builder
        .build()
        .expect("an HTTP client with this crate's features")
}

/// Whether `url` names this machine: `localhost`, a loopback address (IPv4-mapped
/// too), or the unspecified address, which connects to this machine as well.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
            let ip = match ip {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
                v4 => v4,
            };
            ip.is_loopback() || ip.is_unspecified()
        })
}

fn api_error(status: StatusCode, bytes: &[u8]) -> Error {
    let status = status.as_u16();
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => Error::Api {
            status,
            details: serde_json::to_value(&body.error).unwrap_or(Value::Null),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => Error::Unexpected {
            status,
            message: "no error body".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(segment("fn-create_repo"), "fn-create_repo");
        assert_eq!(segment("../admin?x=1"), "%2E%2E%2Fadmin%3Fx%3D1");
    }

    #[test]
    fn loopback_servers_are_recognised() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:80/x",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:8080",
            "https://trellis.example.com",
            "http://localhost.example.com",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client = Client::new("http://127.0.0.1:1", "trl_supersecret");
        assert!(!format!("{client:?}").contains("supersecret"));
        assert!(!format!("{:?}", client.with_token("trl_other")).contains("trl_other"));
    }

    #[test]
    fn the_builder_writes_what_the_api_documents() {
        let definition = Definition::new("Provision repo")
            .step(ComputeStep::new("create-github-repo").secret("KEY", "s3cr3t"))
            .step(ApprovalStep::new("ok?").id("approve"));
        assert_eq!(
            serde_json::to_value(&definition).expect("json"),
            serde_json::json!({ "name": "Provision repo", "steps": [
                { "type": "compute", "functionId": "create-github-repo",
                  "encryptedParams": { "KEY": { "value": "s3cr3t", "encrypt": true } } },
                { "type": "approval", "id": "approve", "message": "ok?" },
            ]})
        );
    }
}
