//! Typed async client for the Trellis REST API (v1).
//!
//! ```no_run
//! # async fn demo() -> Result<(), trellis_client::Error> {
//! let client = trellis_client::Client::new("http://127.0.0.1:8080", "trl_…");
//! let bytes = std::fs::read("echo.wasm").expect("a component");
//! client.upload_function("echo", bytes).await?;
//! let result = client.invoke_function("echo", &serde_json::json!({ "hello": "world" })).await?;
//! assert_eq!(result.output["hello"], "world");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What can go wrong talking to Trellis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error body `{ "error": { code, message } }`.
    #[error("{status}: {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code, e.g. `function_not_found`.
        code: String,
        /// Human-readable explanation.
        message: String,
        /// The whole `error` object (invocation failures add `retryable` and `logs`).
        details: Value,
    },
    /// The request did not complete (connection refused, timeout, …).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with something that is not the documented shape.
    #[error("unexpected response ({status}): {message}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// What did not fit.
        message: String,
    },
}

/// Per-function settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSettings {
    /// Wall-clock deadline per invocation (default 30000, max 300000).
    pub timeout_ms: u32,
    /// Linear memory cap (default 128, max 4096).
    pub memory_limit_mb: u32,
    /// Outbound HTTP destinations.
    pub allowed_hosts: Vec<String>,
    /// Whether the function gets an empty scratch directory at `/scratch`.
    pub scratch_dir: bool,
}

/// A partial settings update: `None` fields keep their value.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsPatch {
    /// New deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// New memory cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<u32>,
    /// New outbound allowlist (replaces the old one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// Turn the scratch directory on or off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_dir: Option<bool>,
}

/// A stored function (without its bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    /// The functionId.
    pub id: String,
    /// 1 on creation, +1 whenever different bytes are uploaded.
    pub version: i64,
    /// Lowercase hex SHA-256 of the component.
    pub sha256: String,
    /// Component size.
    pub size_bytes: i64,
    /// First upload.
    pub created_at: DateTime<Utc>,
    /// Last change of bytes or settings.
    pub updated_at: DateTime<Utc>,
    /// How it runs.
    pub settings: FunctionSettings,
}

/// One entry a function logged or printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// `log`, `stdout`, `stderr` or `host`.
    pub source: String,
    /// The text.
    pub message: String,
}

/// A successful invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeResult {
    /// The function's JSON output.
    pub output: Value,
    /// What it logged, in order (capped; a `host` entry says when cut).
    pub logs: Vec<LogEntry>,
    /// Time inside the sandbox, in milliseconds.
    pub duration_ms: f64,
}

/// An orchestration as the API returns it: every secret in `encryptedParams` reads
/// back as `{ "value": "********", "encrypted": true }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Orchestration {
    /// Server-assigned id.
    pub id: String,
    /// 1 on creation, +1 on every update.
    pub version: i64,
    /// Display name.
    pub name: String,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
    /// The steps, as JSON (`compute`, `approval`, `decision`, `delay`).
    pub steps: Vec<Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

/// A run of an orchestration version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// Server-assigned run id.
    pub id: String,
    /// The orchestration it runs.
    pub orchestration_id: String,
    /// The definition version it executes, fixed at start.
    pub orchestration_version: i64,
    /// `pending`, `running`, `waiting`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// The run's input object.
    pub input: Value,
    /// Every step of the definition, in order (absent in lists).
    #[serde(default)]
    pub steps: Option<Vec<RunStep>>,
    /// The step the run is at, or where it stopped.
    #[serde(default)]
    pub current_step_id: Option<String>,
    /// `{ code, message, stepId? }` when the run failed or was cancelled.
    pub error: Option<Value>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its last state change.
    pub updated_at: DateTime<Utc>,
}

impl Run {
    /// The record of step `id`.
    pub fn step(&self, id: &str) -> Option<&RunStep> {
        self.steps.as_ref()?.iter().find(|step| step.id == id)
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStep {
    /// The step's id in the definition.
    pub id: String,
    /// `compute`, `approval`, `decision` or `delay`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `running`, `waiting`, `succeeded`, `failed`, `skipped` or `cancelled`.
    pub status: String,
    /// Function calls so far (1 for other step types once entered).
    pub attempts: i64,
    /// The step's output, redacted: a function's JSON, an approval's decision, a
    /// decision's chosen branch.
    pub output: Option<Value>,
    /// `{ code, message, retryable }` of the latest failed attempt.
    pub error: Option<Value>,
    /// A compute step's function logs from its latest attempt.
    #[serde(default)]
    pub logs: Option<Vec<LogEntry>>,
    /// When the step was entered.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// What starting a run returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedRun {
    /// The new run's id.
    pub id: String,
    /// `pending` until a worker takes it.
    pub status: String,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

/// A connection to one Trellis server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

/// The token is a credential: never printed.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("token", &"********")
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
    /// `base_url` like `http://127.0.0.1:8080`; `token` is the bearer token.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/v1{path}", self.base_url))
            .bearer_auth(&self.token)
    }

    /// Uploads (or replaces) a component under `id`.
    pub async fn upload_function(&self, id: &str, component: Vec<u8>) -> Result<Function, Error> {
        let request = self
            .request(Method::PUT, &format!("/functions/{}", segment(id)))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(component);
        send(request).await
    }

    /// Every function, sorted by id.
    pub async fn list_functions(&self) -> Result<Vec<Function>, Error> {
        Ok(send::<List<Function>>(self.request(Method::GET, "/functions"))
            .await?
            .data)
    }

    /// One function's record.
    pub async fn get_function(&self, id: &str) -> Result<Function, Error> {
        send(self.request(Method::GET, &format!("/functions/{}", segment(id)))).await
    }

    /// Changes some settings, keeping the others.
    pub async fn update_function_settings(&self, id: &str, patch: &SettingsPatch) -> Result<Function, Error> {
        send(
            self.request(Method::PATCH, &format!("/functions/{}", segment(id)))
                .json(patch),
        )
        .await
    }

    /// Deletes a function.
    pub async fn delete_function(&self, id: &str) -> Result<(), Error> {
        let response = self
            .request(Method::DELETE, &format!("/functions/{}", segment(id)))
            .send()
            .await?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(()),
            _ => Err(api_error(response).await),
        }
    }

