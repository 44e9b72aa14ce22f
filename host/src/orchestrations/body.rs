//! The create and update body as sent: parsed step by step, so a step that misses a
//! field or has one of the wrong type is named in the error (`steps[1]
//! (`provision`): missing field `functionId``), not reported as a JSON position.
//! Messages never quote a value: it could be a secret.

use super::model::{Definition, Step};
use super::validate::{InvalidDefinition, valid_step_id};
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
        assert_eq!(error(json!({ "steps": [] })), "missing field `name`");
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
    fn the_announcements_sdk_body_is_a_definition() {
        let parsed = definition(json!({ "name": "Provision Repo", "steps": [{ "type": "compute",
            "functionId": "fn-create-repo", "encryptedParams": { "API_KEY": { "value": "sk_live_...", "encrypt": true } } }] }))
        .expect("accepted");
        assert_eq!(parsed.steps[0].id(), "");
    }
}
