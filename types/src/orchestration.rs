//! Orchestration definitions: what is sent on create and update, and what every read
//! returns. One set of types serves both; what differs is the form of each
//! `encryptedParams` entry (see [`ParamEntry`]).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What every read shows instead of a secret's value.
pub const MASK: &str = "********";

/// The body of create and update: `{ name, description?, steps }`. Steps run in
/// order unless a step names its `nextStepId` (or a decision picks one).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Definition {
    /// Display name, 1 to 200 characters.
    pub name: String,
    /// Up to 4000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 1 to 256 steps.
    pub steps: Vec<Step>,
}

/// An orchestration as every read returns it: its definition with each secret
/// masked as `{ "value": "********", "encrypted": true }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Orchestration {
    /// Server-assigned id; runs and updates use it.
    pub id: String,
    /// 1 on creation, +1 on every update; a run pins the version it started with.
    pub version: i64,
    /// Name, description and steps (every step with its `id`).
    #[serde(flatten)]
    pub definition: Definition,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

/// One step; `type` selects the kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Step {
    /// Calls a function with `input ⊕ params ⊕ decrypted encryptedParams` as its
    /// triggerParams.
    Compute(ComputeStep),
    /// Waits for a person to approve or reject.
    Approval(ApprovalStep),
    /// Picks the next step from the run context.
    Decision(DecisionStep),
    /// Waits a fixed time (a durable timer).
    Delay(DelayStep),
}

/// The kinds of [`Step`], as run records name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StepType {
    /// A function call.
    Compute,
    /// A human decision.
    Approval,
    /// A branch.
    Decision,
    /// A timer.
    Delay,
}

impl StepType {
    /// The name used on the wire: `compute`, `approval`, `decision`, `delay`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Compute => "compute",
            StepType::Approval => "approval",
            StepType::Decision => "decision",
            StepType::Delay => "delay",
        }
    }
}

/// A compute step: calls `functionId`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputeStep {
    /// Unique in the orchestration: 1 to 64 letters, digits, `-` or `_`. Omit it and
    /// the server assigns one (the `functionId`, with `-2`, `-3`… when taken) and
    /// returns it; encrypted params are kept by this id on later updates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The step to go to next; default: the next one in `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    /// The function to call; it must exist when the definition is saved.
    pub function_id: String,
    /// Plain parameters merged over the run's input. A string that is exactly
    /// `"{{ path }}"` becomes the JSON value at `path` of the run context (`input.x`,
    /// `steps.<id>.output.y`); other `{{ path }}` interpolate as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    /// Secrets only this step receives, merged last (they win on key collisions).
    /// Send `{ "value": "…", "encrypt": true }` for a new secret; it is encrypted
    /// before it reaches the database and reads back as `{ "value": "********",
    /// "encrypted": true }`. To keep a stored secret on update, send that masked
    /// entry back unchanged; omit it to remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_params: Option<BTreeMap<String, ParamEntry>>,
    /// Deadline of one call, in milliseconds (1 to 300000); default: the function's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Retries of a failed call; default: one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// One `encryptedParams` entry, in any of its forms:
///
/// | form | fields |
/// |---|---|
/// | sent | `value` with `encrypt: true` (a new secret), `encrypt: false` or neither (plain), or `value: "********", encrypted: true` (keep what is stored) |
/// | read back | `value: "********", encrypted: true`, or plain text with `encrypted: false` |
//
// Stored, `value` is the blob `iv:ciphertext:tag` with `encrypted: true` and
// `keyVersion`; that form never leaves the server. `Debug` never prints `value`: in
// the sent form it is a plaintext secret.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamEntry {
    /// The secret (with `encrypt: true`), or `********` as read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `true`: encrypt this new value before storing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    /// `true` on reads: a secret is stored here. Sent back with the mask, it keeps
    /// the stored secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Set by the server on stored entries only; never sent, never read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub key_version: Option<u32>,
}

impl ParamEntry {
    /// A new secret: `{ "value": value, "encrypt": true }`.
    pub fn secret(value: impl Into<String>) -> Self {
        Self {
            value: Some(value.into()),
            encrypt: Some(true),
            encrypted: None,
            key_version: None,
        }
    }

    /// A value that is not secret: `{ "value": value, "encrypt": false }`.
    pub fn plain(value: impl Into<String>) -> Self {
        Self {
            value: Some(value.into()),
            encrypt: Some(false),
            encrypted: None,
            key_version: None,
        }
    }

