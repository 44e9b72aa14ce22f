//! The tool catalogue: each MCP tool is one REST operation, called through
//! `trellis-client`, so a tool applies exactly the API's rules (validation, masking,
//! the update semantics of secrets, error codes) and nothing of its own. Input and
//! output schemas are the JSON Schemas of the API's own types.

use rmcp::handler::server::tool::{schema_for_input, schema_for_output};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use trellis_client::{Client, Definition, MAX_WAIT_MS, RunFilter};
use trellis_types::{Function, InvokeResult, List, Orchestration, Run, StartedRun};

/// What every tool that takes or returns a definition needs to know.
const SECRETS: &str = "Compute steps may carry `encryptedParams`, secrets only that step receives (merged into its function's triggerParams, winning on key collisions). Send a new secret as `{ \"value\": \"…\", \"encrypt\": true }`: it is encrypted before it is stored. Every read shows it masked as `{ \"value\": \"********\", \"encrypted\": true }`; the value can never be read back.";

const UPDATE_RULES: &str = "This is a full replace (version + 1). Start from get_orchestration: send its `name`, `description` and `steps`, edited, and its `version` so a concurrent update is refused rather than overwritten. To keep a stored secret, send its masked entry `{ \"value\": \"********\", \"encrypted\": true }` back unchanged, on a step with the same `id` and the same `functionId` (pointing a step at another function needs its secrets entered again); omit an entry to remove that secret; send `{ \"value\": \"…\", \"encrypt\": true }` to replace it. Sending the mask with `encrypt: true` is refused: the mask is never a secret.";

const STEP_IDS: &str = "A step sent without `id` gets one from the server (its functionId, or its type, with -2, -3… when taken), returned in the result; ids are how secrets are kept on later updates and how runs name steps.";

/// How long `wait_run` holds without a `timeoutMs`: half the server's cap
/// ([`MAX_WAIT_MS`]), well inside the request timeouts MCP clients use.
const DEFAULT_WAIT_MS: u64 = 30_000;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ById {
    /// The orchestration's id (from create_orchestration or list_orchestrations).
    id: String,
}

