//! The run context that templates and decision paths read, and path lookup into it.
//!
//! A path is dot-separated: `input.repo.name`, `steps.evaluate.output.decision`,
//! `steps.evaluate.status`, `context.runId`. Array elements are numeric segments
//! (`input.items.0`) or, equivalently, brackets (`input.items[0]`, `input.m[1][2]`).
//! Surrounding whitespace is trimmed. The addressable roots are exactly those of
//! docs/architecture.md#orchestration-model: `input` and anything under it,
//! `steps.<id>.output` and anything under it, `steps.<id>.status`,
//! `context.orchestrationId` and `context.runId`.
//! Anything else (an unknown root, `steps.<id>` alone, a missing key, an index past
//! the end, malformed syntax) is `None`.

use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// What templates and decision paths read: `input` (the run's input),
/// `steps.<id>.output`, `steps.<id>.status`, `context.{orchestrationId, runId}`.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    pub input: &'a Value,
    /// The steps that have a state in this run, by step id.
    pub steps: &'a BTreeMap<String, StepState>,
    pub orchestration_id: &'a str,
    pub run_id: &'a str,
}

/// One step's state as the context sees it.
#[derive(Clone, Debug)]
pub struct StepState {
    pub status: String,
    /// `None` until the step has produced an output; `steps.<id>.output` is then missing.
    pub output: Option<Value>,
}

impl<'a> RunContext<'a> {
    /// The value at `path`, or `None` when it does not resolve.
    ///
    /// Values under `input` and `steps.<id>.output` are borrowed from the context, so a
    /// lookup allocates nothing; a status or a `context` field is a plain `&str` in the
    /// context and comes back as an owned JSON string. `Cow` carries both without a
    /// clone of the (possibly large) borrowed case.
    pub fn lookup(&self, path: &str) -> Option<Cow<'a, Value>> {
        let mut segments = Segments::new(path.trim());
        match segments.next()?.ok()? {
            "input" => descend(self.input, segments).map(Cow::Borrowed),
            "steps" => {
                let state = self.steps.get(segments.next()?.ok()?)?;
                match segments.next()?.ok()? {
                    "output" => descend(state.output.as_ref()?, segments).map(Cow::Borrowed),
                    "status" => leaf(segments, &state.status),
                    _ => None,
                }
            }
            "context" => match segments.next()?.ok()? {
                "orchestrationId" => leaf(segments, self.orchestration_id),
                "runId" => leaf(segments, self.run_id),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A string in the context is a leaf: a path that goes on below it does not resolve.
fn leaf<'a>(mut rest: Segments<'_>, text: &str) -> Option<Cow<'a, Value>> {
    match rest.next() {
        None => Some(Cow::Owned(Value::String(text.to_owned()))),
        Some(_) => None,
    }
}

fn descend<'v, 'p>(mut value: &'v Value, segments: Segments<'p>) -> Option<&'v Value> {
    for segment in segments {
        let segment = segment.ok()?;
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(index(segment)?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Canonical decimal indices only (`0`, `12`; not `01`, `+1` or `-1`), so that one
/// element has one spelling.
fn index(segment: &str) -> Option<usize> {
    let canonical = segment.bytes().all(|b| b.is_ascii_digit())
        && !segment.is_empty()
        && (segment == "0" || !segment.starts_with('0'));
    if canonical { segment.parse().ok() } else { None }
}

/// The path is malformed (empty segment, unclosed or non-numeric bracket, text right
/// after a bracket).
struct Malformed;

/// Splits `a.b[0][1].c` into `a`, `b`, `0`, `1`, `c` without allocating. Yields one
/// `Err(Malformed)` and stops at the first syntax error.
struct Segments<'p> {
    rest: &'p str,
    /// At the start, and after a `.`, a name must follow.
    expect_name: bool,
    done: bool,
}

impl<'p> Segments<'p> {
    fn new(path: &'p str) -> Self {
        Segments {
            rest: path,
            expect_name: true,
            done: false,
        }
    }

    fn fail(&mut self) -> Option<Result<&'p str, Malformed>> {
        self.done = true;
        Some(Err(Malformed))
    }
}

impl<'p> Iterator for Segments<'p> {
    type Item = Result<&'p str, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.rest.is_empty() {
            return if self.expect_name { self.fail() } else { None };
        }
        let segment;
        if self.expect_name {
            let end = self.rest.find(['.', '[']).unwrap_or(self.rest.len());
            if end == 0 {
                return self.fail();
            }
            (segment, self.rest) = self.rest.split_at(end);
        } else {
            // Not at a name and not at the end: the previous segment left us at a `[`.
            let Some(inner) = self.rest.strip_prefix('[') else {
                return self.fail();
            };
            let Some(close) = inner.find(']') else {
                return self.fail();
            };
            segment = &inner[..close];
            if index(segment).is_none() {
                return self.fail();
            }
            self.rest = &inner[close + 1..];
        }
        if let Some(after_dot) = self.rest.strip_prefix('.') {
            self.rest = after_dot;
            self.expect_name = true;
        } else {
            // End of path, or a `[` (checked on the next call).
            self.expect_name = false;
        }
        Some(Ok(segment))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Owns what a [`RunContext`] borrows.
    pub(crate) struct Fixture {
        pub input: Value,
        pub steps: BTreeMap<String, StepState>,
    }

