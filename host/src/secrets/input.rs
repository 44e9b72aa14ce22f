//! Step input assembly, as the engine calls it for every compute step
//! ([`crate::engine::compute`]): a step's triggerParams are `input ⊕ resolved params
//! ⊕ decrypted encryptedParams`, a shallow merge where later wins, so encrypted
//! params take precedence on key collisions (as announced). Only the step's own
//! secrets are decrypted; the result is JSON text in a buffer zeroized on drop, with
//! a redactor for everything the function sends back.

use super::{Binding, Keyring, Redactor, SealError, SecretString, open};
use crate::orchestrations::model::{Definition, Step};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// What a compute step receives.
pub struct StepInput {
    /// The triggerParams object as JSON text. Holds plaintext secrets: zeroized on drop.
    pub params: Zeroizing<String>,
    /// Masks this step's decrypted values (and their encodings) in its output, logs
    /// and errors.
    pub redactor: Redactor,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("step `{0}` is not a compute step of this orchestration")]
    NotACompute(String),
    /// Names the step and param, never the blob or a value.
    #[error("step `{step}`: encryptedParams `{param}` could not be decrypted: {reason}")]
    Decrypt {
        step: String,
        param: String,
        reason: SealError,
    },
}

/// Builds the triggerParams of `step_id`. `input` is the run's input; `params` the
/// step's params with templates already resolved.
pub fn assemble(
    definition: &Definition,
    orchestration_id: &str,
    step_id: &str,
    input: &Map<String, Value>,
    params: &Map<String, Value>,
    keyring: &Keyring,
) -> Result<StepInput, InputError> {
    let compute = definition
        .steps
        .iter()
        .find_map(|step| match step {
            Step::Compute(compute) if compute.id == step_id => Some(compute),
            _ => None,
        })
        .ok_or_else(|| InputError::NotACompute(step_id.to_owned()))?;

    let mut merged = input.clone();
    merged.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut secrets: Vec<(&str, SecretString)> = Vec::new();
    for (name, entry) in compute.encrypted_params.iter().flatten() {
        let value = entry.value.as_deref().unwrap_or_default();
        match (entry.encrypted, entry.key_version) {
            (Some(true), Some(version)) => {
                let binding = Binding {
                    orchestration_id,
                    step_id,
                    param: name,
                };
                let secret =
                    open(keyring, &binding, version, value).map_err(|reason| InputError::Decrypt {
                        step: step_id.to_owned(),
                        param: name.clone(),
                        reason,
                    })?;
                merged.remove(name);
                secrets.push((name, secret));
            }
            // Plain entries are not secret, but they are encryptedParams: they win too.
            _ => {
                merged.insert(name.clone(), Value::String(value.to_owned()));
            }
        }
    }

    // The non-secret part is ordinary JSON; each secret is escaped straight into a
    // buffer sized up front (JSON escaping at most sextuples a byte), so it never
    // reallocates and leaves no unwiped copy of a secret behind in freed memory.
    let public = serde_json::to_string(&merged).unwrap_or_else(|_| "{}".to_owned());
    let capacity = public.len()
        + secrets
            .iter()
            .map(|(name, secret)| name.len() * 6 + secret.expose().len() * 6 + 8)
            .sum::<usize>();
    let mut text = Zeroizing::new(Vec::with_capacity(capacity));
    text.extend_from_slice(public.as_bytes());
    for (name, secret) in &secrets {
        text.pop(); // the closing brace
        if text.len() > 1 {
            text.push(b',');
        }
        // Writing into a Vec cannot fail, and a &str always serialises.
        let _ = serde_json::to_writer(&mut *text, name);
        text.push(b':');
        let _ = serde_json::to_writer(&mut *text, secret.expose());
        text.push(b'}');
    }
    debug_assert!(
        text.capacity() == capacity,
        "the buffer must not have reallocated"
    );
    // Valid UTF-8 by construction (JSON text); converting moves the buffer, no copy.
    let text = Zeroizing::new(String::from_utf8(std::mem::take(&mut *text)).unwrap_or_default());
    let redactor = Redactor::new(secrets.iter().map(|(_, secret)| secret));
    Ok(StepInput {
        params: text,
        redactor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::params::seal_sent;
    use serde_json::json;

    fn keyring() -> Keyring {
        Keyring::from_json(&Keyring::generate_json()).expect("a keyring")
    }

    /// The announcement's shape: evaluate → approval → provision, secrets on provision.
    fn stored(keyring: &Keyring) -> Definition {
        let mut definition: Definition = serde_json::from_value(json!({ "name": "Provision Repo", "steps": [
            { "id": "evaluate", "type": "compute", "functionId": "evaluate-request",
              "encryptedParams": { "EVAL_TOKEN": { "value": "eval-only-secret", "encrypt": true } } },
            { "id": "approve", "type": "approval" },
            { "id": "provision", "type": "compute", "functionId": "fn-create-github-repo",
              "params": { "org": "acme", "GITHUB_APP_ID": "from-params" },
              "encryptedParams": {
                  "GITHUB_PRIVATE_KEY": { "value": "-----BEGIN RSA \"quoted\"\nkey", "encrypt": true },
                  "GITHUB_APP_ID": { "value": "12345", "encrypt": true },
                  "REGION": { "value": "eu" }
              } }
        ]}))
        .expect("a definition");
        seal_sent(&mut definition, None, "orch-1", keyring).expect("sealed");
        definition
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn encrypted_params_win_over_params_which_win_over_input() {
        let keyring = keyring();
        let definition = stored(&keyring);
        let input = object(json!({ "GITHUB_APP_ID": "from-input", "org": "input-org", "name": "repo" }));
        let params = object(json!({ "org": "acme", "GITHUB_APP_ID": "from-params" }));
        let step =
            assemble(&definition, "orch-1", "provision", &input, &params, &keyring).expect("assembled");
        let received: Value = serde_json::from_str(&step.params).expect("JSON");
        assert_eq!(
            received,
            json!({ "name": "repo", "org": "acme", "GITHUB_APP_ID": "12345",
                    "GITHUB_PRIVATE_KEY": "-----BEGIN RSA \"quoted\"\nkey", "REGION": "eu" })
        );
        assert_eq!(step.redactor.redact_str("key is 12345"), "key is ********");
    }

    #[test]
    fn a_step_never_sees_another_steps_secrets() {
        let keyring = keyring();
        let definition = stored(&keyring);
        let evaluate = assemble(
            &definition,
            "orch-1",
            "evaluate",
            &Map::new(),
            &Map::new(),
            &keyring,
        )
        .expect("ok");
        assert!(!evaluate.params.contains("12345") && !evaluate.params.contains("BEGIN RSA"));
        assert!(evaluate.params.contains("eval-only-secret"));
        let provision = assemble(
            &definition,
            "orch-1",
            "provision",
            &Map::new(),
            &Map::new(),
            &keyring,
        )
        .expect("ok");
        assert!(!provision.params.contains("eval-only-secret"));
        // Approval steps have no input to assemble at all.
        assert!(matches!(
            assemble(
                &definition,
                "orch-1",
                "approve",
                &Map::new(),
                &Map::new(),
                &keyring
            ),
            Err(InputError::NotACompute(_))
        ));
    }

    #[test]
    fn another_steps_broken_secret_does_not_touch_this_step() {
        let keyring = keyring();
        let mut definition = stored(&keyring);
        if let Step::Compute(evaluate) = &mut definition.steps[0] {
            let entry = evaluate
                .encrypted_params
                .as_mut()
                .and_then(|p| p.get_mut("EVAL_TOKEN"))
                .expect("entry");
            entry.value = Some("AAAA:AAAA:AAAA".into());
        }
        let provision = assemble(
            &definition,
            "orch-1",
            "provision",
            &Map::new(),
            &Map::new(),
            &keyring,
        );
        assert!(provision.is_ok(), "provision decrypts only its own params");
        assert!(
            assemble(
                &definition,
                "orch-1",
                "evaluate",
                &Map::new(),
                &Map::new(),
                &keyring
            )
            .is_err()
        );
    }

    #[test]
    fn a_blob_bound_elsewhere_fails_naming_step_and_param_only() {
        let keyring = keyring();
        let definition = stored(&keyring);
        let error = assemble(
            &definition,
            "another-orchestration",
            "provision",
            &Map::new(),
            &Map::new(),
            &keyring,
        )
        .err()
        .expect("must not decrypt");
        let message = error.to_string();
        assert!(
            message.contains("step `provision`") && message.contains("encryptedParams `"),
            "{message}"
        );
        assert!(
            !message.contains("12345") && !message.contains("BEGIN"),
            "{message}"
        );
    }
}
