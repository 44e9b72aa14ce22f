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

    /// A JSON body, with `content-type: application/json` unless a `content-type` is
    /// set already (such as `application/merge-patch+json`).
    pub fn json(self, value: &impl Serialize) -> Result<Request, HttpError> {
        let body =
            serde_json::to_vec(value).map_err(|e| HttpError::new(format!("serializing the body: {e}")))?;
        // One `content-type` only: a second one would make the request ambiguous.
        let request = match self.headers.iter().any(|(name, _)| name == "content-type") {
            true => self,
            false => self.header("content-type", "application/json"),
        };
        Ok(request.body(body))
    }

    /// What goes on the wire besides the body, worked out before any `wasi:http` call.
    fn head(&self) -> Result<Head, HttpError> {
        // Messages never quote the URL: its query may hold a token.
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| HttpError::new("the URL is not absolute (scheme://host/path)"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            // Named only when it is a scheme: a URL without one could put part of its
            // query (`host/x?token=…&next=https://…`) before the first `://`.
            other if is_scheme(other) => return Err(HttpError::new(format!("unsupported scheme `{other}`"))),
            _ => return Err(HttpError::new("the URL's scheme is not http or https")),
        };
        // User info is looked for up to the path or the query, across a `#`: a
        // password may hold one, and `user:pa#ss@host` must not pass as the host
        // `user:pa` with the rest of the password taken for a fragment.
        if rest[..rest.find(['/', '?']).unwrap_or(rest.len())].contains('@') {
            return Err(HttpError::new(
                "the URL has user info (user:password@host); send credentials in a header instead",
            ));
        }
        // The authority ends at the path, the query or the fragment.
        let (authority, rest) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        // A fragment is for the client; it is not sent.
        let path = rest.split_once('#').map_or(rest, |(before, _)| before);
        let path = match path {
            "" => "/".to_owned(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
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
            .iter()
            .filter(|(name, _)| name != "content-length")
            .cloned()
            .collect();
        if !self.body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch) {
            headers.push((
                "content-length".to_owned(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        Ok(Head {
            method,
            scheme,
            authority: authority.to_owned(),
            path_with_query: path,
            headers,
        })
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let Head {
            method,
            scheme,
            authority,
            path_with_query,
            headers,
        } = self.head()?;
        let headers =
            Fields::from_list(&headers).map_err(|e| HttpError::new(format!("invalid header: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        let invalid = |what: &str| HttpError::new(format!("invalid {what} in the URL"));
        request.set_method(&method).map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(&path_with_query))
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
                        // Only the first line: the host's debug text of an error can go
                        // on with its causes and, when the host runs with
                        // RUST_BACKTRACE, a backtrace of the host's own code.
                        let debug = e.to_debug_string();
                        let reason = debug.lines().next().unwrap_or("the stream failed");
                        return Err(HttpError::new(format!("reading the response: {reason}")));
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

/// The parts of a [`Request`] that [`Request::send`] hands to `wasi:http`, body aside.
struct Head {
    method: Method,
    scheme: Scheme,
    authority: String,
    path_with_query: String,
    headers: Vec<(String, Vec<u8>)>,
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
            "the request was refused by the host: its origin is not in the function's allowedHosts, \
             or the call already made as many requests as it may (the function's logs say which)"
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

/// RFC 3986's scheme syntax, and short: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(text: &str) -> bool {
    const LONGEST_NAMED: usize = 16;
    let mut chars = text.chars();
    text.len() <= LONGEST_NAMED
        && chars.next().is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    //! What a request becomes before `wasi:http` sees it, and what a response offers.
    //! Sending itself needs a `wasi:http` host: tests/tests/outbound.rs and
    //! tests/tests/github.rs cover it with real functions.

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn head(request: &Request) -> Head {
        request.head().expect("the request can be sent")
    }

    fn header<'h>(head: &'h Head, name: &str) -> Vec<&'h [u8]> {
        head.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, value)| value.as_slice())
            .collect()
    }

    fn response(headers: &[(&str, &[u8])], body: &[u8]) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                .collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_json_body_goes_with_its_content_type_and_length() {
        let request = post("https://api.example.com/items")
            .json(&json!({ "name": "trellis" }))
            .unwrap();
        let head = head(&request);

        assert_eq!(request.body, br#"{"name":"trellis"}"#);
        assert_eq!(header(&head, "content-type"), [b"application/json"]);
        assert_eq!(header(&head, "content-length"), [b"18"]);
        assert!(matches!(head.method, Method::Post));
    }

    #[test]
    fn a_content_type_set_before_json_is_kept_and_not_doubled() {
        let request = patch("https://k8s.example.com/apis/apps/v1/deployments/web")
            .header("Content-Type", "application/merge-patch+json")
            .json(&json!({ "spec": { "replicas": 3 } }))
            .unwrap();

        assert_eq!(
            header(&head(&request), "content-type"),
            [b"application/merge-patch+json"]
        );
    }

    #[test]
    fn content_length_is_the_bodys_length_whatever_the_author_set() {
        let request = put("https://example.com/blob")
            .header("Content-Length", "999")
            .body("hello");

        assert_eq!(header(&head(&request), "content-length"), [b"5"]);
    }

    #[test]
    fn an_empty_body_has_a_length_only_when_the_method_expects_content() {
        for (request, length) in [
            (get("https://example.com/"), None),
            (delete("https://example.com/x"), None),
            (Request::new("head", "https://example.com/"), None),
            (post("https://example.com/"), Some(&b"0"[..])),
            (put("https://example.com/"), Some(b"0")),
            (patch("https://example.com/"), Some(b"0")),
            (Request::new("post", "https://example.com/"), Some(b"0")),
            (get("https://example.com/").body("q"), Some(b"1")),
        ] {
            let head = head(&request);
            assert_eq!(
                header(&head, "content-length").first().copied(),
                length,
                "{:?}",
                head.method
            );
        }
    }

    #[test]
    fn methods_are_case_insensitive_and_others_pass_through_in_capitals() {
        assert!(matches!(head(&get("http://h/")).method, Method::Get));
        assert!(matches!(head(&delete("http://h/")).method, Method::Delete));
        assert!(matches!(
            head(&Request::new("Head", "http://h/")).method,
            Method::Head
        ));
        assert!(matches!(
            head(&Request::new("options", "http://h/")).method,
            Method::Options
        ));
        let Method::Other(other) = head(&Request::new("propfind", "http://h/")).method else {
            panic!("PROPFIND is no standard method");
        };
        assert_eq!(other, "PROPFIND");
    }

    #[test]
    fn header_names_are_lowercased_and_repeated_names_kept_in_order() {
        let request = get("https://example.com/")
            .header("Accept", "application/vnd.github+json")
            .header("X-Tag", "one")
            .header("x-tag", "two");

        assert_eq!(
            head(&request).headers,
            [
                ("accept".to_owned(), b"application/vnd.github+json".to_vec()),
                ("x-tag".to_owned(), b"one".to_vec()),
                ("x-tag".to_owned(), b"two".to_vec()),
            ]
        );
    }

    #[test]
    fn a_url_is_split_into_scheme_host_and_path_with_query() {
        for (url, https, authority, path) in [
            (
                "https://api.github.com/repos/o/r/pulls?state=open&per_page=100",
                true,
                "api.github.com",
                "/repos/o/r/pulls?state=open&per_page=100",
            ),
            ("HTTP://127.0.0.1:8099", false, "127.0.0.1:8099", "/"),
            ("https://example.com?q=1", true, "example.com", "/?q=1"),
            ("http://[::1]:8080/health", false, "[::1]:8080", "/health"),
            (
                "https://example.com/login?next=/a@b",
                true,
                "example.com",
                "/login?next=/a@b",
            ),
        ] {
            let head = head(&get(url));
            assert_eq!(matches!(head.scheme, Scheme::Https), https, "{url}");
            assert_eq!(head.authority, authority, "{url}");
            assert_eq!(head.path_with_query, path, "{url}");
        }
    }

    #[test]
    fn a_fragment_is_not_sent() {
        let head = head(&get("https://example.com/docs?v=2#install"));
        assert_eq!(
            (head.authority.as_str(), head.path_with_query.as_str()),
            ("example.com", "/docs?v=2")
        );

        let head = self::head(&get("https://example.com#top"));
        assert_eq!(
            (head.authority.as_str(), head.path_with_query.as_str()),
            ("example.com", "/")
        );
    }

    #[test]
    fn a_url_that_cannot_be_sent_fails_before_any_request_and_is_not_quoted() {
        for (url, says) in [
            ("api.example.com/items?token=s3cr3t", "the URL is not absolute"),
            ("ftp://files.example.com/s3cr3t", "unsupported scheme `ftp`"),
            ("https://deploy:s3cr3t@example.com/", "the URL has user info"),
            ("https://deploy:s3#cr3t@example.com/", "the URL has user info"),
            (
                "api.example.com/items?token=S3cr3t&next=https://app/",
                "the URL's scheme is not http or https",
            ),
            (
                "deploy:Pa55s3cr3t@host/x?cb=https://app/",
                "the URL's scheme is not http or https",
            ),
        ] {
            let error = get(url).send().expect_err(url);
            assert!(error.message.starts_with(says), "{url}: {}", error.message);
            let lowered = error.message.to_ascii_lowercase();
            assert!(
                !lowered.contains("s3cr3t") && !lowered.contains("s3"),
                "{url}: {}",
                error.message
            );
            assert!(!error.retryable, "{url}: a bad URL stays bad");
        }
    }

    #[test]
    fn a_bad_url_is_a_permanent_http_error_to_the_caller() {
        fn handler() -> Result<(), crate::Error> {
            get("ftp://files.example.com/").send()?;
            Ok(())
        }
        let error = handler().expect_err("ftp is not sent");
        assert_eq!(
            (error.code.as_str(), error.message.as_str(), error.retryable),
            ("http_error", "unsupported scheme `ftp`", false)
        );
    }

    #[test]
    fn debug_output_shows_no_header_value_and_no_body() {
        let request = post("https://api.example.com/tokens?key=s3cr3t")
            .header("authorization", "Bearer s3cr3t")
            .body("password=s3cr3t");
        let shown = format!("{request:?}");
        assert!(
            shown.contains("authorization") && shown.contains("body_bytes: 15"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");

        let shown = format!(
            "{:?}",
            response(&[("set-cookie", b"session=s3cr3t")], br#"{"token":"s3cr3t"}"#)
        );
        assert!(
            shown.contains("status: 200") && shown.contains("set-cookie"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn a_response_header_is_found_whatever_its_case_and_the_first_value_wins() {
        let response = response(
            &[
                ("location", b"https://example.com/next"),
                ("x-binary", &[0xff, 0xfe]),
                ("x-rate", b"1"),
                ("x-rate", b"2"),
            ],
            b"",
        );

        assert_eq!(response.header("Location"), Some("https://example.com/next"));
        assert_eq!(response.header("X-RATE"), Some("1"));
        assert_eq!(response.header("x-binary"), None, "not text");
        assert_eq!(response.header("etag"), None);
    }

    #[test]
    fn a_response_body_reads_as_text_or_as_json() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Token {
            token: String,
            expires_in: u32,
        }
        let response = response(&[], br#"{"token":"t-1","expires_in":3600}"#);

        assert_eq!(response.text().unwrap(), r#"{"token":"t-1","expires_in":3600}"#);
        assert_eq!(
            response.json::<Token>().unwrap(),
            Token {
                token: "t-1".into(),
                expires_in: 3600,
            }
        );
    }

    #[test]
    fn a_body_that_is_not_what_was_expected_fails_without_quoting_it() {
        let error = response(&[], br#"{"count":"s3cr3t"}"#)
            .json::<std::collections::HashMap<String, u32>>()
            .unwrap_err();
        assert_eq!(
            error.message,
            "the response body is not the JSON expected: invalid type, expected u32 at line 1 column 17"
        );
        assert!(!error.retryable);

        let error = response(&[], b"<html>s3cr3t")
            .json::<serde_json::Value>()
            .unwrap_err();
        assert!(
            error
                .message
                .starts_with("the response body is not the JSON expected"),
            "{error}"
        );
        assert!(!error.message.contains("s3cr3t"), "{error}");

        let error = response(&[], &[b'o', b'k', 0xff]).text().unwrap_err();
        assert_eq!(error.to_string(), "the response body is not UTF-8");
    }

    #[test]
    fn a_refusal_by_allowed_hosts_is_final_while_timeouts_and_refusals_to_connect_are_retryable() {
        let denied = failed(ErrorCode::HttpRequestDenied);
        assert!(!denied.retryable);
        assert!(denied.message.contains("allowedHosts"), "{}", denied.message);

        for code in [
            ErrorCode::ConnectionTimeout,
            ErrorCode::ConnectionReadTimeout,
            ErrorCode::HttpResponseTimeout,
        ] {
            assert_eq!(
                failed(code),
                HttpError {
                    message: "the request timed out".into(),
                    retryable: true,
                }
            );
        }
        assert_eq!(
            failed(ErrorCode::ConnectionRefused),
            HttpError {
                message: "the connection was refused".into(),
                retryable: true,
            }
        );
        let other = failed(ErrorCode::DnsTimeout);
        assert!(other.retryable);
        assert!(other.message.starts_with("the request failed: ") && other.message.contains("DnsTimeout"));
    }
}