    /// Creates an orchestration from `{ name, description?, steps }`. Secrets go in a
    /// compute step's `encryptedParams` as `{ "value": "…", "encrypt": true }`; they
    /// are encrypted before they reach the database and come back masked.
    pub async fn create_orchestration(&self, definition: &Value) -> Result<Orchestration, Error> {
        send(self.request(Method::POST, "/orchestrations").json(definition)).await
    }

    /// Replaces an orchestration (full replace, `version` + 1). Send a secret back as
    /// read, `{ "value": "********", "encrypted": true }`, to keep it; omit it to
    /// remove it.
    pub async fn update_orchestration(&self, id: &str, definition: &Value) -> Result<Orchestration, Error> {
        send(
            self.request(Method::PUT, &format!("/orchestrations/{}", segment(id)))
                .json(definition),
        )
        .await
    }

    /// One orchestration, masked.
    pub async fn get_orchestration(&self, id: &str) -> Result<Orchestration, Error> {
        send(self.request(Method::GET, &format!("/orchestrations/{}", segment(id)))).await
    }

    /// Every orchestration, masked.
    pub async fn list_orchestrations(&self) -> Result<Vec<Orchestration>, Error> {
        Ok(
            send::<List<Orchestration>>(self.request(Method::GET, "/orchestrations"))
                .await?
                .data,
        )
    }

    /// Deletes an orchestration.
    pub async fn delete_orchestration(&self, id: &str) -> Result<(), Error> {
        let response = self
            .request(Method::DELETE, &format!("/orchestrations/{}", segment(id)))
            .send()
            .await?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(()),
            _ => Err(api_error(response).await),
        }
    }

    /// Starts a run of the orchestration's current version with `input` (a JSON
    /// object, or `None` for `{}`).
    pub async fn start_run(
        &self,
        orchestration_id: &str,
        input: Option<&Value>,
    ) -> Result<StartedRun, Error> {
        let body = match input {
            Some(input) => serde_json::json!({ "input": input }),
            None => serde_json::json!({}),
        };
        send(
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
        send(self.request(Method::GET, &format!("/runs/{}", segment(run_id)))).await
    }

    /// The run once it is no longer pending or running (finished, or waiting on an
    /// approval), or as it is after `wait` (at most 60 s).
    pub async fn wait_run(&self, run_id: &str, wait: std::time::Duration) -> Result<Run, Error> {
        send(self.request(
            Method::GET,
            &format!("/runs/{}?waitMs={}", segment(run_id), wait.as_millis()),
        ))
        .await
    }

    /// The newest runs of an orchestration (up to `limit`, at most 1000), newest first.
    pub async fn list_runs(&self, orchestration_id: &str, limit: u32) -> Result<Vec<Run>, Error> {
        Ok(send::<List<Run>>(self.request(
            Method::GET,
            &format!("/orchestrations/{}/runs?limit={limit}", segment(orchestration_id)),
        ))
        .await?
        .data)
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
        send(
            self.request(
                Method::POST,
                &format!("/runs/{}/steps/{}/{verb}", segment(run_id), segment(step_id)),
            )
            .json(&serde_json::json!({ "comment": comment })),
        )
        .await
    }

    /// Cancels an unfinished run.
    pub async fn cancel_run(&self, run_id: &str) -> Result<Run, Error> {
        send(self.request(Method::POST, &format!("/runs/{}/cancel", segment(run_id)))).await
    }

    /// Invokes a function with `params` as its triggerParams (a JSON object).
    pub async fn invoke_function(&self, id: &str, params: &Value) -> Result<InvokeResult, Error> {
        send(
            self.request(Method::POST, &format!("/functions/{}/invoke", segment(id)))
                .json(params),
        )
        .await
    }
}

async fn send<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, Error> {
    let response = request.send().await?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|error| Error::Unexpected {
        status,
        message: error.to_string(),
    })
}

async fn api_error(response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let body: Value = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(error) => return Error::Http(error),
    };
    match body.get("error") {
        Some(details) => Error::Api {
            status,
            code: details["code"].as_str().unwrap_or_default().to_owned(),
            message: details["message"].as_str().unwrap_or_default().to_owned(),
            details: details.clone(),
        },
        None => Error::Unexpected {
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
    fn debug_never_shows_the_token() {
        let client = Client::new("http://127.0.0.1:1", "trl_supersecret");
        assert!(!format!("{client:?}").contains("supersecret"));
    }
}
