//! The error a function returns on purpose, how any other error becomes one, and how
//! JSON failures do so without quoting the input that caused them.

use std::fmt;

use serde_json::error::Category;

use crate::http::HttpError;

/// A failure the function reports on purpose: the host answers `422` with `code`.
///
/// Anything a handler returns as `Err(e)` goes through `e.into()`. Every error type
/// converts, so `?` works on `std::io::Error`, `anyhow::Error` and the like; see the
/// [`From`] impl for the codes they get.
///
/// The message is shown to whoever called the function and is stored with the run, so it
/// must never contain a secret from the params.
///
/// It deliberately does not implement [`std::error::Error`]: that is what lets it
/// convert from every type that does (as `anyhow::Error` does). Wrap it with
/// `anyhow::anyhow!(error)` where a `std::error::Error` is needed.
///
/// To give your own error type its codes, convert it yourself. That impl is only
/// possible for a type that does not implement `std::error::Error` (one that does
/// already converts, as `function_error`); for one that does, use `map_err`.
///
/// ```
/// use trellis_guest::Error;
///
/// enum LookupError {
///     Missing(String),
///     Busy,
/// }
///
/// impl From<LookupError> for Error {
///     fn from(error: LookupError) -> Error {
///         match error {
///             LookupError::Missing(what) => Error::new("not_found", format!("no {what}")),
///             LookupError::Busy => Error::retryable("busy", "try again later"),
///         }
///     }
/// }
///
/// fn lookup() -> Result<(), LookupError> {
///     Err(LookupError::Busy)
/// }
///
/// fn handler() -> Result<(), Error> {
///     lookup()?;
///     Ok(())
/// }
///
/// assert!(handler().unwrap_err().retryable);
/// ```
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

/// `?` on any error: everything `anyhow::Error` converts from (any
/// `std::error::Error + Send + Sync + 'static`), and `anyhow::Error` itself.
///
/// The message is the error's chain, outermost first, joined by `: ` (as
/// `format!("{:#}", anyhow_error)` prints it). The code and `retryable` depend on what
/// the chain holds, context added with `anyhow::Context` included:
///
/// - an [`HttpError`]: code `http_error`, retryable as the failure is;
/// - a [`serde_json::Error`]: code `invalid_json`, not retryable, and its part of the
///   message says what was wrong and where without quoting the value (params carry
///   secrets);
/// - anything else: code `function_error`, not retryable; use [`Error::retryable`] for a
///   failure worth another attempt. (`internal` is the host's own failure, so it is
///   not used for the function's.)
///
/// Any other error's message is its `Display`, which may quote what it failed on:
/// convert such an error yourself if that could be a secret.
impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(error: E) -> Self {
        let error = error.into();
        let message = error
            .chain()
            .map(|cause| match cause.downcast_ref::<serde_json::Error>() {
                Some(json) => describe_json_error(json),
                None => cause.to_string(),
            })
            .collect::<Vec<_>>()
            .join(": ");
        // Walking the chain (rather than `anyhow::Error::downcast_ref`) also finds an
        // error that another error gives as its `source()`.
        let mut chain = error.chain();
        if let Some(http) = chain.clone().find_map(|cause| cause.downcast_ref::<HttpError>()) {
            return Self {
                code: "http_error".into(),
                message,
                retryable: http.retryable,
            };
        }
        match chain.any(|cause| cause.is::<serde_json::Error>()) {
            true => Self::new("invalid_json", message),
            false => Self::new("function_error", message),
        }
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
        assert_eq!(err.message, "invalid type, expected u32 at line 1 column 9");
    }

    #[test]
    fn question_mark_works_on_std_errors_as_function_error() {
        fn handler() -> Result<(), Error> {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no config file",
            ))?;
            Ok(())
        }
        let err = handler().expect_err("the io error is passed on");
        assert_eq!(
            (err.code.as_str(), err.message.as_str(), err.retryable),
            ("function_error", "no config file", false)
        );
    }

    #[test]
    fn anyhow_errors_carry_their_chain() {
        use anyhow::Context;
        let err: anyhow::Error = Err::<(), _>(std::io::Error::other("disk on fire"))
            .context("reading the template")
            .context("rendering")
            .expect_err("an error");
        let err = Error::from(err);
        assert_eq!(err.code, "function_error");
        assert_eq!(err.message, "rendering: reading the template: disk on fire");
    }

    #[test]
    fn known_errors_keep_their_codes_under_context() {
        use anyhow::Context;
        let timeout = HttpError {
            message: "the request timed out".into(),
            retryable: true,
        };
        let err = Error::from(
            Err::<(), _>(timeout)
                .context("fetching the token")
                .expect_err("an error"),
        );
        assert_eq!(
            (err.code.as_str(), err.message.as_str(), err.retryable),
            ("http_error", "fetching the token: the request timed out", true)
        );

        let json = serde_json::from_str::<u32>("\"hunter2\"").expect_err("not a number");
        let err = Error::from(
            Err::<(), _>(json)
                .context("parsing the answer")
                .expect_err("an error"),
        );
        assert_eq!(err.code, "invalid_json");
        assert_eq!(
            err.message,
            "parsing the answer: invalid type, expected u32 at line 1 column 9"
        );
    }
}
