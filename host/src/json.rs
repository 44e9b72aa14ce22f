//! JSON errors described without the value that caused them: a body, a definition
//! or a CLI argument may hold a secret, and serde's messages quote what they found.

/// serde_json's messages quote the offending value (`invalid type: string "…"`);
/// keep the position and the expectation, drop the value.
pub fn describe_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    // Errors from an already parsed `Value` have no position (line 0).
    let position = match error.line() {
        0 => String::new(),
        line => format!(" at line {line} column {}", error.column()),
    };
    let text = error.to_string();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => text,
        Category::Data => {
            let detail = text.strip_suffix(&position).unwrap_or(&text);
            // Missing and duplicate fields name the API's own vocabulary. An unknown
            // field names whatever key was sent, so it is quoted only when it looks
            // like a field name (a typo worth showing), never when it could be data.
            let names_a_field = ["missing field", "duplicate field"]
                .iter()
                .any(|prefix| detail.starts_with(prefix))
                || detail
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .is_some_and(|(name, _)| looks_like_a_field_name(name));
            if names_a_field {
                format!("{detail}{position}")
            } else if detail.starts_with("unknown field") {
                let expected = detail
                    .rsplit_once(", expected ")
                    .map_or("", |(_, expected)| expected);
                format!("unknown field (not shown){position}: expected {expected}")
            } else {
                // The quoted value may itself contain ", expected ", so the last one
                // is serde's.
                match detail.rsplit_once(", expected ") {
                    Some((_, expected)) => format!("invalid value{position}: expected {expected}"),
                    None => format!("invalid value{position}"),
                }
            }
        }
    }
}

/// The API's field names are short camelCase words (`functionId`, `timeoutMs`):
/// letters only. Tokens and keys nearly always hold digits, `_` or `-`, so a key
/// that fails this is never echoed.
fn looks_like_a_field_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Settings {
        timeout_ms: u32,
    }

    #[test]
    fn data_errors_never_quote_the_value() {
        let error = serde_json::from_str::<Settings>(r#"{"timeout_ms":"hunter2-secret"}"#).unwrap_err();
        let message = describe_error(&error);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("expected u32"), "{message}");
    }

    #[test]
    fn a_value_mimicking_serde_does_not_leak() {
        let body = r#"{"timeout_ms":"x, expected SECRET-TAIL"}"#;
        let error = serde_json::from_str::<Settings>(body).unwrap_err();
        let message = describe_error(&error);
        assert!(!message.contains("SECRET"), "{message}");
    }

    #[test]
    fn unknown_keys_that_look_like_data_are_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            a: Option<u8>,
        }
        for key in [
            "sk_live-51H8x/secret+value",
            "sk_live_51H8xabc",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        ] {
            let error = serde_json::from_str::<Strict>(&format!(r#"{{"{key}":1}}"#)).unwrap_err();
            let message = describe_error(&error);
            assert!(!message.contains(key), "{message}");
            assert!(message.starts_with("unknown field (not shown)"), "{message}");
        }
        let error = serde_json::from_str::<Strict>(r#"{"colour":1}"#).unwrap_err();
        assert!(describe_error(&error).contains("unknown field `colour`"));
    }

    #[test]
    fn unknown_variants_are_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        enum Mode {
            #[allow(dead_code)]
            Fast,
        }
        let error = serde_json::from_str::<Mode>(r#""hunter2""#).unwrap_err();
        let message = describe_error(&error);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("expected"), "{message}");
    }

    #[test]
    fn field_errors_name_the_field() {
        let error = serde_json::from_str::<Settings>("{}").unwrap_err();
        assert!(describe_error(&error).starts_with("missing field `timeout_ms`"));
    }
}
