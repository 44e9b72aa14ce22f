//! `{{ path }}` templates in a compute step's `params`
//! (docs/architecture.md#orchestration-model), resolved against the [`RunContext`] just
//! before the step runs.
//!
//! - A string that is exactly `"{{ path }}"` (spaces inside the braces optional) becomes
//!   the JSON value at that path, keeping its type: object, array, number, bool, null.
//! - Any other `{{ path }}` inside a string is interpolated as text: a string as is,
//!   anything else as its compact JSON (`42`, `true`, `null`, `{"a":1}`).
//! - Templates are found in strings at any depth of objects and arrays; keys are never
//!   templates.
//! - A path that does not resolve is an error ([`TemplateError::Missing`]), not `null`:
//!   a param that silently became `null` or `""` (a token, a URL) would run the function
//!   with a wrong input, and the step's failure is easier to act on than its output.
//! - A `{{` with no `}}` after it is left as is.
//! - `\{{` is a literal `{{` (the backslash is dropped), so params can carry text in
//!   other template languages: `"\{{ name }}"` resolves to `"{{ name }}"`. A backslash
//!   anywhere else is kept; there is no way to write a backslash right before a template.
//! - All of one step's resolved param values together may be at most
//!   [`MAX_STEP_PARAMS_BYTES`] as compact JSON, counted while they are built.

use super::context::RunContext;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The most all of one step's resolved params may add up to, as compact JSON text
/// (their values; the top-level names are not counted). A template can copy the whole
/// run input or a step output (each capped at 1 MiB by the engine) and can repeat it,
/// in one param or in many (a 1 MiB definition holds tens of thousands of
/// `"{{ input }}"` params): without one budget per step a step could make a node hold
/// gigabytes. 3 MiB lets the whole input and one whole output through once, with a
/// definition's worth (1 MiB) of literal text around them.
pub const MAX_STEP_PARAMS_BYTES: usize = 3 << 20;

/// Why params could not be resolved. Messages name the param and path, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `param` is the top-level param name, followed by `.key` and `[index]` when the
    /// template sits deeper inside it.
    #[error("param `{param}`: template path `{path}` does not resolve in the run context")]
    Missing { param: String, path: String },
    /// `param` is where the step's budget ran out.
    #[error(
        "the step's params resolve to more than {MAX_STEP_PARAMS_BYTES} bytes of JSON (reached at param `{param}`)"
    )]
    TooLarge { param: String },
}

/// Resolves every template in `params`. See the module documentation for the rules.
pub fn resolve_params(
    params: &Map<String, Value>,
    ctx: &RunContext<'_>,
) -> Result<Map<String, Value>, TemplateError> {
    let mut budget = Budget { used: 0 };
    params
        .iter()
        .map(|(name, value)| match resolve(value, ctx, &mut budget) {
            Ok(resolved) => Ok((name.clone(), resolved)),
            Err(Problem::Missing { path, mut at }) => {
                at.insert_str(0, name);
                Err(TemplateError::Missing { param: at, path })
            }
            Err(Problem::TooLarge) => Err(TemplateError::TooLarge { param: name.clone() }),
        })
        .collect()
}

enum Problem {
    /// `at` is the location below the top-level param (`.key`, `[index]`), built while
    /// the recursion unwinds.
    Missing {
        path: String,
        at: String,
    },
    TooLarge,
}

impl Problem {
    fn under(mut self, segment: impl FnOnce() -> String) -> Self {
        if let Problem::Missing { at, .. } = &mut self {
            at.insert_str(0, &segment());
        }
        self
    }
}

/// Counts the compact JSON size of a step's params as they are built, so that params
/// that would grow past the cap stop before they are materialised.
struct Budget {
    used: usize,
}

impl Budget {
    fn charge(&mut self, bytes: usize) -> Result<(), Problem> {
        self.used = self.used.saturating_add(bytes);
        if self.used > MAX_STEP_PARAMS_BYTES {
            Err(Problem::TooLarge)
        } else {
            Ok(())
        }
    }

    fn remaining(&self) -> usize {
        MAX_STEP_PARAMS_BYTES.saturating_sub(self.used)
    }
}

