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
        .map_err(|error| ApiError::bad_request("invalid_json", crate::json::describe_error(&error)))
}
