//! The sealing rules: the `encryptedParams` rules of docs/architecture.md#secrets
//! (listed one by one in docs/secrets.md#updating), turning what a client sends into
//! what is stored (encrypting new secrets, keeping stored ones, refusing blobs), and
//! what is stored into what anyone reads (masked). The orchestrations service applies
//! them on every save and every read.

use super::{Binding, Keyring, MASK, seal};
use crate::orchestrations::model::{Definition, ParamEntry, Step};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidParam(pub String);

/// Applies the save rules to every compute step of `sent`, in place, so that it holds
/// only stored-form entries. `previous` is the stored definition being replaced (on
/// update); `encrypted: true` entries take their blob from it, by step id and name.
pub fn seal_sent(
    sent: &mut Definition,
    previous: Option<&Definition>,
    orchestration_id: &str,
    keyring: &Keyring,
) -> Result<(), InvalidParam> {
    for step in &mut sent.steps {
        let Step::Compute(compute) = step else { continue };
        let step_id = compute.id.clone();
        let function_id = compute.function_id.clone();
        for (name, entry) in compute.encrypted_params.iter_mut().flatten() {
            let binding = Binding {
                orchestration_id,
                step_id: &step_id,
                param: name,
            };
            *entry = stored_entry(entry, &binding, &function_id, previous, keyring)?;
        }
    }
    Ok(())
}

/// `function_id` is the function the step calls in `sent`: a stored secret is kept
/// only for the function it was given to. Whoever may point a step elsewhere could
/// otherwise have any function (`digest`, one of their own) receive it.
fn stored_entry(
    sent: &ParamEntry,
    binding: &Binding,
    function_id: &str,
    previous: Option<&Definition>,
    keyring: &Keyring,
) -> Result<ParamEntry, InvalidParam> {
    let (step, name) = (binding.step_id, binding.param);
    let refuse = |why: &str| {
        Err(InvalidParam(format!(
            "step `{step}`: encryptedParams `{name}`: {why}"
        )))
    };
    if sent.key_version.is_some() {
        return refuse("keyVersion is set by the server, never sent");
    }
    match (sent.encrypt, sent.encrypted, sent.value.as_deref()) {
        (Some(_), Some(_), _) => {
            refuse("send either `encrypt` (a new value) or `encrypted` (keep the stored one), not both")
        }
        // Keep what is stored. A client can never supply a blob, so the value sent
        // must be the mask (or absent).
        (None, Some(true), None | Some(MASK)) => match stored_secret(previous, step, name) {
            Some((kept_for, _)) if kept_for != function_id => refuse(
                "the step now calls another function, and a stored secret is kept only for the function it was given to; send the value again with `encrypt: true`",
            ),
            Some((_, stored)) => Ok(stored.clone()),
            None => refuse(
                "`encrypted: true` keeps a stored secret, but none is stored for this step and name; send the value with `encrypt: true`",
            ),
        },
        (None, Some(true), Some(_)) => refuse(
            "`encrypted: true` only keeps the stored secret: send `\"value\": \"********\"` with it, or a new value with `encrypt: true`",
        ),
        (_, _, None) => refuse("a value is required"),
        (Some(true), None, Some(MASK)) => refuse(
            "the mask `********` is not a secret; send the real value, or `encrypted: true` to keep the stored one",
        ),
        (Some(true), None, Some(plaintext)) => {
            let (blob, key_version) = seal(keyring, binding, plaintext);
            Ok(ParamEntry {
                value: Some(blob),
                encrypt: None,
                encrypted: Some(true),
                key_version: Some(key_version),
            })
        }
        // `encrypt: false`, `encrypted: false` or neither: not a secret, stored plain.
        (Some(false) | None, Some(false) | None, Some(plain)) => Ok(ParamEntry {
            value: Some(plain.to_owned()),
            encrypt: None,
            encrypted: Some(false),
            key_version: None,
        }),
    }
}

/// The secret stored for step `step` under `name`, if the previous definition has one,
/// with the function that step called.
fn stored_secret<'a>(
    previous: Option<&'a Definition>,
    step: &str,
    name: &str,
) -> Option<(&'a str, &'a ParamEntry)> {
    previous?
        .steps
        .iter()
        .find_map(|candidate| match candidate {
            Step::Compute(compute) if compute.id == step => compute
                .encrypted_params
                .as_ref()?
                .get(name)
                .map(|entry| (compute.function_id.as_str(), entry)),
            _ => None,
        })
        .filter(|(_, entry)| entry.encrypted == Some(true))
}

/// The read-back form of a stored definition: every secret is `{ "value": "********",
/// "encrypted": true }`, with no blob, no key version and no length.
pub fn mask(definition: &mut Definition) {
    for step in &mut definition.steps {
        let Step::Compute(compute) = step else { continue };
        for entry in compute
            .encrypted_params
            .iter_mut()
            .flatten()
            .map(|(_, entry)| entry)
        {
            if entry.encrypted == Some(true) {
                *entry = ParamEntry {
                    value: Some(MASK.to_owned()),
                    encrypt: None,
                    encrypted: Some(true),
                    key_version: None,
                };
            }
        }
    }
}