fn resolve(value: &Value, ctx: &RunContext<'_>, budget: &mut Budget) -> Result<Value, Problem> {
    match value {
        Value::String(text) => resolve_string(text, ctx, budget),
        Value::Array(items) => {
            // `[`, `]` and the commas.
            budget.charge(1 + items.len().max(1))?;
            let mut resolved = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                resolved.push(resolve(item, ctx, budget).map_err(|p| p.under(|| format!("[{index}]")))?);
            }
            Ok(Value::Array(resolved))
        }
        Value::Object(map) => {
            // `{`, `}` and the commas; each key adds its JSON text and a `:`.
            budget.charge(1 + map.len().max(1))?;
            let mut resolved = Map::new();
            for (key, item) in map {
                budget.charge(json_len(key) + 1)?;
                let item = resolve(item, ctx, budget).map_err(|p| p.under(|| format!(".{key}")))?;
                resolved.insert(key.clone(), item);
            }
            Ok(Value::Object(resolved))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            budget.charge(json_len(value))?;
            Ok(value.clone())
        }
    }
}

fn resolve_string(text: &str, ctx: &RunContext<'_>, budget: &mut Budget) -> Result<Value, Problem> {
    if !text.contains("{{") {
        budget.charge(json_len(text))?;
        return Ok(Value::String(text.to_owned()));
    }
    if let Some(path) = exact_template(text) {
        let found = lookup(ctx, path)?;
        // Measured before the copy: a value over the cap is never cloned.
        budget.charge(json_len(&found))?;
        return Ok(found.into_owned());
    }
    let interpolated = interpolate(text, ctx, budget.remaining())?;
    budget.charge(json_len(&interpolated))?;
    Ok(Value::String(interpolated))
}

/// The path of a string that is one template and nothing else. `"{{ a }}{{ b }}"` is
/// two templates, so it is interpolated.
fn exact_template(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("}}")).then_some(inner)
}

fn lookup<'a>(ctx: &RunContext<'a>, path: &str) -> Result<std::borrow::Cow<'a, Value>, Problem> {
    ctx.lookup(path).ok_or_else(|| Problem::Missing {
        path: path.trim().to_owned(),
        at: String::new(),
    })
}

/// Builds the interpolated text, giving up as soon as it is longer than `limit` (its
/// JSON form is at least as long, so it could not fit).
fn interpolate(text: &str, ctx: &RunContext<'_>, limit: usize) -> Result<String, Problem> {
    let mut out = String::with_capacity(text.len().min(limit));
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let (before, from_open) = rest.split_at(open);
        let after_open = &from_open[2..];
        if let Some(literal) = before.strip_suffix('\\') {
            out.push_str(literal);
            out.push_str("{{");
            rest = after_open;
            continue;
        }
        out.push_str(before);
        let Some(close) = after_open.find("}}") else {
            // Unclosed: keep the braces and go on, so later escapes still apply.
            out.push_str("{{");
            rest = after_open;
            continue;
        };
        match &*lookup(ctx, &after_open[..close])? {
            Value::String(s) => out.push_str(s),
            // `Display` of a `Value` is its compact JSON and cannot fail into a `String`.
            other => {
                let _ = write!(out, "{other}");
            }
        }
        rest = &after_open[close + 2..];
        if out.len() > limit {
            return Err(Problem::TooLarge);
        }
    }
    out.push_str(rest);
    if out.len() > limit {
        return Err(Problem::TooLarge);
    }
    Ok(out)
}

