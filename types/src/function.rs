//! Functions: uploaded Wasm components, their settings, and invocations.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A stored function, without its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    /// The functionId: `[a-z0-9][a-z0-9-_]{0,62}`.
    pub id: String,
    /// 1 on creation, +1 whenever different bytes are uploaded.
    pub version: i64,
    /// Lowercase hex SHA-256 of the component.
    pub sha256: String,
    /// Component size in bytes.
    pub size_bytes: i64,
    /// First upload.
    pub created_at: DateTime<Utc>,
    /// Last change of bytes or settings (an identical upload changes nothing).
    pub updated_at: DateTime<Utc>,
    /// How it runs.
    pub settings: FunctionSettings,
}

/// The longest deadline a function may have (`timeoutMs`): five minutes covers slow
/// external APIs; longer work belongs in an orchestration.
pub const MAX_FUNCTION_TIMEOUT_MS: u32 = 300_000;

/// How a function runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct FunctionSettings {
    /// Wall-clock deadline of one invocation, in milliseconds (1 to 300000).
    pub timeout_ms: u32,
    /// Cap on the guest's memory, in MiB (1 to 4096).
    pub memory_limit_mb: u32,
    /// Outbound HTTP destinations (`https://api.github.com`, `*.example.com`); empty
    /// means no network.
    pub allowed_hosts: Vec<String>,
    /// Whether the function gets an empty, size-capped scratch directory at `/scratch`.
    pub scratch_dir: bool,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        FunctionSettings {
            // Long enough for a few outbound HTTP calls, short enough that a stuck
            // function does not hold a worker for long.
            timeout_ms: 30_000,
            // Comfortable for typical Rust components (a few MiB of heap) while letting
            // a 2-core host run dozens of invocations at once.
            memory_limit_mb: 128,
            // Sandbox default: no network, no filesystem.
            allowed_hosts: Vec::new(),
            scratch_dir: false,
        }
    }
}

/// The body of `PATCH /v1/functions/{functionId}`: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    /// New deadline, in milliseconds (1 to 300000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// New memory cap, in MiB (1 to 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<u32>,
    /// New outbound allowlist; replaces the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// Turns the scratch directory on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_dir: Option<bool>,
}

/// What a successful `POST /v1/functions/{functionId}/invoke` returns. `J` is how
/// the output is held: the server passes the function's JSON text through
/// untouched, a client reads it as a [`Value`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "InvokeResult")]
pub struct InvokeResult<J = Value> {
    /// The function's JSON output, with any secret it echoed replaced by `********`.
    pub output: J,
    /// What it logged or printed, in order; capped, with a `host` entry saying so.
    pub logs: Vec<LogEntry>,
    /// Time inside the sandbox, in milliseconds.
    pub duration_ms: f64,
}

/// One entry a function logged or printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogEntry {
    /// How severe.
    pub level: LogLevel,
    /// Where it came from.
    pub source: LogSource,
    /// The text, with any secret replaced by `********`.
    pub message: String,
}

/// Severity of a [`LogEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something odd.
    Warn,
    /// Something failed.
    Error,
}

/// Where a [`LogEntry`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The guest SDK's `log` import.
    Log,
    /// A line the function wrote to stdout.
    Stdout,
    /// A line the function wrote to stderr.
    Stderr,
    /// Written by Trellis itself, e.g. the truncation notice.
    Host,
}
