//! Checks a sent definition before anything is encrypted or stored. Messages name
//! steps, fields and param names, never a value: values may be secrets.

use super::model::{Definition, Operator, Step};
use std::collections::HashSet;

/// Longest `name` of an orchestration or step.
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Enough for any workflow a person can still reason about; bounds validation cost.
const MAX_STEPS: usize = 256;
/// Each `params` value and each `encryptedParams` value: 64 KiB a value
/// (docs/orchestrations.md#saving).
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Same bound as a function's own `timeoutMs`.
const MAX_COMPUTE_TIMEOUT_MS: u32 = crate::functions::MAX_TIMEOUT_MS;
/// Approvals and delays may wait long, but not forever: a year.
const MAX_WAIT_MS: u64 = 365 * 24 * 3600 * 1000;
/// Retries beyond this are a loop, not resilience.
const MAX_ATTEMPTS: u32 = 100;
/// An hour between attempts is already an unusual backoff.
const MAX_BACKOFF_MS: u64 = 3600 * 1000;
const MAX_MULTIPLIER: f64 = 10.0;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDefinition(pub String);

type Result<T = ()> = std::result::Result<T, InvalidDefinition>;

fn invalid(message: impl Into<String>) -> InvalidDefinition {
    InvalidDefinition(message.into())
}

/// Longest step id: room for a functionId (63) and a short suffix.
pub const MAX_STEP_ID_BYTES: usize = 64;

/// Step ids appear in the associated data of sealed params (`|`-separated), in URLs
/// and in templates, so they are plain identifiers.
pub fn valid_step_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=MAX_STEP_ID_BYTES).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `[A-Za-z_][A-Za-z0-9_]{0,127}`: param names become triggerParams keys and, for
/// secrets, part of the associated data.
pub fn valid_param_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=128).contains(&bytes.len())
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The one check that must come before step ids are assigned: it bounds their cost.
pub fn check_step_count(count: usize) -> Result {
    match (1..=MAX_STEPS).contains(&count) {
        true => Ok(()),
        false => Err(invalid(format!("steps must hold 1 to {MAX_STEPS} steps"))),
    }
}

/// Everything that can be checked without the store: shape, ids, references,
/// ranges, sizes. Function existence is checked by the caller.
pub fn check(definition: &Definition) -> Result {
    if definition.name.trim().is_empty() || definition.name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if definition
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    check_step_count(definition.steps.len())?;
    let mut ids = HashSet::new();
    for step in &definition.steps {
        let id = step.id();
        if !valid_step_id(id) {
            return Err(invalid(format!(
                "step id `{}` is invalid: use 1 to {MAX_STEP_ID_BYTES} letters, digits, `-` or `_`, starting with a letter or digit",
                id.chars().take(MAX_STEP_ID_BYTES).collect::<String>()
            )));
        }
        if !ids.insert(id) {
            return Err(invalid(format!("step id `{id}` is used twice")));
        }
    }
    for step in &definition.steps {
        check_step(step, &ids)?;
    }
    Ok(())
}

fn check_reference(step: &str, field: &str, target: &str, ids: &HashSet<&str>) -> Result {
    match ids.contains(target) {
        true => Ok(()),
        false => Err(invalid(format!(
            "step `{step}`: {field} `{target}` is not a step of this orchestration"
        ))),
    }
}

