//! One call of a compute step: resolve `{{ }}` templates in its params, assemble its
//! triggerParams (`input ⊕ params ⊕ decrypted encryptedParams`), call the function,
//! and pass everything it sends back (output, logs, error) through the step's
//! redactor before any of it leaves this module. Decrypted values exist only inside
//! [`run`], in a buffer zeroized on drop.

use super::plan::{Attempt, ComputeResult, RunState};
use super::template;
use crate::functions::{Functions, FunctionsError};
use crate::orchestrations::model::{ComputeStep, Definition};
use crate::runtime::{Invocation, InvokeError, LINE_TRUNCATED, LogEntry, MESSAGE_TRUNCATED};
use crate::secrets::input::{self, InputError};
use crate::secrets::{Keyring, Redactor};
use serde_json::{Map, Value};
use std::time::Duration;

/// The stored logs of a call that never reached the function.
const NO_LOGS: &str = "[]";

/// The largest step output stored in a run record, as JSON text after redaction.
pub const MAX_STEP_OUTPUT_BYTES: usize = 1 << 20;

pub struct Call<'a> {
    pub functions: &'a Functions,
    pub keyring: &'a Keyring,
    pub definition: &'a Definition,
    pub step: &'a ComputeStep,
    pub attempt: &'a Attempt,
}

impl Call<'_> {
    pub async fn run(&self, state: &RunState) -> ComputeResult {
        let params = match template::resolve_params(
            self.step.params.as_ref().unwrap_or(&Map::new()),
            &state.context(),
        ) {
            Ok(params) => params,
            Err(error) => return failed("template_error", error.to_string(), false, NO_LOGS.into()),
        };
        let empty = Map::new();
        let run_input = state.input.as_object().unwrap_or(&empty);
        let step_input = match input::assemble(
            self.definition,
            &state.run.orchestration_id,
            &self.step.id,
            run_input,
            &params,
            self.keyring,
        ) {
            Ok(step_input) => step_input,
            // Names the step and param only. Not retryable: a missing key stays missing
            // until an operator fixes the keyring, and the run says so.
            Err(error @ InputError::Decrypt { .. }) => {
                return failed("decrypt_failed", error.to_string(), false, NO_LOGS.into());
            }
            Err(error) => return failed("internal", error.to_string(), false, NO_LOGS.into()),
        };
        let invocation = Invocation {
            function_id: self.step.function_id.clone(),
            run_id: Some(state.run.id.clone()),
            step_id: Some(self.step.id.clone()),
            attempt: self.attempt.attempt,
            idempotency_key: self.attempt.idempotency_key.clone(),
        };
        let timeout = self.step.timeout_ms.map(|ms| Duration::from_millis(ms.into()));
        let outcome = self
            .functions
            .invoke_with_timeout(&invocation, &step_input.params, timeout)
            .await;
        let redactor = &step_input.redactor;
        match outcome {
            Ok(outcome) => {
                let logs = redacted_logs(redactor, &outcome.logs, self.attempt);
                let output = redacted_output(redactor, outcome.output.get());
                if output.len() > MAX_STEP_OUTPUT_BYTES {
                    return failed(
                        "output_too_large",
                        format!(
                            "the step's output is {} bytes; a step output may be at most {MAX_STEP_OUTPUT_BYTES}",
                            output.len()
                        ),
                        false,
                        logs,
                    );
                }
                ComputeResult::Succeeded { output, logs }
            }
            Err(FunctionsError::Invoke(InvokeError::Overloaded(_))) => ComputeResult::Overloaded,
            Err(FunctionsError::Invoke(error)) => {
                let logs = redacted_logs(redactor, error.logs(), self.attempt);
                let message = redactor.redact_cut(&error.to_string(), &[LINE_TRUNCATED, MESSAGE_TRUNCATED]);
                let code = match &error {
                    // A function chooses its code; one that holds a secret is replaced.
                    InvokeError::Function { code, .. } if redactor.is_match(code) => {
                        "function_error".to_owned()
                    }
                    InvokeError::Internal(internal) => {
                        tracing::error!(error = %redactor.redact_str(&format!("{internal:#}")), "calling a step's function");
                        "internal".to_owned()
                    }
                    other => other.code().to_owned(),
                };
                failed(&code, message, error.retryable(), logs)
            }
            Err(error @ FunctionsError::NotFound(_)) => {
                failed("function_not_found", error.to_string(), false, NO_LOGS.into())
            }
            // A database hiccup loading the function: worth another attempt.
            Err(error) => {
                tracing::error!(error = %redactor.redact_str(&error.to_string()), "loading a step's function");
                failed(
                    "internal",
                    "the function could not be loaded; see the server log".into(),
                    true,
                    NO_LOGS.into(),
                )
            }
        }
    }
}

fn failed(code: &str, message: String, retryable: bool, logs: String) -> ComputeResult {
    ComputeResult::Failed {
        code: code.to_owned(),
        message,
        retryable,
        logs,
    }
}

/// The output as stored: parsed (the runtime checked it is JSON), redacted, compact.
fn redacted_output(redactor: &Redactor, raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(mut value) => {
            redactor.redact_json(&mut value);
            value.to_string()
        }
        Err(_) => redactor.redact_json_text(raw),
    }
}

/// The logs as stored, redacted. Each entry also goes to this node's own log (target
/// `trellis::function`, DEBUG), so operators can follow functions in their log
/// pipeline, and so every call leaves a trace even if the node dies before the step's
/// record is committed.
fn redacted_logs(redactor: &Redactor, logs: &[LogEntry], attempt: &Attempt) -> String {
    let logs: Vec<LogEntry> = logs
        .iter()
        .map(|entry| {
            let message = redactor.redact_cut(&entry.message, &[LINE_TRUNCATED]);
            tracing::debug!(
                target: "trellis::function",
                key = %attempt.idempotency_key,
                attempt = attempt.attempt,
                level = ?entry.level,
                "{message}"
            );
            LogEntry {
                level: entry.level,
                source: entry.source,
                message,
            }
        })
        .collect();
    serde_json::to_string(&logs).unwrap_or_else(|_| "[]".into())
}
