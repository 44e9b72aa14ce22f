//! Ids for steps sent without one. An id must be stable (the same definition sent
//! again gets the same ids, so its kept secrets still match), unique in the
//! orchestration, and readable in run records and URLs: a compute step is named after
//! its function, any other step after its type, with `-2`, `-3`… when that is taken.
//! Ids the client chose are reserved first, so an assigned id never steals one.

use super::model::{Definition, Step};
use super::validate::MAX_STEP_ID_BYTES;
use std::collections::{HashMap, HashSet};

/// Gives every step with an empty id a readable, unique one, in step order. Each
/// base name remembers its next number, so many steps of one function cost one try
/// each.
pub fn assign(definition: &mut Definition) {
    let mut taken: HashSet<String> = definition
        .steps
        .iter()
        .map(|step| step.id().to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    let mut next: HashMap<String, u32> = HashMap::new();
    for step in &mut definition.steps {
        if !step.id().is_empty() {
            continue;
        }
        let base = base_name(step);
        let n = next.entry(base.clone()).or_insert(1);
        let id = loop {
            let id = candidate(&base, *n);
            *n += 1;
            if !taken.contains(&id) {
                break id;
            }
        };
        taken.insert(id.clone());
        *step.id_mut() = id;
    }
}

fn base_name(step: &Step) -> String {
    match step {
        // A valid functionId is already a valid step id; an invalid one is refused
        // by validation with its own message, so it only needs to be harmless here.
        Step::Compute(compute) if super::validate::valid_step_id(&compute.function_id) => {
            compute.function_id.clone()
        }
        _ => step.kind().as_str().to_owned(),
    }
}

/// `base` for the first, `base-n` after, cut so the whole stays a valid step id.
fn candidate(base: &str, n: u32) -> String {
    let suffix = if n == 1 { String::new() } else { format!("-{n}") };
    let room = MAX_STEP_ID_BYTES - suffix.len();
    format!("{}{suffix}", &base[..base.len().min(room)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(steps: serde_json::Value) -> Vec<String> {
        let mut definition: Definition =
            serde_json::from_value(json!({ "name": "t", "steps": steps })).expect("a definition");
        assign(&mut definition);
        definition.steps.iter().map(|step| step.id().to_owned()).collect()
    }

    #[test]
    fn readable_unique_and_respecting_chosen_ids() {
        let steps = json!([
            { "type": "compute", "functionId": "fn-create-repo" },
            { "type": "approval" },
            { "type": "compute", "functionId": "fn-create-repo" },
            { "id": "approval-2", "type": "delay", "delayMs": 1 },
            { "type": "approval" },
        ]);
        assert_eq!(
            ids(steps.clone()),
            [
                "fn-create-repo",
                "approval",
                "fn-create-repo-2",
                "approval-2",
                "approval-3"
            ]
        );
        // Stable: the same definition sent again gets the same ids.
        assert_eq!(ids(steps.clone()), ids(steps));
    }

    #[test]
    fn long_function_ids_stay_valid_step_ids() {
        let long = "f".repeat(63);
        let assigned = ids(json!([
            { "type": "compute", "functionId": long },
            { "type": "compute", "functionId": long },
        ]));
        assert!(
            assigned
                .iter()
                .all(|id| super::super::validate::valid_step_id(id)),
            "{assigned:?}"
        );
        assert_ne!(assigned[0], assigned[1]);
    }
}
