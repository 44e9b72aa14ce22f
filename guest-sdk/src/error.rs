//! The error a function returns on purpose, and how JSON failures become one without
//! quoting the input that caused them.

use std::fmt;

use serde_json::error::Category;

/// A failure the function reports on purpose: the host answers `422` with `code`.
///
/// Anything a handler returns as `Err(e)` goes through `e.into()`, so a handler may use
/// its own error type as long as it converts into this one.
///
/// The message is shown to whoever called the function and is stored with the run, so it
/// must never contain a secret from the params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Machine-readable and `snake_case`, e.g. `repository_exists`.
    pub code: String,
    /// For humans.
    pub message: String,
    /// Whether calling again with the same params might succeed; an orchestration only
    /// retries a step whose error says so.
    pub retryable: bool,
}

impl Error {
    /// A permanent failure: retrying with the same params would fail the same way.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// A transient failure, such as an upstream that is down or rate limiting.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            ..Self::new(code, message)
        }
    }

    /// Params that parsed but make no sense, with code `invalid_params`: the same code the
    /// SDK uses when params do not deserialize into the handler's parameter type.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new("invalid_params", message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Code `invalid_json`, not retryable. The message says what was wrong and where, but
/// never quotes the offending value: params carry secrets.
impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::new("invalid_json", describe_json_error(&err))
    }
}

/// Describes a serde_json error without any text taken from the input.
///
/// serde_json's own `Display` quotes the value it choked on (`invalid type: string
/// "hunter2", expected u32`), and params carry decrypted secrets, so data errors are
/// rebuilt from their parts: the kind of mismatch and what the target type expected,
/// which both come from the program.
pub(crate) fn describe_json_error(err: &serde_json::Error) -> String {
    // serde_json appends the position to every error that has one, in exactly this form.
    let position = if err.line() == 0 {
        String::new()
    } else {
        format!(" at line {} column {}", err.line(), err.column())
    };
    match err.classify() {
        // Syntax and EOF messages come from a fixed list inside serde_json and never
        // quote the input.
        Category::Syntax | Category::Eof => err.to_string(),
        Category::Io => format!("I/O error{position}"),
        Category::Data => {
            let full = err.to_string();
            let message = full.strip_suffix(&position).unwrap_or(&full);
            format!("{}{position}", redact_data_message(message))
        }
    }
}

/// Keeps only the parts of a serde data error that come from the target type.
fn redact_data_message(message: &str) -> String {
    // Both name a field of the target type (a `&'static str` in serde), not input.
    if message.starts_with("missing field `") || message.starts_with("duplicate field `") {
        return message.to_owned();
    }
    // Each of these is followed by text quoting the input, then `, expected <what the
    // type wanted>` (or a fixed "there are no ..." tail). The quoted input may itself
    // contain ", expected ", so the last occurrence is the one serde wrote.
    const QUOTING_INPUT: [&str; 5] = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
    ];
    const FIXED_TAILS: [&str; 2] = [", there are no variants", ", there are no fields"];
    let Some(kind) = QUOTING_INPUT.iter().find(|kind| message.starts_with(*kind)) else {
        // A custom message from a hand-written Deserialize impl: it may say anything.
        return "data does not match the expected shape".to_owned();
    };
    if let Some(tail) = FIXED_TAILS.iter().find(|tail| message.ends_with(*tail)) {
        return format!("{kind}{tail}");
    }
    match message.rfind(", expected ") {
        Some(at) => format!("{kind}{}", &message[at..]),
        None => (*kind).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only deserialized")]
    struct Params {
        count: u32,
        mode: Mode,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    fn describe<T: for<'de> Deserialize<'de> + fmt::Debug>(json: &str) -> String {
        let err = serde_json::from_str::<T>(json).expect_err("input is invalid");
        describe_json_error(&err)
    }

    #[test]
    fn data_errors_name_the_expected_type_but_never_the_value() {
        let message = describe::<Params>(r#"{"count": "hunter2, expected x", "mode": "fast"}"#);
        assert_eq!(message, "invalid type, expected u32 at line 1 column 31");

        let message = describe::<Params>(r#"{"count": 1, "mode": "hunter2"}"#);
        assert_eq!(
            message,
            "unknown variant, expected `fast` or `slow` at line 1 column 30"
        );

        let message = describe::<Params>(r#"{"count": 1, "mode": "fast", "hunter2": 1}"#);
        assert!(message.starts_with("unknown field, expected"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");

        let message = describe::<Params>(r#"{"count": -7, "mode": "fast"}"#);
        assert!(message.starts_with("invalid value, expected u32"), "{message}");
        assert!(!message.contains("-7"), "{message}");
    }

    #[test]
    fn field_names_from_the_type_are_kept() {
        assert_eq!(
            describe::<Params>(r#"{"count": 1}"#),
            "missing field `mode` at line 1 column 12"
        );
    }

    #[test]
    fn syntax_errors_keep_serde_jsons_wording() {
        assert_eq!(
            describe::<BTreeMap<String, String>>(r#"{"a": "hunter2" "#),
            "EOF while parsing an object at line 1 column 16"
        );
    }

    #[test]
    fn custom_messages_are_replaced() {
        let err = <serde_json::Error as serde::de::Error>::custom("token hunter2 expired");
        assert_eq!(
            describe_json_error(&err),
            "data does not match the expected shape"
        );
    }

    #[test]
    fn from_serde_json_is_permanent_invalid_json() {
        let err = serde_json::from_str::<u32>("\"hunter2\"").expect_err("not a number");
        let err = Error::from(err);
        assert_eq!(err.code, "invalid_json");
        assert!(!err.retryable);
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }
}
