//! Request bodies read under a per-route byte limit, and JSON parsed into the API's
//! error shape. Parse errors describe where and what was expected, never the value
//! found: a body may hold a secret.

use super::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

/// JSON bodies: definitions and triggerParams are small; 1 MiB is generous.
pub const JSON_LIMIT: usize = 1 << 20;
/// Component uploads: real functions are a few MiB; 50 MiB leaves room for ones
/// that embed data.
pub const UPLOAD_LIMIT: usize = 50 << 20;

/// Reads the whole body, or 413 once it passes `limit` bytes.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(error) => Err(ApiError::bad_request(
            "invalid_body",
            format!("could not read the request body: {error}"),
        )),
    }
}

/// A JSON body of at most [`JSON_LIMIT`] bytes. An empty body reads as `{}`, so
/// `POST …/invoke` without a body means "no params".
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(request.into_body(), JSON_LIMIT).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A query string, with a malformed one answered in the API's error shape (axum's
/// own rejection is plain text).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(query)) => Ok(ApiQuery(query)),
            Err(rejection) => Err(ApiError::bad_request("invalid_query", rejection.body_text())),
        }
    }
}

/// Parses a JSON body already read; an empty body reads as `{}`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad_request("invalid_json", describe_json_error(&error)))
}

/// serde_json's messages quote the offending value (`invalid type: string "…"`);
/// keep the position and the expectation, drop the value.
pub fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let position = format!("line {} column {}", error.line(), error.column());
    let text = error.to_string();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => text,
        Category::Data => {
            let detail = text.strip_suffix(&format!(" at {position}")).unwrap_or(&text);
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
                format!("{detail} at {position}")
            } else if detail.starts_with("unknown field") {
                let expected = detail
                    .rsplit_once(", expected ")
                    .map_or("", |(_, expected)| expected);
                format!("unknown field (not shown) at {position}: expected {expected}")
            } else {
                // The quoted value may itself contain ", expected ", so the last one
                // is serde's.
                match detail.rsplit_once(", expected ") {
                    Some((_, expected)) => format!("invalid value at {position}: expected {expected}"),
                    None => format!("invalid value at {position}"),
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
        let message = describe_json_error(&error);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("expected u32"), "{message}");
    }

    #[test]
    fn a_value_mimicking_serde_does_not_leak() {
        let body = r#"{"timeout_ms":"x, expected SECRET-TAIL"}"#;
        let error = serde_json::from_str::<Settings>(body).unwrap_err();
        let message = describe_json_error(&error);
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
            let message = describe_json_error(&error);
            assert!(!message.contains(key), "{message}");
            assert!(message.starts_with("unknown field (not shown)"), "{message}");
        }
        let error = serde_json::from_str::<Strict>(r#"{"colour":1}"#).unwrap_err();
        assert!(describe_json_error(&error).contains("unknown field `colour`"));
    }

    #[test]
    fn unknown_variants_are_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        enum Mode {
            #[allow(dead_code)]
            Fast,
        }
        let error = serde_json::from_str::<Mode>(r#""hunter2""#).unwrap_err();
        let message = describe_json_error(&error);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("expected"), "{message}");
    }

    #[test]
    fn field_errors_name_the_field() {
        let error = serde_json::from_str::<Settings>("{}").unwrap_err();
        assert!(describe_json_error(&error).starts_with("missing field `timeout_ms`"));
    }
}
