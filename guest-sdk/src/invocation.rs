//! Facts about the current invocation, outside the params.

/// Facts about the current invocation, outside the params. Take it as the handler's
/// second parameter, `invocation: &Invocation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The function's id, e.g. `fn-create-github-repo`.
    pub function_id: String,
    /// The orchestration run, when the call comes from one; `None` for a direct invoke.
    pub run_id: Option<String>,
    /// The step within that run.
    pub step_id: Option<String>,
    /// 1 for the first attempt; retries count up.
    pub attempt: u32,
    /// Stable for one step execution across host crashes and retries: pass it to an
    /// external API that deduplicates requests, so a retried step does not act twice.
    pub idempotency_key: String,
}
