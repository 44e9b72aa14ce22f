//! Decision steps (docs/architecture.md#orchestration-model): cases in order, the
//! conditions of a case ANDed, the first matching case wins, else `defaultNextStepId`.
//!
//! Operator semantics (docs/orchestrations.md#decision states them for users):
//!
//! - **Equality** (`eq`, `neq`, `in`, `notIn`) is JSON equality in which numbers compare
//!   by value, so `1` equals `1.0`, also inside arrays and objects.
//! - **Order** (`gt`, `gte`, `lt`, `lte`) compares two numbers by value or two strings
//!   lexicographically by Unicode code point; any other pair (mixed types, bools,
//!   null, arrays, objects) is false for all four.
//! - **`exists`** is true when the path resolves to a value other than `null`; a JSON
//!   `null` counts as absent, so `exists` answers "is there something to use here".
//! - **A missing path** is false for every operator except the negations below.
//! - **Negations** are exact: `neq` is `!eq`, `notIn` is `!in`, `notExists` is `!exists`.
//!   So a missing path is `neq` anything and `notIn` any list.
//! - **`in`/`notIn`** test membership of the path's value in the condition's array.
//!   A non-array value (refused at save) makes `in` false and so `notIn` true.
//! - A condition without a `value` (refused at save for all operators but the
//!   `exists` pair) compares against `null`.

use super::context::RunContext;
use crate::orchestrations::model::{Condition, DecisionStep, Operator};
use serde_json::{Number, Value};
use std::cmp::Ordering;

/// The id of the step to run after `step`.
pub fn decide<'s>(step: &'s DecisionStep, ctx: &RunContext<'_>) -> &'s str {
    match matching_case(step, ctx) {
        Some(index) => &step.cases[index].next_step_id,
        None => &step.default_next_step_id,
    }
}

/// The index of the first case whose conditions all hold, for the executor to record
/// which branch was taken.
pub fn matching_case(step: &DecisionStep, ctx: &RunContext<'_>) -> Option<usize> {
    step.cases
        .iter()
        .position(|case| case.conditions.iter().all(|condition| holds(condition, ctx)))
}

/// Whether one condition holds in `ctx`.
pub fn holds(condition: &Condition, ctx: &RunContext<'_>) -> bool {
    static NULL: Value = Value::Null;
    let found = ctx.lookup(&condition.path);
    let actual = found.as_deref();
    let expected = condition.value.as_ref().unwrap_or(&NULL);
    // The negations are spelled as `!positive` so that they stay exact.
    let eq = || actual.is_some_and(|a| json_eq(a, expected));
    let exists = || actual.is_some_and(|a| !a.is_null());
    match condition.operator {
        Operator::Eq => eq(),
        Operator::Neq => !eq(),
        Operator::Gt => ordered(actual, expected, Ordering::is_gt),
        Operator::Gte => ordered(actual, expected, Ordering::is_ge),
        Operator::Lt => ordered(actual, expected, Ordering::is_lt),
        Operator::Lte => ordered(actual, expected, Ordering::is_le),
        Operator::Exists => exists(),
        Operator::NotExists => !exists(),
        Operator::In => is_in(actual, expected),
        Operator::NotIn => !is_in(actual, expected),
    }
}

fn is_in(actual: Option<&Value>, list: &Value) -> bool {
    match (actual, list) {
        (Some(a), Value::Array(items)) => items.iter().any(|item| json_eq(a, item)),
        _ => false,
    }
}