/// The key version of every secret in a stored definition, one item per secret.
pub fn key_versions(definition: &Definition) -> impl Iterator<Item = u32> + '_ {
    definition.steps.iter().flat_map(|step| match step {
        Step::Compute(compute) => compute
            .encrypted_params
            .iter()
            .flatten()
            .filter_map(|(_, entry)| entry.key_version)
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keyring() -> Keyring {
        Keyring::from_json(&Keyring::generate_json()).expect("a keyring")
    }

    fn definition(encrypted_params: serde_json::Value) -> Definition {
        serde_json::from_value(json!({ "name": "t", "steps": [
            { "id": "provision", "type": "compute", "functionId": "f", "encryptedParams": encrypted_params }
        ]}))
        .expect("a definition")
    }

    fn entry(definition: &Definition, name: &str) -> ParamEntry {
        let Step::Compute(compute) = &definition.steps[0] else {
            panic!("compute")
        };
        compute.encrypted_params.as_ref().expect("params")[name].clone()
    }

    #[test]
    fn every_save_rule() {
        let keyring = keyring();
        let mut first = definition(json!({
            "SECRET": { "value": "s3cr3t-value", "encrypt": true },
            "PLAIN": { "value": "visible", "encrypt": false },
            "BARE": { "value": "also visible" },
        }));
        seal_sent(&mut first, None, "orch-1", &keyring).expect("create");
        let secret = entry(&first, "SECRET");
        assert_eq!(
            (secret.encrypted, secret.key_version),
            (Some(true), Some(keyring.current_version()))
        );
        assert!(!secret.value.as_deref().expect("blob").contains("s3cr3t"));
        assert_eq!(entry(&first, "PLAIN").value.as_deref(), Some("visible"));
        assert_eq!(entry(&first, "BARE").encrypted, Some(false));

        // As read back, then sent again: the stored blob is kept, byte for byte; the
        // omitted PLAIN and BARE are removed.
        let mut update = definition(json!({ "SECRET": { "value": "********", "encrypted": true } }));
        seal_sent(&mut update, Some(&first), "orch-1", &keyring).expect("update");
        assert_eq!(entry(&update, "SECRET").value, secret.value);
        let Step::Compute(compute) = &update.steps[0] else {
            panic!()
        };
        assert_eq!(compute.encrypted_params.as_ref().expect("params").len(), 1);

        let refused = [
            json!({ "NEW": { "value": "********", "encrypted": true } }),
            json!({ "SECRET": { "value": "********", "encrypt": true } }),
            json!({ "SECRET": { "value": "iv:ct:tag", "encrypted": true } }),
            json!({ "SECRET": { "value": "x", "encrypt": true, "encrypted": true } }),
            json!({ "SECRET": { "value": "x", "encrypt": true, "keyVersion": 1 } }),
            json!({ "SECRET": { "encrypt": true } }),
        ];
        for sent in refused {
            let mut update = definition(sent.clone());
            let error =
                seal_sent(&mut update, Some(&first), "orch-1", &keyring).expect_err(&sent.to_string());
            assert!(error.0.contains("step `provision`"), "{}", error.0);
        }
    }

    #[test]
    fn a_stored_secret_is_only_kept_for_the_same_step_and_name() {
        let keyring = keyring();
        let mut first = definition(json!({ "A": { "value": "secret-a", "encrypt": true } }));
        seal_sent(&mut first, None, "o", &keyring).expect("create");
        let mut renamed = definition(json!({ "B": { "value": "********", "encrypted": true } }));
        assert!(seal_sent(&mut renamed, Some(&first), "o", &keyring).is_err());
    }

    #[test]
    fn a_stored_secret_is_kept_only_while_the_step_calls_the_same_function() {
        let keyring = keyring();
        let mut first = definition(json!({ "A": { "value": "secret-a", "encrypt": true } }));
        seal_sent(&mut first, None, "o", &keyring).expect("create");
        let kept = json!({ "A": { "value": "********", "encrypted": true } });

        let mut repointed = definition(kept.clone());
        let Step::Compute(compute) = &mut repointed.steps[0] else {
            panic!("compute")
        };
        compute.function_id = "digest".into();
        let error = seal_sent(&mut repointed, Some(&first), "o", &keyring).expect_err("another function");
        assert!(
            error
                .0
                .starts_with("step `provision`: encryptedParams `A`: the step now calls another function"),
            "{}",
            error.0
        );

        // A new value for the new function is fine; the same function keeps the blob.
        let mut reentered = definition(json!({ "A": { "value": "secret-a", "encrypt": true } }));
        let Step::Compute(compute) = &mut reentered.steps[0] else {
            panic!("compute")
        };
        compute.function_id = "digest".into();
        seal_sent(&mut reentered, Some(&first), "o", &keyring).expect("entered again");
        let mut same = definition(kept);
        seal_sent(&mut same, Some(&first), "o", &keyring).expect("the same function");
        assert_eq!(entry(&same, "A").value, entry(&first, "A").value);
    }

    #[test]
    fn masking_hides_blob_and_key_version() {
        let keyring = keyring();
        let mut stored =
            definition(json!({ "A": { "value": "secret-a", "encrypt": true }, "P": { "value": "p" } }));
        seal_sent(&mut stored, None, "o", &keyring).expect("create");
        mask(&mut stored);
        let text = serde_json::to_value(&stored).expect("json");
        assert_eq!(
            text["steps"][0]["encryptedParams"]["A"],
            json!({ "value": "********", "encrypted": true })
        );
        assert_eq!(
            text["steps"][0]["encryptedParams"]["P"],
            json!({ "value": "p", "encrypted": false })
        );
    }

    #[test]
    fn two_saves_of_one_value_differ() {
        let keyring = keyring();
        let mut a = definition(json!({ "A": { "value": "same", "encrypt": true } }));
        let mut b = definition(json!({ "A": { "value": "same", "encrypt": true } }));
        seal_sent(&mut a, None, "o", &keyring).expect("a");
        seal_sent(&mut b, None, "o", &keyring).expect("b");
        assert_ne!(entry(&a, "A").value, entry(&b, "A").value);
    }
}