    /// A stored secret as every read shows it, and as an update sends it back to
    /// keep it: `{ "value": "********", "encrypted": true }`.
    pub fn masked() -> Self {
        Self {
            value: Some(MASK.to_owned()),
            encrypt: None,
            encrypted: Some(true),
            key_version: None,
        }
    }

    /// Whether this is the read-back form of a secret.
    pub fn is_masked(&self) -> bool {
        *self == Self::masked()
    }
}

impl std::fmt::Debug for ParamEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamEntry")
            .field("value", &self.value.as_ref().map(|_| MASK))
            .field("encrypt", &self.encrypt)
            .field("encrypted", &self.encrypted)
            .field("key_version", &self.key_version)
            .finish()
    }
}

/// How a failed compute call is retried: `maxAttempts` calls in all, waiting
/// `backoffMs × multiplier^(n-1)` before call n+1.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// Calls in all, 1 to 100.
    pub max_attempts: u32,
    /// Wait before the first retry, in milliseconds (at most an hour).
    #[serde(default)]
    pub backoff_ms: u64,
    /// Growth of the wait per retry, 1 to 10.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
}

fn default_multiplier() -> f64 {
    1.0
}

/// An approval step: the run waits until someone approves or rejects, or the
/// timeout passes. Its output is `{ approved, decidedBy, comment, decidedAt }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalStep {
    /// Unique in the orchestration; omit it and the server assigns one (`approval`,
    /// with `-2`, `-3`… when taken).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The step to go to next; default: the next one in `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    /// What the approver is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long to wait, in milliseconds (at most a year); default: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What a timeout means; default `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    /// What a rejection does; default `fail` (the run fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<OnReject>,
    /// Accepted only to refuse it with a precise message: secrets belong to compute
    /// steps. Its content is skipped while parsing, so no copy of a value is kept.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub encrypted_params: Option<IgnoredAny>,
}

/// What an approval's timeout means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnTimeout {
    /// As if rejected.
    Reject,
    /// As if approved.
    Approve,
}

/// What a rejection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnReject {
    /// The run fails.
    Fail,
    /// The run goes on to the next step; the step output says `approved: false`.
    Continue,
}

/// A decision step: the first case whose conditions all hold picks the next step;
/// none does, `defaultNextStepId`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionStep {
    /// Unique in the orchestration; omit it and the server assigns one (`decision`,
    /// with `-2`, `-3`… when taken).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Not used by decisions (cases choose); accepted for uniformity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    /// Checked in order.
    pub cases: Vec<Case>,
    /// Where to go when no case matches.
    pub default_next_step_id: String,
    /// See [`ApprovalStep::encrypted_params`].
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub encrypted_params: Option<IgnoredAny>,
}

/// One branch of a decision: all conditions must hold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// ANDed; at least one.
    pub conditions: Vec<Condition>,
    /// Where this branch goes.
    pub next_step_id: String,
}

/// `path operator value` over the run context, e.g. `steps.evaluate.output.decision eq "approve"`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// A dotted path: `input.x`, `steps.<id>.output.y`, `steps.<id>.status`.
    pub path: String,
    /// How to compare.
    pub operator: Operator,
    /// What to compare with; an array for `in` and `notIn`, absent for `exists` and `notExists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// Comparison operators of a [`Condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    /// Equal (JSON equality).
    Eq,
    /// Not equal.
    Neq,
    /// Greater than (numbers, or strings by byte order).
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// The path exists.
    Exists,
    /// The path does not exist.
    NotExists,
    /// The value at the path is one of the array's items.
    In,
    /// It is none of them.
    NotIn,
}

/// A delay step: a durable timer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelayStep {
    /// Unique in the orchestration; omit it and the server assigns one (`delay`,
    /// with `-2`, `-3`… when taken).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The step to go to next; default: the next one in `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_id: Option<String>,
    /// How long to wait, in milliseconds (at most a year).
    pub delay_ms: u64,
    /// See [`ApprovalStep::encrypted_params`].
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub encrypted_params: Option<IgnoredAny>,
}

impl Step {
    /// The step's id; empty until the server assigns one.
    pub fn id(&self) -> &str {
        match self {
            Step::Compute(s) => &s.id,
            Step::Approval(s) => &s.id,
            Step::Decision(s) => &s.id,
            Step::Delay(s) => &s.id,
        }
    }

    /// The id, to assign one.
    pub fn id_mut(&mut self) -> &mut String {
        match self {
            Step::Compute(s) => &mut s.id,
            Step::Approval(s) => &mut s.id,
            Step::Decision(s) => &mut s.id,
            Step::Delay(s) => &mut s.id,
        }
    }