    impl Fixture {
        pub(crate) fn new(input: Value) -> Self {
            Fixture {
                input,
                steps: BTreeMap::new(),
            }
        }

        pub(crate) fn step(mut self, id: &str, status: &str, output: Option<Value>) -> Self {
            self.steps.insert(
                id.to_owned(),
                StepState {
                    status: status.to_owned(),
                    output,
                },
            );
            self
        }

        pub(crate) fn ctx(&self) -> RunContext<'_> {
            RunContext {
                input: &self.input,
                steps: &self.steps,
                orchestration_id: "deploy",
                run_id: "run-1",
            }
        }
    }

    fn fixture() -> Fixture {
        Fixture::new(json!({
            "repo": { "name": "trellis", "stars": 42 },
            "items": [ "a", { "b": [10, 20] } ],
            "nothing": null,
            "0": "zero key",
        }))
        .step(
            "evaluate",
            "completed",
            Some(json!({ "decision": "go", "scores": [1.5, 2] })),
        )
        .step("approve", "waiting", None)
    }

    fn get(f: &Fixture, path: &str) -> Option<Value> {
        f.ctx().lookup(path).map(Cow::into_owned)
    }

    #[test]
    fn input_paths_resolve_nested_keys_and_whole_values() {
        let f = fixture();
        assert_eq!(get(&f, "input.repo.name"), Some(json!("trellis")));
        assert_eq!(
            get(&f, "input.repo"),
            Some(json!({ "name": "trellis", "stars": 42 }))
        );
        assert_eq!(get(&f, "input"), Some(f.input.clone()));
        assert_eq!(get(&f, "input.nothing"), Some(Value::Null));
        assert_eq!(get(&f, "  input.repo.stars \t"), Some(json!(42)));
    }

    #[test]
    fn array_indices_in_dot_and_bracket_form() {
        let f = fixture();
        assert_eq!(get(&f, "input.items.0"), Some(json!("a")));
        assert_eq!(get(&f, "input.items[0]"), Some(json!("a")));
        assert_eq!(get(&f, "input.items.1.b.1"), Some(json!(20)));
        assert_eq!(get(&f, "input.items[1].b[1]"), Some(json!(20)));
        assert_eq!(get(&f, "input.items[1]"), Some(json!({ "b": [10, 20] })));
        assert_eq!(get(&f, "steps.evaluate.output.scores[0]"), Some(json!(1.5)));
        // A numeric segment on an object is a key.
        assert_eq!(get(&f, "input.0"), Some(json!("zero key")));
        assert_eq!(get(&f, "input[0]"), Some(json!("zero key")));
    }

    #[test]
    fn out_of_range_and_non_canonical_indices_do_not_resolve() {
        let f = fixture();
        for path in [
            "input.items.2",
            "input.items[2]",
            "input.items.01",
            "input.items.+1",
            "input.items.-1",
        ] {
            assert_eq!(get(&f, path), None, "{path}");
        }
        assert_eq!(get(&f, "input.items.first"), None);
        assert_eq!(get(&f, "input.items[99999999999999999999999]"), None);
    }

    #[test]
    fn step_outputs_and_statuses() {
        let f = fixture();
        assert_eq!(get(&f, "steps.evaluate.output.decision"), Some(json!("go")));
        assert_eq!(
            get(&f, "steps.evaluate.output"),
            Some(json!({ "decision": "go", "scores": [1.5, 2] }))
        );
        assert_eq!(get(&f, "steps.evaluate.status"), Some(json!("completed")));
        assert_eq!(get(&f, "steps.approve.status"), Some(json!("waiting")));
        // No output yet, an unknown step, and the step object itself.
        assert_eq!(get(&f, "steps.approve.output"), None);
        assert_eq!(get(&f, "steps.ghost.status"), None);
        assert_eq!(get(&f, "steps.evaluate"), None);
        assert_eq!(get(&f, "steps"), None);
        assert_eq!(get(&f, "steps.evaluate.error"), None);
        assert_eq!(get(&f, "steps.evaluate.status.length"), None);
    }

    #[test]
    fn borrowed_values_are_not_copied() {
        let f = fixture();
        assert!(matches!(f.ctx().lookup("input.repo"), Some(Cow::Borrowed(_))));
        assert!(matches!(
            f.ctx().lookup("steps.evaluate.output"),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn context_fields() {
        let f = fixture();
        assert_eq!(get(&f, "context.runId"), Some(json!("run-1")));
        assert_eq!(get(&f, "context.orchestrationId"), Some(json!("deploy")));
        assert_eq!(get(&f, "context"), None);
        assert_eq!(get(&f, "context.stepId"), None);
        assert_eq!(get(&f, "context.runId.x"), None);
    }

    #[test]
    fn unknown_roots_missing_keys_and_descent_into_scalars() {
        let f = fixture();
        for path in [
            "secrets.token",
            "env.HOME",
            "Input.repo",
            "input.repo.owner",
            "input.repo.name.first",
        ] {
            assert_eq!(get(&f, path), None, "{path}");
        }
    }

    #[test]
    fn malformed_paths_do_not_resolve() {
        let f = fixture();
        for path in [
            "",
            "   ",
            ".input",
            "input.",
            "input..repo",
            "input.items[",
            "input.items[0",
            "input.items[]",
            "input.items[a]",
            "input.items[0]x",
            "input.items.[0]",
            "[0]",
        ] {
            assert_eq!(get(&f, path), None, "{path:?}");
        }
    }
}