fn check_step(step: &Step, ids: &HashSet<&str>) -> Result {
    let id = step.id();
    if step.misplaced_encrypted_params() {
        return Err(invalid(format!(
            "step `{id}` is of type {}: only compute steps may carry encryptedParams (each step gets only the secrets it needs)",
            step.kind()
        )));
    }
    if let Some(next) = step.next_step_id() {
        check_reference(id, "nextStepId", next, ids)?;
    }
    match step {
        Step::Compute(compute) => {
            if !crate::functions::valid_id(&compute.function_id) {
                return Err(invalid(format!(
                    "step `{id}`: functionId is not a valid function id"
                )));
            }
            if let Some(timeout) = compute.timeout_ms
                && !(1..=MAX_COMPUTE_TIMEOUT_MS).contains(&timeout)
            {
                return Err(invalid(format!(
                    "step `{id}`: timeoutMs must be between 1 and {MAX_COMPUTE_TIMEOUT_MS}"
                )));
            }
            if let Some(retry) = &compute.retry {
                if !(1..=MAX_ATTEMPTS).contains(&retry.max_attempts) {
                    return Err(invalid(format!(
                        "step `{id}`: retry.maxAttempts must be between 1 and {MAX_ATTEMPTS}"
                    )));
                }
                if retry.backoff_ms > MAX_BACKOFF_MS {
                    return Err(invalid(format!(
                        "step `{id}`: retry.backoffMs must be at most {MAX_BACKOFF_MS}"
                    )));
                }
                if !(1.0..=MAX_MULTIPLIER).contains(&retry.multiplier) {
                    return Err(invalid(format!(
                        "step `{id}`: retry.multiplier must be between 1 and {MAX_MULTIPLIER}"
                    )));
                }
            }
            for (name, value) in compute.params.iter().flatten() {
                if !valid_param_name(name) {
                    return Err(invalid(format!(
                        "step `{id}`: param name `{}` is invalid",
                        shown(name)
                    )));
                }
                if serde_json::to_string(value).map_or(true, |text| text.len() > MAX_VALUE_BYTES) {
                    return Err(invalid(format!(
                        "step `{id}`: param `{name}` is larger than {MAX_VALUE_BYTES} bytes"
                    )));
                }
            }
            for (name, entry) in compute.encrypted_params.iter().flatten() {
                if !valid_param_name(name) {
                    return Err(invalid(format!(
                        "step `{id}`: encryptedParams name `{}` is invalid",
                        shown(name)
                    )));
                }
                if entry
                    .value
                    .as_ref()
                    .is_some_and(|value| value.len() > MAX_VALUE_BYTES)
                {
                    return Err(invalid(format!(
                        "step `{id}`: encryptedParams `{name}` is larger than {MAX_VALUE_BYTES} bytes"
                    )));
                }
            }
        }
        Step::Approval(approval) => {
            if let Some(timeout) = approval.timeout_ms
                && !(1..=MAX_WAIT_MS).contains(&timeout)
            {
                return Err(invalid(format!(
                    "step `{id}`: timeoutMs must be between 1 and {MAX_WAIT_MS}"
                )));
            }
        }
        Step::Decision(decision) => {
            check_reference(id, "defaultNextStepId", &decision.default_next_step_id, ids)?;
            for (index, case) in decision.cases.iter().enumerate() {
                check_reference(id, &format!("cases[{index}].nextStepId"), &case.next_step_id, ids)?;
                if case.conditions.is_empty() {
                    return Err(invalid(format!(
                        "step `{id}`: cases[{index}] needs at least one condition"
                    )));
                }
                for condition in &case.conditions {
                    let needs_value = !matches!(condition.operator, Operator::Exists | Operator::NotExists);
                    if needs_value && condition.value.is_none() {
                        return Err(invalid(format!(
                            "step `{id}`: cases[{index}]: operator {:?} needs a value",
                            condition.operator
                        )));
                    }
                    if matches!(condition.operator, Operator::In | Operator::NotIn)
                        && !condition.value.as_ref().is_some_and(|v| v.is_array())
                    {
                        return Err(invalid(format!(
                            "step `{id}`: cases[{index}]: in/notIn need an array value"
                        )));
                    }
                    if condition.path.is_empty() {
                        return Err(invalid(format!(
                            "step `{id}`: cases[{index}]: a condition needs a path"
                        )));
                    }
                }
            }
        }
        Step::Delay(delay) => {
            if delay.delay_ms > MAX_WAIT_MS {
                return Err(invalid(format!(
                    "step `{id}`: delayMs must be at most {MAX_WAIT_MS}"
                )));
            }
        }
    }
    Ok(())
}

/// A name as shown in an error: cut, since an invalid "name" might be anything.
fn shown(name: &str) -> String {
    name.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(steps: serde_json::Value) -> Definition {
        serde_json::from_value(serde_json::json!({ "name": "t", "steps": steps })).expect("a definition")
    }

    fn error(steps: serde_json::Value) -> String {
        check(&definition(steps)).expect_err("invalid").0
    }

    #[test]
    fn names_follow_the_contract() {
        for ok in ["GITHUB_PRIVATE_KEY", "_x", "a1", &"a".repeat(128)] {
            assert!(valid_param_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a|b", "a b", &"a".repeat(129)] {
            assert!(!valid_param_name(bad), "{bad}");
        }
        assert!(valid_step_id("provision-repo") && !valid_step_id("a|b") && !valid_step_id("-a"));
    }

    #[test]
    fn references_must_exist() {
        let message =
            error(serde_json::json!([{ "id": "a", "type": "delay", "delayMs": 1, "nextStepId": "nope" }]));
        assert!(message.contains("nextStepId `nope`"), "{message}");
        let message = error(serde_json::json!([
            { "id": "d", "type": "decision", "defaultNextStepId": "d",
              "cases": [{ "conditions": [{ "path": "input.x", "operator": "eq", "value": 1 }], "nextStepId": "ghost" }] }
        ]));
        assert!(message.contains("cases[0].nextStepId `ghost`"), "{message}");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let message = error(serde_json::json!([
            { "id": "a", "type": "delay", "delayMs": 1 }, { "id": "a", "type": "delay", "delayMs": 2 }
        ]));
        assert!(message.contains("used twice"), "{message}");
    }

    #[test]
    fn secrets_only_on_compute_steps_and_never_echoed() {
        let message = error(serde_json::json!([{ "id": "ok", "type": "approval",
            "encryptedParams": { "K": { "value": "hunter2-secret", "encrypt": true } } }]));
        assert!(message.contains("only compute steps"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn oversized_values_are_refused_by_name() {
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        let message = error(
            serde_json::json!([{ "id": "c", "type": "compute", "functionId": "f",
            "encryptedParams": { "KEY": { "value": big, "encrypt": true } } }]),
        );
        assert!(message.contains("encryptedParams `KEY` is larger"), "{message}");
        assert!(message.len() < 200);
    }
}
