//! The orchestration definition as sent, stored and read back. One set of types
//! serves all three: what differs is the form of each `encryptedParams` entry (see
//! [`ParamEntry`]), which the save rules turn from sent into stored form and masking
//! turns from stored into read-back form.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `{ name, description?, steps }`: the body of create and update.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub steps: Vec<Step>,
}

/// One step; `type` selects the variant. Fields common to all (`id`, `name`,
/// `nextStepId`) live in each variant so that unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Step {
    Compute(ComputeStep),
    Approval(ApprovalStep),
    Decision(DecisionStep),
    Delay(DelayStep),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputeStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    pub function_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_params: Option<BTreeMap<String, ParamEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// One `encryptedParams` entry, in any of its three forms:
///
/// | form | fields |
/// |---|---|
/// | sent | `value` with `encrypt: true` (seal it), `encrypt: false` or neither (plain), or `value: "********", encrypted: true` (keep what is stored) |
/// | stored | `value` is the blob `iv:ciphertext:tag` with `encrypted: true, keyVersion`, or plain text with `encrypted: false` |
/// | read back | `value: "********", encrypted: true`, or plain text with `encrypted: false` |
///
/// `Debug` never prints `value`: in the sent form it is a plaintext secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
}

impl std::fmt::Debug for ParamEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamEntry")
            .field("value", &self.value.as_ref().map(|_| crate::secrets::MASK))
            .field("encrypt", &self.encrypt)
            .field("encrypted", &self.encrypted)
            .field("key_version", &self.key_version)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    pub max_attempts: u32,
    #[serde(default)]
    pub backoff_ms: u64,
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
}

fn default_multiplier() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<OnReject>,
    /// Accepted only to refuse it with a precise message: secrets belong to compute
    /// steps. Its content is skipped while parsing, so no copy of a value is kept.
    #[serde(default, skip_serializing)]
    pub encrypted_params: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnTimeout {
    Reject,
    Approve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnReject {
    Fail,
    Continue,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    pub cases: Vec<Case>,
    pub default_next_step_id: String,
    /// See [`ApprovalStep::encrypted_params`].
    #[serde(default, skip_serializing)]
    pub encrypted_params: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub conditions: Vec<Condition>,
    pub next_step_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    pub path: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Exists,
    NotExists,
    In,
    NotIn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelayStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    pub delay_ms: u64,
    /// See [`ApprovalStep::encrypted_params`].
    #[serde(default, skip_serializing)]
    pub encrypted_params: Option<IgnoredAny>,
}

impl Step {
    pub fn id(&self) -> &str {
        match self {
            Step::Compute(s) => &s.id,
            Step::Approval(s) => &s.id,
            Step::Decision(s) => &s.id,
            Step::Delay(s) => &s.id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Step::Compute(_) => "compute",
            Step::Approval(_) => "approval",
            Step::Decision(_) => "decision",
            Step::Delay(_) => "delay",
        }
    }

    pub fn next_step_id(&self) -> Option<&str> {
        match self {
            Step::Compute(s) => s.next_step_id.as_deref(),
            Step::Approval(s) => s.next_step_id.as_deref(),
            Step::Decision(s) => s.next_step_id.as_deref(),
            Step::Delay(s) => s.next_step_id.as_deref(),
        }
    }

    /// What a non-compute step was sent under `encryptedParams`, to refuse it.
    pub fn misplaced_encrypted_params(&self) -> bool {
        match self {
            Step::Compute(_) => false,
            Step::Approval(s) => s.encrypted_params.is_some(),
            Step::Decision(s) => s.encrypted_params.is_some(),
            Step::Delay(s) => s.encrypted_params.is_some(),
        }
    }
}