/// `id` plus exactly the REST body (which may carry the `version` it was read at).
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)] // Only its schema is used: the body goes to the API as sent.
struct UpdateOrchestration {
    /// The orchestration's id.
    id: String,
    /// The `version` get_orchestration returned. Given, the update is refused with a
    /// `conflict` error if another update landed since: read again, then retry.
    #[serde(default)]
    version: Option<i64>,
    #[serde(flatten)]
    definition: Definition,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NoArguments {}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ByFunction {
    /// The functionId (from list_functions).
    function_id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Invoke {
    /// The functionId (from list_functions).
    function_id: String,
    /// The triggerParams object the function receives.
    #[serde(default)]
    params: Map<String, Value>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartRunArgs {
    /// The orchestration to run (its current version).
    orchestration_id: String,
    /// The run's input object; default `{}`.
    #[serde(default)]
    input: Option<Map<String, Value>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ByRun {
    /// The run's id (from start_run or list_runs).
    run_id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListRunsArgs {
    /// The orchestration whose runs to list.
    orchestration_id: String,
    /// Only runs in this status.
    #[serde(default)]
    status: Option<trellis_client::RunStatus>,
    /// How many, newest first (1 to 1000, default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WaitRun {
    /// The run's id.
    run_id: String,
    /// How long to wait at most, in milliseconds (default 30000, at most 60000).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DecideArgs {
    /// The run's id.
    run_id: String,
    /// The approval step's id (its status is `waiting`).
    step_id: String,
    /// Recorded in the step's output.
    #[serde(default)]
    comment: Option<String>,
}

/// What a delete returns (the REST route answers 204 with no body).
#[derive(Serialize, JsonSchema)]
struct Deleted {
    /// The deleted orchestration's id.
    id: String,
    /// Always `true`.
    deleted: bool,
}

/// How a tool behaves, for the client's confirmation prompts.
#[derive(Clone, Copy)]
enum Effect {
    /// Reads only.
    Read,
    /// Creates or changes something; `idempotent` when repeating it changes nothing more.
    Write { idempotent: bool },
    /// Removes or stops something.
    Destroy,
}

fn tool<In: JsonSchema + 'static, Out: JsonSchema + 'static>(
    name: &'static str,
    title: &'static str,
    description: String,
    effect: Effect,
    open_world: bool,
) -> Tool {
    let input: Arc<JsonObject> = schema_for_input::<In>().expect("tool arguments are objects");
    let annotations = match effect {
        Effect::Read => ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(true),
        Effect::Write { idempotent } => ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .idempotent(idempotent),
        Effect::Destroy => ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(true),
    }
    .open_world(open_world);
    Tool::new(name, description, input)
        .with_title(title)
        .with_raw_output_schema(schema_for_output::<Out>())
        .with_annotations(annotations)
}

/// Every tool, in the order `tools/list` shows them.
pub fn catalogue() -> Vec<Tool> {
    vec![
        tool::<Definition, Orchestration>(
            "create_orchestration",
            "Create an orchestration",
            format!(
                "Create an orchestration from exactly the REST body `{{ name, description?, steps }}`. Steps are `compute` (calls `functionId`; see list_functions), `approval` (waits for a person), `decision` (branches on the run context) or `delay`. {SECRETS} {STEP_IDS} Returns the stored definition, masked, with its `id` (used by start_run and update_orchestration)."
            ),
            Effect::Write { idempotent: false },
            false,
        ),
        tool::<UpdateOrchestration, Orchestration>(
            "update_orchestration",
            "Replace an orchestration",
            format!("Replace orchestration `id` with exactly the REST body `{{ name, description?, steps }}`. {UPDATE_RULES} {STEP_IDS} Runs already started keep the version they started with."),
            Effect::Write { idempotent: true },
            false,
        ),
        tool::<ById, Orchestration>(
            "get_orchestration",
            "Get an orchestration",
            format!("One orchestration's definition, masked, with its version. {SECRETS}"),
            Effect::Read,
            false,
        ),
        tool::<NoArguments, List<Orchestration>>(
            "list_orchestrations",
            "List orchestrations",
            "Every orchestration (`{ data: [...] }`), masked: secrets show as `{ \"value\": \"********\", \"encrypted\": true }`.".into(),
            Effect::Read,
            false,
        ),
        tool::<ById, Deleted>(
            "delete_orchestration",
            "Delete an orchestration",
            "Delete an orchestration and its stored secrets. Runs already started go on.".into(),
            Effect::Destroy,
            false,
        ),
        tool::<NoArguments, List<Function>>(
            "list_functions",
            "List functions",
            "Every uploaded function (`{ data: [...] }`): its `id` (the functionId compute steps name), version, sha256, size and settings (timeoutMs, memoryLimitMb, allowedHosts).".into(),
            Effect::Read,
            false,
        ),
        tool::<ByFunction, Function>(
            "get_function",
            "Get a function",
            "One function's record and settings.".into(),
            Effect::Read,
            false,
        ),
        tool::<Invoke, InvokeResult>(
            "invoke_function",
            "Invoke a function",
            "Call a function directly with `params` as its triggerParams and return its JSON `output`, its `logs` and `durationMs`. A function error comes back as a tool error with its code. The function may call the hosts its allowedHosts name.".into(),
            Effect::Write { idempotent: false },
            true,
        ),
        tool::<StartRunArgs, StartedRun>(
            "start_run",
            "Start a run",
            "Start a run of an orchestration's current version with `input` (an object every compute step receives under its params and secrets). Returns `{ id, status: \"pending\" }` at once; use wait_run to follow it.".into(),
            Effect::Write { idempotent: false },
            true,
        ),
        tool::<ByRun, Run>(
            "get_run",
            "Get a run",
            "A run with every step: status (pending, running, waiting, completed, failed, cancelled), each step's status, attempts, output and error. Outputs are redacted: any secret a function echoed shows as `********`.".into(),
            Effect::Read,
            false,
        ),
        tool::<ListRunsArgs, List<Run>>(
            "list_runs",
            "List runs",
            "An orchestration's runs, newest first, without their steps (`{ data: [...] }`), optionally only those in `status`.".into(),
            Effect::Read,
            false,
        ),
        tool::<WaitRun, Run>(
            "wait_run",
            "Wait for a run",
            "Hold until the run is no longer `pending` or `running` (it completed, failed, was cancelled, or waits on an approval step), up to `timeoutMs` (default 30000, at most 60000), then return it as get_run does. Use it instead of polling; call it again if the run is still running.".into(),
            Effect::Read,
            false,
        ),
        tool::<DecideArgs, Run>(
            "approve_step",
            "Approve a step",
            "Approve a waiting approval step of a run (its status is `waiting`; the run's status is `waiting` too). The run goes on; the step's output records who decided, when, and the comment.".into(),
            Effect::Write { idempotent: false },
            false,
        ),
        tool::<DecideArgs, Run>(
            "reject_step",
            "Reject a step",
            "Reject a waiting approval step. The run fails, or goes on if the step says `onReject: \"continue\"`.".into(),
            Effect::Destroy,
            false,
        ),
        tool::<ByRun, Run>(
            "cancel_run",
            "Cancel a run",
            "Cancel an unfinished run; its remaining steps are cancelled. A finished run cannot be cancelled.".into(),
            Effect::Destroy,
            false,
        ),
    ]
}

/// Why a call produced no result.
pub enum Failure {
    /// The arguments do not fit the tool's schema.
    Arguments(String),
    /// The API refused or failed; becomes a tool error with its code and message.
    Api(trellis_client::Error),
    /// No such tool.
    UnknownTool,
}

fn arguments<T: serde::de::DeserializeOwned>(arguments: JsonObject) -> Result<T, Failure> {
    serde_json::from_value(Value::Object(arguments))
        .map_err(|error| Failure::Arguments(crate::json::describe_error(&error)))
}

fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).expect("API types serialise")
}

/// Calls tool `name` with `args` against the API.
pub async fn call(client: &Client, name: &str, args: JsonObject) -> Result<Value, Failure> {
    let api = Failure::Api;
    Ok(match name {
        // The body goes to the API as sent, so its errors name the step and field.
        "create_orchestration" => to_value(client.create_orchestration(&args).await.map_err(api)?),
        "update_orchestration" => {
            let mut body = args;
            let id = match body.remove("id") {
                Some(Value::String(id)) => id,
                _ => return Err(Failure::Arguments("missing field `id` (a string)".into())),
            };
            to_value(client.update_orchestration(&id, &body).await.map_err(api)?)
        }
        "get_orchestration" => {
            let ById { id } = arguments(args)?;
            to_value(client.get_orchestration(&id).await.map_err(api)?)
        }
        "list_orchestrations" => {
            let NoArguments {} = arguments(args)?;
            to_value(List {
                data: client.list_orchestrations().await.map_err(api)?,
            })
        }
        "delete_orchestration" => {
            let ById { id } = arguments(args)?;
            client.delete_orchestration(&id).await.map_err(api)?;
            to_value(Deleted { id, deleted: true })
        }
        "list_functions" => {
            let NoArguments {} = arguments(args)?;
            to_value(List {
                data: client.list_functions().await.map_err(api)?,
            })
        }
        "get_function" => {
            let ByFunction { function_id } = arguments(args)?;
            to_value(client.get_function(&function_id).await.map_err(api)?)
        }
        "invoke_function" => {
            let Invoke { function_id, params } = arguments(args)?;
            let params = Value::Object(params);
            to_value(client.invoke_function(&function_id, &params).await.map_err(api)?)
        }
        "start_run" => {
            let StartRunArgs {
                orchestration_id,
                input,
            } = arguments(args)?;
            let input = input.map(Value::Object);
            to_value(
                client
                    .start_run(&orchestration_id, input.as_ref())
                    .await
                    .map_err(api)?,
            )
        }
        "get_run" => {
            let ByRun { run_id } = arguments(args)?;
            to_value(client.get_run(&run_id).await.map_err(api)?)
        }
        "list_runs" => {
            // Strict here, since a flattened `RunFilter` would let misspelt fields
            // through unnoticed.
            let ListRunsArgs {
                orchestration_id,
                status,
                limit,
            } = arguments(args)?;
            let filter = RunFilter { status, limit };
            to_value(List {
                data: client.list_runs(&orchestration_id, &filter).await.map_err(api)?,
            })
        }
        "wait_run" => {
            let WaitRun { run_id, timeout_ms } = arguments(args)?;
            let wait = Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS));
            to_value(client.wait_run(&run_id, wait).await.map_err(api)?)
        }
        "approve_step" | "reject_step" => {
            let DecideArgs {
                run_id,
                step_id,
                comment,
            } = arguments(args)?;
            let run = match name {
                "approve_step" => client.approve_step(&run_id, &step_id, comment.as_deref()).await,
                _ => client.reject_step(&run_id, &step_id, comment.as_deref()).await,
            };
            to_value(run.map_err(api)?)
        }
        "cancel_run" => {
            let ByRun { run_id } = arguments(args)?;
            to_value(client.cancel_run(&run_id).await.map_err(api)?)
        }
        _ => return Err(Failure::UnknownTool),
    })
}
