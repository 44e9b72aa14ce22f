//! The create and update body as sent: parsed step by step, so a step that misses a
//! field or has one of the wrong type is named in the error (`steps[1]
//! (`provision`): missing field `functionId``), not reported as a JSON position.
//! Messages never quote a value: it could be a secret.
//!
//! An update may send back what a read returned: its read-only fields are taken
//! out first (`id` must name the orchestration being updated, `version` must still
//! be current, `createdAt` and `updatedAt` are ignored), so "read, edit, send back"
//! works from every client.

use super::model::{Definition, Step};
use super::validate::{InvalidDefinition, check_step_count, valid_step_id};
use serde_json::Value;

/// The definition in `body`, or what is wrong with it.
pub fn definition(body: Value) -> Result<Definition, InvalidDefinition> {
    let Value::Object(mut fields) = body else {
        return Err(InvalidDefinition(
            "the body must be a JSON object: { name, description?, steps }".into(),
        ));
    };
    let steps = match fields.remove("steps") {
        Some(Value::Array(steps)) => steps,
        Some(_) => return Err(InvalidDefinition("steps must be an array of steps".into())),
        None => return Err(InvalidDefinition("missing field `steps`".into())),
    };
    // Before any step is parsed or named, so a huge list costs nothing.
    check_step_count(steps.len())?;
    let steps = steps
        .into_iter()
        .enumerate()
        .map(|(index, step)| {
            let label = label(index, &step);
            serde_json::from_value::<Step>(step).map_err(|error| {
                InvalidDefinition(format!("{label}: {}", crate::json::describe_error(&error)))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    fields.insert("steps".into(), Value::Array(Vec::new()));
    let mut definition: Definition = serde_json::from_value(Value::Object(fields))
        .map_err(|error| InvalidDefinition(crate::json::describe_error(&error)))?;
    definition.steps = steps;
    Ok(definition)
}

/// What an update sends: the definition, and the version it was read at, if given.
pub struct Update {
    pub definition: Definition,
    pub read_version: Option<i64>,
}

/// The update body for orchestration `id`, read-only fields taken out.
pub fn update(body: Value, id: &str) -> Result<Update, InvalidDefinition> {
    let Value::Object(mut fields) = body else {
        return definition(body).map(|definition| Update {
            definition,
            read_version: None,
        });
    };
    match fields.remove("id") {
        None => {}
        Some(Value::String(sent)) if sent == id => {}
        Some(_) => {
            return Err(InvalidDefinition(
                "`id` names another orchestration than the one being updated".into(),
            ));
        }
    }
    let read_version = match fields.remove("version") {
        None => None,
        Some(Value::Number(version)) if version.as_i64().is_some() => version.as_i64(),
        Some(_) => return Err(InvalidDefinition("`version` must be an integer".into())),
    };
    fields.remove("createdAt");
    fields.remove("updatedAt");
    Ok(Update {
        definition: definition(Value::Object(fields))?,
        read_version,
    })
}

/// `steps[i]`, with the step's id when it has a plain one.
fn label(index: usize, step: &Value) -> String {
    match step.get("id").and_then(Value::as_str) {
        Some(id) if valid_step_id(id) => format!("steps[{index}] (`{id}`)"),
        _ => format!("steps[{index}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(body: Value) -> String {
        definition(body).expect_err("invalid").0
    }

    #[test]
    fn a_missing_field_names_the_step_and_the_field() {
        let message = error(json!({ "name": "t", "steps": [
            { "type": "approval" },
            { "id": "provision", "type": "compute", "encryptedParams": {} },
        ]}));
        assert_eq!(message, "steps[1] (`provision`): missing field `functionId`");
        assert_eq!(
            error(json!({ "steps": [{ "type": "approval" }] })),
            "missing field `name`"
        );
        assert_eq!(
            error(json!({ "name": "t", "steps": [] })),
            "steps must hold 1 to 256 steps"
        );
        assert!(
            error(json!({ "name": "t", "steps": [{ "functionId": "f" }] }))
                .contains("steps[0]: missing field `type`")
        );
    }

    #[test]
    fn wrong_types_never_quote_the_value() {
        let message = error(json!({ "name": "t", "steps": [
            { "id": "p", "type": "compute", "functionId": "f", "timeoutMs": "sk_live_secret" },
        ]}));
        assert!(message.starts_with("steps[0] (`p`): invalid value"), "{message}");
        assert!(!message.contains("sk_live"), "{message}");
        let message = error(json!({ "name": "t", "steps": [{ "type": "sk_live_secret" }] }));
        assert!(!message.contains("sk_live"), "{message}");
    }

    #[test]
    fn an_update_may_send_back_what_was_read() {
        let read = json!({ "id": "o-1", "version": 3, "name": "t", "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z", "steps": [{ "id": "a", "type": "delay", "delayMs": 1 }] });
        let sent = update(read.clone(), "o-1").expect("accepted");
        assert_eq!((sent.read_version, sent.definition.steps.len()), (Some(3), 1));
        let error = update(read, "o-2").err().expect("another id");
        assert!(error.0.contains("another orchestration"), "{}", error.0);
    }

    #[test]
    fn the_announcements_sdk_body_is_a_definition() {
        let parsed = definition(json!({ "name": "Provision Repo", "steps": [{ "type": "compute",
            "functionId": "fn-create-repo", "encryptedParams": { "API_KEY": { "value": "sk_live_...", "encrypt": true } } }] }))
        .expect("accepted");
        assert_eq!(parsed.steps[0].id(), "");
    }
}