fn ordered(actual: Option<&Value>, expected: &Value, test: fn(Ordering) -> bool) -> bool {
    let ordering = match (actual, expected) {
        (Some(Value::Number(a)), Value::Number(b)) => compare_numbers(a, b),
        (Some(Value::String(a)), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    ordering.is_some_and(test)
}

/// JSON equality with numbers compared by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b) == Some(Ordering::Equal),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(key, a)| b.get(key).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

/// Integers compare exactly (an `f64` cannot tell 2^53 from 2^53 + 1); anything with a
/// fraction or exponent compares as `f64`.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    // Left: a float on either side, or a negative i64 against a u64 above i64::MAX,
    // which f64 orders correctly.
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::context::tests::Fixture;
    use crate::orchestrations::model::Case;
    use serde_json::json;

    fn fixture() -> Fixture {
        Fixture::new(json!({
            "count": 3,
            "ratio": 1.0,
            "name": "beta",
            "flag": true,
            "nothing": null,
            "tags": ["x", "y"],
            "obj": { "a": 1, "b": [1, 2] },
            "big": 9007199254740993u64,
            "huge": u64::MAX,
            "neg": -5,
        }))
        .step(
            "evaluate",
            "completed",
            Some(json!({ "decision": "approve", "score": 0.8 })),
        )
        .step("wait", "waiting", None)
    }

    fn cond(path: &str, operator: Operator, value: Option<Value>) -> Condition {
        Condition {
            path: path.into(),
            operator,
            value,
        }
    }

    fn check(f: &Fixture, path: &str, operator: Operator, value: Value) -> bool {
        holds(&cond(path, operator, Some(value)), &f.ctx())
    }

    use Operator::*;

    #[test]
    fn eq_and_neq() {
        let f = fixture();
        let cases: &[(&str, Value, bool)] = &[
            ("input.count", json!(3), true),
            ("input.count", json!(3.0), true),
            ("input.ratio", json!(1), true),
            ("input.count", json!(4), false),
            ("input.count", json!("3"), false),
            ("input.name", json!("beta"), true),
            ("input.name", json!("Beta"), false),
            ("input.flag", json!(true), true),
            ("input.flag", json!(1), false),
            ("input.nothing", json!(null), true),
            ("input.nothing", json!(false), false),
            ("input.tags", json!(["x", "y"]), true),
            ("input.tags", json!(["y", "x"]), false),
            ("input.obj", json!({ "b": [1.0, 2], "a": 1.0 }), true),
            ("input.obj", json!({ "a": 1 }), false),
            ("input.big", json!(9007199254740992u64), false),
            ("input.big", json!(9007199254740993u64), true),
            ("steps.evaluate.output.decision", json!("approve"), true),
            ("steps.evaluate.status", json!("completed"), true),
            ("steps.wait.status", json!("completed"), false),
            ("context.runId", json!("run-1"), true),
        ];
        for (path, value, expected) in cases {
            assert_eq!(check(&f, path, Eq, value.clone()), *expected, "{path} eq {value}");
            assert_eq!(
                check(&f, path, Neq, value.clone()),
                !*expected,
                "{path} neq {value}"
            );
        }
    }

    #[test]
    fn a_missing_path_equals_nothing_not_even_null() {
        let f = fixture();
        for path in ["input.ghost", "steps.wait.output", "steps.ghost.status", "bogus"] {
            assert!(!check(&f, path, Eq, json!(null)), "{path}");
            assert!(check(&f, path, Neq, json!(null)), "{path}");
            assert!(check(&f, path, Neq, json!("anything")), "{path}");
        }
    }

    #[test]
    fn order_compares_numbers_by_value_and_strings_lexicographically() {
        let f = fixture();
        let cases: &[(&str, Operator, Value, bool)] = &[
            ("input.count", Gt, json!(2), true),
            ("input.count", Gt, json!(3), false),
            ("input.count", Gt, json!(2.5), true),
            ("input.count", Gte, json!(3.0), true),
            ("input.count", Gte, json!(3.5), false),
            ("input.count", Lt, json!(10), true),
            ("input.count", Lt, json!(3), false),
            ("input.count", Lte, json!(3), true),
            ("input.count", Lte, json!(-1), false),
            ("input.neg", Lt, json!(0), true),
            ("input.neg", Lt, json!(u64::MAX), true),
            ("input.huge", Gt, json!(-1), true),
            ("input.huge", Gt, json!(u64::MAX - 1), true),
            ("input.big", Gt, json!(9007199254740992u64), true),
            ("steps.evaluate.output.score", Gte, json!(0.8), true),
            ("steps.evaluate.output.score", Gt, json!(0.8), false),
            ("input.name", Gt, json!("alpha"), true),
            ("input.name", Gt, json!("gamma"), false),
            ("input.name", Lt, json!("betas"), true),
            ("input.name", Lte, json!("beta"), true),
            ("input.name", Gte, json!("Beta"), true), // 'b' > 'B'
        ];
        for (path, op, value, expected) in cases {
            assert_eq!(
                check(&f, path, *op, value.clone()),
                *expected,
                "{path} {op:?} {value}"
            );
        }
    }

    #[test]
    fn order_is_false_for_mixed_or_unordered_types_and_missing_paths() {
        let f = fixture();
        let cases: &[(&str, Value)] = &[
            ("input.count", json!("2")),
            ("input.name", json!(1)),
            ("input.flag", json!(false)),
            ("input.nothing", json!(null)),
            ("input.nothing", json!(0)),
            ("input.tags", json!(["a"])),
            ("input.obj", json!({})),
            ("input.ghost", json!(0)),
        ];
        for (path, value) in cases {
            for op in [Gt, Gte, Lt, Lte] {
                assert!(!check(&f, path, op, value.clone()), "{path} {op:?} {value}");
            }
        }
    }

    #[test]
    fn exists_means_present_and_not_null() {
        let f = fixture();
        let ctx = f.ctx();
        for (path, exists) in [
            ("input.count", true),
            ("input.flag", true),
            ("input.tags.0", true),
            ("steps.evaluate.output", true),
            ("steps.wait.status", true),
            ("context.orchestrationId", true),
            ("input.nothing", false),
            ("input.ghost", false),
            ("input.tags.5", false),
            ("steps.wait.output", false),
            ("steps.ghost.status", false),
        ] {
            assert_eq!(holds(&cond(path, Exists, None), &ctx), exists, "{path} exists");
            assert_eq!(
                holds(&cond(path, NotExists, None), &ctx),
                !exists,
                "{path} notExists"
            );
        }
    }

    #[test]
    fn in_and_not_in() {
        let f = fixture();
        let cases: &[(&str, Value, bool)] = &[
            ("input.name", json!(["alpha", "beta"]), true),
            ("input.name", json!(["alpha", "gamma"]), false),
            ("input.name", json!([]), false),
            ("input.count", json!([1, 3.0]), true),
            ("input.count", json!(["3"]), false),
            ("input.nothing", json!([null]), true),
            ("input.tags", json!([["x", "y"], "z"]), true),
            ("input.tags", json!(["x", "y"]), false),
            (
                "steps.evaluate.output.decision",
                json!(["approve", "reject"]),
                true,
            ),
            ("input.ghost", json!([null]), false),
            // A non-array value, refused at save.
            ("input.name", json!("beta"), false),
        ];
        for (path, value, expected) in cases {
            assert_eq!(check(&f, path, In, value.clone()), *expected, "{path} in {value}");
            assert_eq!(
                check(&f, path, NotIn, value.clone()),
                !*expected,
                "{path} notIn {value}"
            );
        }
    }

    #[test]
    fn a_condition_without_value_compares_against_null() {
        let f = fixture();
        let ctx = f.ctx();
        assert!(holds(&cond("input.nothing", Eq, None), &ctx));
        assert!(!holds(&cond("input.count", Eq, None), &ctx));
        assert!(!holds(&cond("input.name", In, None), &ctx));
        assert!(holds(&cond("input.name", NotIn, None), &ctx));
    }

    fn step(cases: Vec<(Vec<Condition>, &str)>) -> DecisionStep {
        DecisionStep {
            id: "route".into(),
            name: None,
            next_step_id: None,
            cases: cases
                .into_iter()
                .map(|(conditions, next)| Case {
                    conditions,
                    next_step_id: next.into(),
                })
                .collect(),
            default_next_step_id: "fallback".into(),
            encrypted_params: None,
        }
    }

    #[test]
    fn first_matching_case_wins() {
        let f = fixture();
        let decision = step(vec![
            (vec![cond("input.count", Gt, Some(json!(10)))], "many"),
            (vec![cond("input.count", Gt, Some(json!(1)))], "some"),
            (vec![cond("input.count", Gt, Some(json!(0)))], "any"),
        ]);
        assert_eq!(decide(&decision, &f.ctx()), "some");
        assert_eq!(matching_case(&decision, &f.ctx()), Some(1));
    }

    #[test]
    fn conditions_in_a_case_are_anded() {
        let f = fixture();
        let decision = step(vec![
            (
                vec![
                    cond("steps.evaluate.output.decision", Eq, Some(json!("approve"))),
                    cond("input.count", Gt, Some(json!(5))),
                ],
                "both-not-met",
            ),
            (
                vec![
                    cond("steps.evaluate.output.decision", Eq, Some(json!("approve"))),
                    cond("steps.evaluate.status", Eq, Some(json!("completed"))),
                    cond("input.nothing", NotExists, None),
                ],
                "all-met",
            ),
        ]);
        assert_eq!(decide(&decision, &f.ctx()), "all-met");
    }

    #[test]
    fn default_when_no_case_matches_or_there_are_no_cases() {
        let f = fixture();
        let decision = step(vec![
            (vec![cond("input.ghost", Exists, None)], "ghost"),
            (vec![cond("input.name", Eq, Some(json!("alpha")))], "alpha"),
        ]);
        assert_eq!(decide(&decision, &f.ctx()), "fallback");
        assert_eq!(matching_case(&decision, &f.ctx()), None);
        assert_eq!(decide(&step(vec![]), &f.ctx()), "fallback");
    }

    #[test]
    fn a_decision_parsed_from_its_json_form() {
        let f = fixture();
        let decision: DecisionStep = serde_json::from_value(json!({
            "id": "route",
            "cases": [
                { "conditions": [{ "path": "input.tags[1]", "operator": "in", "value": ["y", "z"] },
                                 { "path": "steps.evaluate.output.score", "operator": "gte", "value": 0.5 }],
                  "nextStepId": "deploy" }
            ],
            "defaultNextStepId": "stop"
        }))
        .unwrap();
        assert_eq!(decide(&decision, &f.ctx()), "deploy");
    }
}