    /// Which kind of step this is.
    pub fn kind(&self) -> StepType {
        match self {
            Step::Compute(_) => StepType::Compute,
            Step::Approval(_) => StepType::Approval,
            Step::Decision(_) => StepType::Decision,
            Step::Delay(_) => StepType::Delay,
        }
    }

    /// The explicit next step, if any.
    pub fn next_step_id(&self) -> Option<&str> {
        match self {
            Step::Compute(s) => s.next_step_id.as_deref(),
            Step::Approval(s) => s.next_step_id.as_deref(),
            Step::Decision(s) => s.next_step_id.as_deref(),
            Step::Delay(s) => s.next_step_id.as_deref(),
        }
    }

    /// Whether a non-compute step was sent `encryptedParams`, to refuse it.
    pub fn misplaced_encrypted_params(&self) -> bool {
        match self {
            Step::Compute(_) => false,
            Step::Approval(s) => s.encrypted_params.is_some(),
            Step::Decision(s) => s.encrypted_params.is_some(),
            Step::Delay(s) => s.encrypted_params.is_some(),
        }
    }
}

// The typed builder: `Definition::new("Provision repo").step(ComputeStep::new("fn")…)`.

impl Definition {
    /// An empty definition named `name`; add steps with [`Definition::step`].
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            steps: Vec::new(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Appends a step.
    pub fn step(mut self, step: impl Into<Step>) -> Self {
        self.steps.push(step.into());
        self
    }
}

impl ComputeStep {
    /// A step calling `function_id`, with a server-assigned id.
    pub fn new(function_id: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            name: None,
            next_step_id: None,
            function_id: function_id.into(),
            params: None,
            encrypted_params: None,
            timeout_ms: None,
            retry: None,
        }
    }

    /// Sets the step id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Adds a plain param (may be a `{{ path }}` template).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params
            .get_or_insert_default()
            .insert(name.into(), value.into());
        self
    }

    /// Adds a new secret, encrypted before it is stored.
    pub fn secret(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.encrypted_param(name, ParamEntry::secret(value))
    }

    /// Keeps the stored secret `name` on update (sends the masked entry back).
    pub fn keep_secret(self, name: impl Into<String>) -> Self {
        self.encrypted_param(name, ParamEntry::masked())
    }

    /// Adds an `encryptedParams` entry in any form.
    pub fn encrypted_param(mut self, name: impl Into<String>, entry: ParamEntry) -> Self {
        self.encrypted_params
            .get_or_insert_default()
            .insert(name.into(), entry);
        self
    }

    /// Sets the step's call deadline.
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// Retries a failed call up to `max_attempts` calls in all.
    pub fn retry(mut self, max_attempts: u32, backoff_ms: u64, multiplier: f64) -> Self {
        self.retry = Some(Retry {
            max_attempts,
            backoff_ms,
            multiplier,
        });
        self
    }

    /// Goes to `next` after this step.
    pub fn then(mut self, next: impl Into<String>) -> Self {
        self.next_step_id = Some(next.into());
        self
    }
}

impl ApprovalStep {
    /// An approval asking `message`, with a server-assigned id.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            name: None,
            next_step_id: None,
            message: Some(message.into()),
            timeout_ms: None,
            on_timeout: None,
            on_reject: None,
            encrypted_params: None,
        }
    }

    /// Sets the step id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Waits at most `timeout_ms`, then decides as `on_timeout` says.
    pub fn timeout(mut self, timeout_ms: u64, on_timeout: OnTimeout) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self.on_timeout = Some(on_timeout);
        self
    }

    /// What a rejection does.
    pub fn on_reject(mut self, on_reject: OnReject) -> Self {
        self.on_reject = Some(on_reject);
        self
    }
}

impl DelayStep {
    /// A timer of `delay_ms`, with a server-assigned id.
    pub fn new(delay_ms: u64) -> Self {
        Self {
            id: String::new(),
            name: None,
            next_step_id: None,
            delay_ms,
            encrypted_params: None,
        }
    }

    /// Sets the step id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
}

impl From<ComputeStep> for Step {
    fn from(step: ComputeStep) -> Self {
        Step::Compute(step)
    }
}

impl From<ApprovalStep> for Step {
    fn from(step: ApprovalStep) -> Self {
        Step::Approval(step)
    }
}

impl From<DecisionStep> for Step {
    fn from(step: DecisionStep) -> Self {
        Step::Decision(step)
    }
}

impl From<DelayStep> for Step {
    fn from(step: DelayStep) -> Self {
        Step::Delay(step)
    }
}

impl std::fmt::Display for StepType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