/// Counts bytes instead of storing them.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of `value` as compact JSON, without building the text. Serialising a
/// `Value` into a writer that never fails cannot fail; were it to, the `MAX` counts as
/// over the cap.
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::context::tests::Fixture;
    use serde_json::json;

    fn fixture() -> Fixture {
        Fixture::new(json!({
            "repo": { "name": "trellis", "stars": 42 },
            "tags": ["a", "b"],
            "ratio": 0.5,
            "private": false,
            "owner": null,
            "token": "s3cr3t-do-not-print",
        }))
        .step(
            "evaluate",
            "completed",
            Some(json!({ "decision": "go", "score": 7 })),
        )
    }

    fn params(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("params are an object"),
        }
    }

    fn resolve_with(f: &Fixture, value: Value) -> Result<Value, TemplateError> {
        resolve_params(&params(value), &f.ctx()).map(Value::Object)
    }

    #[test]
    fn exact_templates_keep_the_json_type() {
        let f = fixture();
        let resolved = resolve_with(
            &f,
            json!({
                "object": "{{ input.repo }}",
                "array": "{{input.tags}}",
                "number": "{{ input.repo.stars }}",
                "float": "{{ input.ratio }}",
                "bool": "{{  input.private  }}",
                "null": "{{ input.owner }}",
                "string": "{{ steps.evaluate.output.decision }}",
                "status": "{{ steps.evaluate.status }}",
                "run": "{{ context.runId }}",
            }),
        )
        .unwrap();
        assert_eq!(
            resolved,
            json!({
                "object": { "name": "trellis", "stars": 42 },
                "array": ["a", "b"],
                "number": 42,
                "float": 0.5,
                "bool": false,
                "null": null,
                "string": "go",
                "status": "completed",
                "run": "run-1",
            })
        );
    }

    #[test]
    fn interpolation_renders_each_type_as_text() {
        let f = fixture();
        let resolved = resolve_with(
            &f,
            json!({
                "string": "repo={{ input.repo.name }}",
                "number": "stars={{ input.repo.stars }}, ratio={{input.ratio}}",
                "bool": "private={{ input.private }}",
                "null": "owner={{ input.owner }}",
                "object": "repo={{ input.repo }}",
                "array": "tags={{ input.tags }}",
                "context": "{{ context.orchestrationId }}/{{ context.runId }}",
            }),
        )
        .unwrap();
        assert_eq!(
            resolved,
            json!({
                "string": "repo=trellis",
                "number": "stars=42, ratio=0.5",
                "bool": "private=false",
                "null": "owner=null",
                "object": r#"repo={"name":"trellis","stars":42}"#,
                "array": r#"tags=["a","b"]"#,
                "context": "deploy/run-1",
            })
        );
    }

    #[test]
    fn several_templates_in_one_string_and_adjacent_templates() {
        let f = fixture();
        let resolved = resolve_with(
            &f,
            json!({
                "msg": "{{ input.repo.name }} scored {{ steps.evaluate.output.score }}: {{ steps.evaluate.output.decision }}!",
                "adjacent": "{{ input.repo.name }}{{ input.repo.stars }}",
                "padded": " {{ input.repo.stars }} ",
            }),
        )
        .unwrap();
        assert_eq!(
            resolved,
            json!({ "msg": "trellis scored 7: go!", "adjacent": "trellis42", "padded": " 42 " })
        );
    }

    #[test]
    fn templates_nested_in_objects_and_arrays() {
        let f = fixture();
        let resolved = resolve_with(
            &f,
            json!({
                "deploy": {
                    "targets": ["{{ input.repo.name }}", "static", 3, { "stars": "{{ input.repo.stars }}" }],
                    "meta": { "why": "decision {{ steps.evaluate.output.decision }}", "keep": null },
                },
                "{{ input.repo.name }}": "keys are not templates",
            }),
        )
        .unwrap();
        assert_eq!(
            resolved,
            json!({
                "deploy": {
                    "targets": ["trellis", "static", 3, { "stars": 42 }],
                    "meta": { "why": "decision go", "keep": null },
                },
                "{{ input.repo.name }}": "keys are not templates",
            })
        );
    }

    #[test]
    fn params_without_templates_are_unchanged() {
        let f = fixture();
        let sent = json!({ "a": 1, "b": [true, null, "x"], "c": { "d": "plain \\ text with } and {" } });
        assert_eq!(resolve_with(&f, sent.clone()).unwrap(), sent);
        assert_eq!(resolve_params(&Map::new(), &f.ctx()).unwrap(), Map::new());
    }

    #[test]
    fn a_missing_path_names_the_param_and_path_not_values() {
        let f = fixture();
        let err = resolve_with(&f, json!({ "token": "{{ input.tokn }}" })).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Missing {
                param: "token".into(),
                path: "input.tokn".into()
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("`token`") && message.contains("`input.tokn`"),
            "{message}"
        );

        // Interpolated, nested, and a step that has not run: the location is precise.
        let err = resolve_with(
            &f,
            json!({ "headers": { "list": ["ok", "Bearer {{ steps.login.output.token }}"] } }),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TemplateError::Missing {
                param: "headers.list[1]".into(),
                path: "steps.login.output.token".into()
            }
        );
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn unclosed_braces_are_left_alone() {
        let f = fixture();
        let resolved = resolve_with(
            &f,
            json!({
                "open": "{{ input.repo.name",
                "tail": "{{ input.repo.name }} and {{ more",
                "two": "{{ a {{ b",
                "single": "{ input.repo.name }",
                "closing": "}} {{",
            }),
        )
        .unwrap();
        assert_eq!(
            resolved,
            json!({
                "open": "{{ input.repo.name",
                "tail": "trellis and {{ more",
                "two": "{{ a {{ b",
                "single": "{ input.repo.name }",
                "closing": "}} {{",
            })
        );
    }

    #[test]
    fn escaped_braces_are_literal() {
        let f = fixture();
        let resolved = resolve_with(
            &f,
            json!({
                "whole": "\\{{ name }}",
                "mixed": "Hello \\{{ name }}, from {{ input.repo.name }}",
                "after_unclosed": "{{ x \\{{",
                "lone_backslash": "a\\b {{ input.repo.stars }}",
            }),
        )
        .unwrap();
        assert_eq!(
            resolved,
            json!({
                "whole": "{{ name }}",
                "mixed": "Hello {{ name }}, from trellis",
                "after_unclosed": "{{ x {{",
                "lone_backslash": "a\\b 42",
            })
        );
    }

    /// The accounting is exact, structure included: a param whose compact JSON is
    /// exactly the cap passes, one byte more fails.
    #[test]
    fn size_cap_is_exact_on_the_compact_json() {
        // `{"a":[` + `"x…x"` + `,1]}`: 6 + (n + 2) + 4 bytes.
        let shell = json!({ "a": ["{{ input.big }}", 1] });
        let fits = MAX_STEP_PARAMS_BYTES - 12;
        let f = Fixture::new(json!({ "big": "x".repeat(fits) }));
        let resolved = resolve_with(&f, json!({ "p": shell.clone() })).unwrap();
        assert_eq!(
            serde_json::to_string(&resolved["p"]).unwrap().len(),
            MAX_STEP_PARAMS_BYTES
        );

        let f = Fixture::new(json!({ "big": "x".repeat(fits + 1) }));
        assert_eq!(
            resolve_with(&f, json!({ "p": shell })).unwrap_err(),
            TemplateError::TooLarge { param: "p".into() }
        );
    }

    #[test]
    fn one_budget_covers_every_param_of_the_step() {
        let f = Fixture::new(json!({ "chunk": "y".repeat(900 * 1024) }));
        // Four copies of 900 KiB interpolated into one string exceed 3 MiB.
        let err = resolve_with(
            &f,
            json!({ "big": "{{ input.chunk }}-{{ input.chunk }}-{{ input.chunk }}-{{ input.chunk }}" }),
        )
        .unwrap_err();
        assert_eq!(err, TemplateError::TooLarge { param: "big".into() });
        assert!(err.to_string().contains("3145728"), "{err}");

        // So do the same four copies as separate params: the budget is the step's,
        // and it runs out at the fourth.
        let err = resolve_with(
            &f,
            json!({ "a": "{{ input.chunk }}", "b": "{{ input.chunk }}", "c": "{{ input.chunk }}", "d": "{{ input.chunk }}" }),
        )
        .unwrap_err();
        assert_eq!(err, TemplateError::TooLarge { param: "d".into() });

        // Three fit as params; four in one array do not.
        let three = json!({ "a": "{{ input.chunk }}", "b": "{{ input.chunk }}", "c": "{{ input.chunk }}" });
        assert_eq!(
            resolve_with(&f, three).unwrap().as_object().map(Map::len),
            Some(3)
        );
        let list = json!({ "list": ["{{ input.chunk }}", "{{ input.chunk }}", "{{ input.chunk }}", "{{ input.chunk }}"] });
        assert_eq!(
            resolve_with(&f, list).unwrap_err(),
            TemplateError::TooLarge { param: "list".into() }
        );
    }

    /// The fan-out that made a node hold gigabytes: a thousand params, each the whole
    /// input. It stops at the budget, having built at most about that much.
    #[test]
    fn a_thousand_copies_of_the_input_stop_at_the_budget() {
        let f = Fixture::new(json!({ "big": "z".repeat(1 << 20) }));
        let params: Map<String, Value> = (0..1000)
            .map(|n| (format!("p{n:04}"), json!("{{ input }}")))
            .collect();
        let err = resolve_with(&f, Value::Object(params)).unwrap_err();
        assert_eq!(
            err,
            TemplateError::TooLarge {
                param: "p0002".into()
            }
        );
    }

    #[test]
    fn json_escapes_count_toward_the_cap() {
        // Each `"` serialises as two bytes, so half the cap in quotes is over it.
        let f = Fixture::new(json!({ "quotes": "\"".repeat(MAX_STEP_PARAMS_BYTES / 2) }));
        assert_eq!(
            resolve_with(&f, json!({ "q": "{{ input.quotes }}" })).unwrap_err(),
            TemplateError::TooLarge { param: "q".into() }
        );
    }
}
