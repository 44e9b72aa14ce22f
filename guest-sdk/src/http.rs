//! Outbound HTTP, synchronous from the function's view, over `wasi:http`.
//!
//! ```no_run
//! use trellis_guest::http;
//! # #[derive(serde::Deserialize)]
//! # struct Token { token: String }
//! # fn token(jwt: &str) -> Result<Token, trellis_guest::Error> {
//!
//! let response = http::post("https://api.github.com/app/installations/42/access_tokens")
//!     .header("authorization", &format!("Bearer {jwt}"))
//!     .header("accept", "application/vnd.github+json")
//!     .json(&serde_json::json!({}))?
//!     .send()?;
//! if response.status != 201 {
//!     return Err(trellis_guest::Error::new("github_error", format!("GitHub answered {}", response.status)));
//! }
//! let token: Token = response.json()?;
//! # Ok(token)
//! # }
//! ```
//!
//! A body is sent whole, with `content-length`, never chunked.
//!
//! A function reaches only the hosts its `allowedHosts` setting lists (by default,
//! none); a refused request fails with [`HttpError`] and the function's logs say which
//! setting would allow it. Redirects are returned, not followed: ask again, through
//! the same check, if you mean to follow one.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// A request being built; [`Request::send`] sends it. `Debug` shows no header value
/// and no body: they carry credentials.
#[derive(Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// `GET url`.
pub fn get(url: &str) -> Request {
    Request::new("GET", url)
}

/// `POST url`.
pub fn post(url: &str) -> Request {
    Request::new("POST", url)
}

/// `PUT url`.
pub fn put(url: &str) -> Request {
    Request::new("PUT", url)
}

/// `PATCH url`.
pub fn patch(url: &str) -> Request {
    Request::new("PATCH", url)
}

/// `DELETE url`.
pub fn delete(url: &str) -> Request {
    Request::new("DELETE", url)
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field(
                "headers",
                &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field(
                "headers",
                &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Request {
    /// A request with any method, e.g. `Request::new("HEAD", url)`.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (repeat a name to send it several times). `content-length` is
    /// always the body's length, whatever is set here.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// The body, as bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// A JSON body, with `content-type: application/json`.
    pub fn json(self, value: &impl Serialize) -> Result<Request, HttpError> {
        let body =
            serde_json::to_vec(value).map_err(|e| HttpError::new(format!("serializing the body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        // Messages never quote the URL: its query may hold a token.
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| HttpError::new("the URL is not absolute (scheme://host/path)"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(HttpError::new(format!("unsupported scheme `{other}`"))),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(HttpError::new(
                "the URL has user info (user:password@host); send credentials in a header instead",
            ));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        // The whole body is known before sending, so its length goes in the head:
        // without it the request goes out chunked, which some servers refuse and some
        // (Python's `http.server`) read as an empty body. It replaces any
        // `content-length` the author set, which could only disagree. An empty body
        // goes without one unless the method expects content (RFC 9110, 8.6).
        let mut headers: Vec<_> = self
            .headers
            .into_iter()
            .filter(|(name, _)| name != "content-length")
            .collect();
        if !self.body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch) {
            headers.push((
                "content-length".to_owned(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        let headers =
            Fields::from_list(&headers).map_err(|e| HttpError::new(format!("invalid header: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        let invalid = |what: &str| HttpError::new(format!("invalid {what} in the URL"));
        request.set_method(&method).map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(&path))
            .map_err(|()| invalid("path"))?;
        let outgoing = request
            .body()
            .map_err(|()| HttpError::new("the request body was taken twice"))?;
        let pending = outgoing_handler::handle(request, None).map_err(failed)?;
        // Written after `handle`, so a body larger than the host's buffer streams out.
        // If the host refused the request or could not connect, writing fails: the
        // response then says why, and that is what is reported.
        let written = (|| {
            let stream = outgoing
                .write()
                .map_err(|()| HttpError::new("the request body stream was taken twice"))?;
            for chunk in self.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| HttpError::new(format!("sending the body: {e:?}")))?;
            }
            drop(stream);
            OutgoingBody::finish(outgoing, None).map_err(failed)
        })();
        pending.subscribe().block();
        if let Err(error) = written {
            return match pending.get() {
                Some(Ok(Err(code))) => Err(failed(code)),
                _ => Err(error),
            };
        }
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(failed(code)),
            Some(Err(())) | None => return Err(HttpError::new("the response was already taken")),
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| HttpError::new("the response body was taken twice"))?;
        let mut body = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| HttpError::new("the response body was taken twice"))?;
            loop {
                match stream.blocking_read(64 << 10) {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(HttpError::new(format!(
                            "reading the response: {}",
                            e.to_debug_string()
                        )));
                    }
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// A whole response. `Debug` shows the status and header names only: a body or a
/// header may carry a token.
#[derive(Clone)]
pub struct Response {
    /// The status code; a redirect arrives as is.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The body as text.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body).map_err(|_| HttpError::new("the response body is not UTF-8"))
    }

    /// The body parsed as JSON. The error says where parsing failed, never what the
    /// body held.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HttpError::new(format!(
                "the response body is not the JSON expected: {}",
                crate::error::describe_json_error(&e)
            ))
        })
    }
}

/// Why a request could not be sent or its response read. `?` in a handler makes it
/// the error `http_error`, retryable as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// What went wrong.
    pub message: String,
    /// Whether trying again may help (a timeout or a refused connection, not a
    /// refusal by `allowedHosts`).
    pub retryable: bool,
}

impl HttpError {
    fn new(message: impl Into<String>) -> HttpError {
        HttpError {
            message: message.into(),
            retryable: false,
        }
    }
}

fn failed(code: ErrorCode) -> HttpError {
    let (message, retryable) = match code {
        ErrorCode::HttpRequestDenied => (
            "the request was refused by the function's allowedHosts (its logs say which setting would allow it)"
                .to_owned(),
            false,
        ),
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            ("the request timed out".to_owned(), true)
        }
        ErrorCode::ConnectionRefused => ("the connection was refused".to_owned(), true),
        other => (format!("the request failed: {other:?}"), true),
    };
    HttpError { message, retryable }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}
