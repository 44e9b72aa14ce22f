//! The orchestration definition as sent, stored and read back: the API's own types
//! (`trellis-types`), so the server, the clients and the MCP tools share one schema.
//! What differs between the three is the form of each `encryptedParams` entry (see
//! [`ParamEntry`]), which the save rules turn from sent into stored form and masking
//! turns from stored into read-back form.

pub use trellis_types::{
    ApprovalStep, Case, ComputeStep, Condition, DecisionStep, Definition, DelayStep, OnReject, OnTimeout,
    Operator, Orchestration, ParamEntry, Retry, Step, StepType,
};
