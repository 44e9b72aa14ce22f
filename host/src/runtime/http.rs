//! Outbound HTTP for functions (`wasi:http/outgoing-handler`), sent by Trellis itself
//! so that every request passes one check ([`super::outbound`]): the function's
//! `allowedHosts`, addresses resolved and vetted here and then connected to directly
//! (no second DNS lookup), no redirect followed, a cap on requests per invocation and
//! on body sizes, and the invocation's deadline over all of it. A refused request is an
//! error to the guest and a line in the function's own logs saying what would allow it.

use super::logs::{Level, LogCollector, Source};
use super::outbound::{self, AllowEntry, Host, Origin, Scheme};
use http_body_util::{BodyExt, Limited};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Requests one invocation may send.
pub const MAX_REQUESTS: u32 = 32;
/// The largest request body a function may send.
pub const MAX_REQUEST_BODY_BYTES: usize = 10 << 20;
/// The largest response body a function may read.
pub const MAX_RESPONSE_BODY_BYTES: usize = 10 << 20;
/// How long one address may take to accept a connection before the next is tried.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Per-invocation state of the hook.
pub struct OutboundHooks {
    allowed: Arc<[AllowEntry]>,
    logs: LogCollector,
    sent: u32,
    deadline: tokio::time::Instant,
}

impl OutboundHooks {
    pub fn new(allowed: Arc<[AllowEntry]>, logs: LogCollector, deadline: tokio::time::Instant) -> Self {
        Self {
            allowed,
            logs,
            sent: 0,
            deadline,
        }
    }

    /// The request's origin and the entry allowing it. A refusal is logged here, at
    /// once, so the line is there even if the guest never waits for the answer.
    fn admit(&mut self, request: &http::Request<WasiBody>) -> Option<(Origin, AllowEntry)> {
        self.sent += 1;
        let admitted = if self.sent > MAX_REQUESTS {
            Err(format!(
                "outbound request refused: an invocation may send at most {MAX_REQUESTS} requests"
            ))
        } else {
            // The URL itself is never quoted: its user info or query may hold a token.
            origin_of(request.uri())
                .ok_or_else(|| {
                    "outbound request refused: the URL is not http(s) to a plain host name or address \
                     (no user info, no numeric shorthand)"
                        .to_owned()
                })
                .and_then(|origin| match outbound::allowing(&self.allowed, &origin) {
                    Ok(entry) => Ok((origin, entry.clone())),
                    Err(refusal) => Err(refusal.to_string()),
                })
        };
        admitted
            .map_err(|message| self.logs.push(Level::Warn, Source::Host, message))
            .ok()
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        let admitted = self.admit(&request);
        let (logs, deadline) = (self.logs.clone(), self.deadline);
        Box::new(async move {
            let Some((origin, entry)) = admitted else {
                return Err(Error::HttpRequestDenied);
            };
            let resolved = tokio::time::timeout_at(deadline, outbound::resolve(&origin, &entry))
                .await
                .map_err(|_| Error::DnsTimeout)?;
            let addresses = match resolved {
                Ok(addresses) => addresses,
                Err(refusal) => {
                    logs.push(Level::Warn, Source::Host, refusal.to_string());
                    return Err(Error::HttpRequestDenied);
                }
            };
            let response = tokio::time::timeout_at(deadline, send(&origin, &addresses, request))
                .await
                .map_err(|_| Error::ConnectionTimeout)??;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

fn origin_of(uri: &http::Uri) -> Option<Origin> {
    let scheme = match uri.scheme_str()? {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let text = format!("{}://{}", uri.scheme_str()?, uri.authority()?.as_str());
    text.parse::<Origin>()
        .ok()
        .filter(|origin| origin.scheme == scheme)
}

/// Connects to the first reachable address, over TLS for https (the certificate is
/// checked against the host name, or the address for a literal), and sends the
/// request with HTTP/1.1. The response is handed back as is: redirects included.
async fn send(
    origin: &Origin,
    addresses: &[SocketAddr],
    mut request: http::Request<WasiBody>,
) -> Result<http::Response<WasiBody>, Error> {
    let mut last_error = None;
    let mut stream = None;
    for address in addresses {
        // An address that drops packets must not use up the whole deadline.
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(connected)) => {
                stream = Some(connected);
                break;
            }
            Ok(Err(error)) => last_error = Some(Error::Connect(error)),
            Err(_) => last_error = Some(Error::ConnectionTimeout),
        }
    }
    let stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some(error)) => return Err(error),
        (None, None) => return Err(Error::DestinationNotFound),
    };
    // Only the path goes on the wire; the host travels in the `Host` header. WASI
    // allows a path of just `?query`.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = match path.starts_with('/') {
        true => path.to_owned(),
        false => format!("/{path}"),
    };
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    let request = request.map(|body| {
        Limited::new(body, MAX_REQUEST_BODY_BYTES)
            .map_err(|_| Error::HttpRequestBodySize(None))
            .boxed_unsync()
    });
    let response = match origin.scheme {
        Scheme::Http => exchange(TokioIo::new(stream), request).await?,
        Scheme::Https => {
            let name = match &origin.host {
                Host::Name(name) => rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|_| Error::HttpRequestUriInvalid)?,
                Host::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
            };
            let tls = tls_connector().connect(name, stream).await.map_err(Error::Tls)?;
            exchange(TokioIo::new(tls), request).await?
        }
    };
    Ok(response.map(|body| {
        Limited::new(body, MAX_RESPONSE_BODY_BYTES)
            .map_err(|error| match error.downcast::<hyper::Error>() {
                Ok(hyper) => Error::from(*hyper),
                Err(_) => Error::HttpResponseBodySize(None),
            })
            .boxed_unsync()
    }))
}

async fn exchange<S>(
    io: TokioIo<S>,
    request: http::Request<WasiBody>,
) -> Result<http::Response<hyper::body::Incoming>, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    // The connection ends when the response body is dropped, at the latest with the
    // invocation's store.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender.send_request(request).await?)
}

/// The public web PKI roots; one connector for the process.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONNECTOR: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
            tokio_rustls::TlsConnector::from(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Empty, Full};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn hooks(allowed: &[&str]) -> OutboundHooks {
        let allowed: Vec<AllowEntry> = allowed.iter().map(|a| a.parse().unwrap()).collect();
        OutboundHooks::new(
            allowed.into(),
            LogCollector::default(),
            tokio::time::Instant::now() + std::time::Duration::from_secs(30),
        )
    }

    /// A request as `wasi:http` hands it over: the URI built from the scheme and
    /// authority the guest set.
    fn request(scheme: &str, authority: &str) -> http::Request<WasiBody> {
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .unwrap_or_else(|e| panic!("{authority}: {e}"));
        http::Request::builder()
            .uri(uri)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .unwrap()
    }

    #[test]
    fn shorthand_hosts_port_zero_and_user_info_are_refused_even_when_the_address_is_listed() {
        // Every one of these means 127.0.0.1:8099 (or port 0) to some resolver or
        // URL parser, and 127.0.0.1:8099 is listed.
        for authority in [
            "127.1:8099",
            "2130706433:8099",
            "0x7f.1:8099",
            "0x7f000001:8099",
            "0177.0.0.1:8099",
            "127.0.0.1:0",
            "user:pass@127.0.0.1:8099",
            "user@127.0.0.1:8099",
        ] {
            let mut hooks = hooks(&["http://127.0.0.1:8099"]);
            assert!(
                hooks.admit(&request("http", authority)).is_none(),
                "{authority} is refused"
            );
            let logs = hooks.logs.finish();
            let [entry] = &logs[..] else {
                panic!("{authority}: one log line, not {logs:?}")
            };
            assert_eq!((entry.level, entry.source), (Level::Warn, Source::Host));
            assert!(
                entry.message.contains("no user info, no numeric shorthand"),
                "{authority}: {}",
                entry.message
            );
            assert!(
                !entry.message.contains("pass"),
                "the URL is not quoted: {}",
                entry.message
            );
        }
        // The plain form of the same address is admitted.
        let mut hooks = hooks(&["http://127.0.0.1:8099"]);
        let (origin, _) = hooks.admit(&request("http", "127.0.0.1:8099")).unwrap();
        assert_eq!(origin.to_string(), "http://127.0.0.1:8099");
        assert!(hooks.logs.finish().is_empty());
    }

    /// A body that arrives in 64 KiB frames, as a guest streams it.
    struct Chunked {
        left: usize,
    }

    impl http_body::Body for Chunked {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
            let n = self.left.min(64 << 10);
            self.left -= n;
            Poll::Ready((n > 0).then(|| Ok(http_body::Frame::data(Bytes::from(vec![b'x'; n])))))
        }
    }

    /// A request's head, up to and with the blank line, read a byte at a time so that
    /// nothing of the body is taken with it.
    async fn read_head(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        head
    }

    /// A loopback server for one request: reads its head and up to `Content-Length`
    /// body bytes, answers `200` with `answer` bytes of body, and reports how many
    /// body bytes it received.
    async fn upstream(answer: usize) -> (SocketAddr, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let head = read_head(&mut socket).await;
            let length: usize = String::from_utf8_lossy(&head)
                .to_ascii_lowercase()
                .lines()
                .find_map(|line| {
                    line.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut received = 0;
            let mut buffer = vec![0u8; 64 << 10];
            while received < length {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return received,
                    Ok(n) => received += n,
                }
            }
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {answer}\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&vec![b'y'; answer]).await;
            received
        });
        (address, served)
    }

    fn post(address: SocketAddr, length: usize) -> http::Request<WasiBody> {
        http::Request::builder()
            .method("POST")
            .uri(format!("http://{address}/upload"))
            .header("content-length", length)
            .body(Chunked { left: length }.boxed_unsync())
            .unwrap()
    }

    fn origin(address: SocketAddr) -> Origin {
        format!("http://{address}").parse().unwrap()
    }

    #[tokio::test]
    async fn a_request_body_over_the_cap_is_cut_off_before_the_server_has_it_all() {
        let (address, served) = upstream(0).await;
        let response = send(
            &origin(address),
            &[address],
            post(address, MAX_REQUEST_BODY_BYTES),
        )
        .await;
        assert_eq!(response.map(|r| r.status()).ok(), Some(http::StatusCode::OK));
        assert_eq!(
            served.await.unwrap(),
            MAX_REQUEST_BODY_BYTES,
            "a body at the cap arrives whole"
        );

        let (address, served) = upstream(0).await;
        let over = MAX_REQUEST_BODY_BYTES + 1;
        let error = send(&origin(address), &[address], post(address, over))
            .await
            .expect_err("a body over the cap fails the request");
        // hyper reports the body's own error as the cause of its own.
        let top: &dyn std::error::Error = match &error {
            Error::Hyper(hyper) => hyper,
            other => other,
        };
        let chain = std::iter::successors(Some(top), |e| e.source())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        assert!(chain.contains("HTTP request body size exceeds limit"), "{chain}");
        let received = served.await.unwrap();
        assert!(
            received <= MAX_REQUEST_BODY_BYTES,
            "the server received {received} bytes"
        );
    }

    #[tokio::test]
    async fn a_response_body_over_the_cap_fails_when_read() {
        for (size, whole) in [
            (MAX_RESPONSE_BODY_BYTES, true),
            (MAX_RESPONSE_BODY_BYTES + 1, false),
        ] {
            let (address, served) = upstream(size).await;
            let get = http::Request::builder()
                .uri(format!("http://{address}/"))
                .body(
                    Full::new(Bytes::new())
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .unwrap();
            let response = send(&origin(address), &[address], get).await.unwrap();
            assert_eq!(response.status(), http::StatusCode::OK);
            let read = response
                .into_body()
                .collect()
                .await
                .map(|body| body.to_bytes().len());
            match (whole, read) {
                (true, Ok(read)) => assert_eq!(read, size),
                (false, Err(Error::HttpResponseBodySize(_))) => {}
                (_, read) => panic!("a {size}-byte response read as {read:?}"),
            }
            served.await.unwrap();
        }
    }

    // `origin_of`, and what `send` does with the addresses it is given.

    fn origin_in(uri: &str) -> Option<Origin> {
        origin_of(&uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}")))
    }

    fn no_body() -> WasiBody {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    }

    fn no_wait() -> Box<dyn Future<Output = Result<(), Error>> + Send> {
        Box::new(async { Ok(()) })
    }

    /// A loopback server for one request: answers `status` with `headers` and no body,
    /// and hands back the head of the request it got.
    async fn answering(
        status: u16,
        headers: &[(&str, &str)],
    ) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut answer = format!("HTTP/1.1 {status} Answer\r\ncontent-length: 0\r\nconnection: close\r\n");
        for (name, value) in headers {
            answer.push_str(&format!("{name}: {value}\r\n"));
        }
        answer.push_str("\r\n");
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let head = read_head(&mut socket).await;
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (address, served)
    }

    /// A loopback port nothing listens on: connecting to it is refused at once.
    async fn closed_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn an_origin_is_the_scheme_host_and_port_with_default_ports_filled_in() {
        for (uri, scheme, host, port, shown) in [
            (
                "http://example.com/a?b=c",
                Scheme::Http,
                "example.com",
                80,
                "http://example.com",
            ),
            (
                "https://api.github.com/",
                Scheme::Https,
                "api.github.com",
                443,
                "https://api.github.com",
            ),
            (
                "https://Api.GitHub.com:443/",
                Scheme::Https,
                "api.github.com",
                443,
                "https://api.github.com",
            ),
            (
                "https://example.com:8443/",
                Scheme::Https,
                "example.com",
                8443,
                "https://example.com:8443",
            ),
            (
                "http://example.com:443/",
                Scheme::Http,
                "example.com",
                443,
                "http://example.com:443",
            ),
        ] {
            let origin = origin_in(uri).unwrap_or_else(|| panic!("{uri} has an origin"));
            assert_eq!(origin.scheme, scheme, "{uri}");
            assert_eq!(origin.host, Host::Name(host.into()), "{uri}");
            assert_eq!(origin.port, port, "{uri}");
            assert_eq!(origin.to_string(), shown, "{uri}");
        }
    }

    #[test]
    fn an_ip_literal_is_an_address_and_ipv6_keeps_its_brackets_only_in_text() {
        let origin = origin_in("http://192.0.2.7:8099/").unwrap();
        assert_eq!(
            (origin.host, origin.port),
            (Host::Ip("192.0.2.7".parse().unwrap()), 8099)
        );

        let origin = origin_in("http://[::1]:8080/health").unwrap();
        assert_eq!(
            (&origin.host, origin.port),
            (&Host::Ip("::1".parse().unwrap()), 8080)
        );
        assert_eq!(origin.to_string(), "http://[::1]:8080");

        let origin = origin_in("https://[2001:db8::1]/").unwrap();
        assert_eq!(
            (&origin.host, origin.port),
            (&Host::Ip("2001:db8::1".parse().unwrap()), 443)
        );
        assert_eq!(origin.to_string(), "https://[2001:db8::1]");
    }

    #[test]
    fn a_uri_that_is_not_http_or_has_no_host_has_no_origin() {
        for uri in [
            "ftp://example.com/",
            "ws://example.com/",
            "/just/a/path",
            "http://:8080/",
        ] {
            assert_eq!(origin_in(uri), None, "{uri}");
        }
    }

    #[tokio::test]
    async fn a_redirect_comes_back_to_the_function_unfollowed() {
        // Where the redirect points is allowed too, so only the engine could stop a follow.
        let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        elsewhere.set_nonblocking(true).unwrap();
        let elsewhere_address = elsewhere.local_addr().unwrap();
        let location = format!("http://{elsewhere_address}/landing");
        let (address, served) = answering(302, &[("location", &location)]).await;
        let mut hooks = hooks(&[
            &format!("http://{address}"),
            &format!("http://{elsewhere_address}"),
        ]);

        let sent = hooks.send_request(request("http", &address.to_string()), None, no_wait());
        let (response, _) = Box::into_pin(sent).await.unwrap();

        assert_eq!(response.status(), http::StatusCode::FOUND);
        assert_eq!(response.headers()["location"], location.as_str());
        assert!(served.await.unwrap().starts_with("GET / HTTP/1.1\r\n"));
        assert_eq!(
            elsewhere.accept().err().map(|e| e.kind()),
            Some(std::io::ErrorKind::WouldBlock),
            "nothing connected to where the redirect points"
        );
        assert!(hooks.logs.finish().is_empty());
    }

    #[tokio::test]
    async fn the_request_goes_to_the_vetted_address_with_only_its_path_on_the_wire() {
        // The name is not looked up again (it could not be: `.invalid` never resolves).
        for (uri, line) in [
            (
                "http://api.example.invalid/items?page=2",
                "GET /items?page=2 HTTP/1.1",
            ),
            ("http://api.example.invalid?page=2", "GET /?page=2 HTTP/1.1"),
        ] {
            let (address, served) = answering(200, &[]).await;
            let request = http::Request::builder()
                .uri(uri)
                .header("host", "api.example.invalid")
                .body(no_body())
                .unwrap();
            let origin = "http://api.example.invalid".parse().unwrap();

            let response = send(&origin, &[address], request).await.unwrap();

            assert_eq!(response.status(), http::StatusCode::OK);
            let head = served.await.unwrap();
            assert!(head.starts_with(&format!("{line}\r\n")), "{uri}: {head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("\r\nhost: api.example.invalid\r\n"),
                "{uri}: {head}"
            );
        }
    }

    #[tokio::test]
    async fn an_address_that_refuses_the_connection_is_skipped_for_the_next_vetted_one() {
        let closed = closed_port().await;
        let (address, served) = answering(204, &[]).await;
        let request = http::Request::builder()
            .uri(format!("http://{address}/ping"))
            .body(no_body())
            .unwrap();

        let response = send(&origin(address), &[closed, address], request).await.unwrap();

        assert_eq!(response.status(), http::StatusCode::NO_CONTENT);
        assert!(served.await.unwrap().starts_with("GET /ping HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn without_a_reachable_address_the_request_fails_with_why() {
        let closed = closed_port().await;
        let get = || {
            http::Request::builder()
                .uri(format!("http://{closed}/"))
                .body(no_body())
                .unwrap()
        };

        let refused = send(&origin(closed), &[closed], get()).await;
        assert!(matches!(refused, Err(Error::Connect(_))), "{:?}", refused.err());

        let none = send(&origin(closed), &[], get()).await;
        assert!(
            matches!(none, Err(Error::DestinationNotFound)),
            "{:?}",
            none.err()
        );
    }

    #[tokio::test]
    async fn a_request_past_the_per_invocation_cap_is_refused_and_the_logs_say_why() {
        let mut hooks = hooks(&["https://api.github.com"]);
        let github = || request("https", "api.github.com");
        for n in 1..=MAX_REQUESTS {
            assert!(hooks.admit(&github()).is_some(), "request {n} is admitted");
        }
        assert!(hooks.logs.finish().is_empty());

        for n in [MAX_REQUESTS + 1, MAX_REQUESTS + 2] {
            let refused = Box::into_pin(hooks.send_request(github(), None, no_wait())).await;
            match refused {
                Err(Error::HttpRequestDenied) => {}
                Err(other) => panic!("request {n} failed with {other:?}"),
                Ok(_) => panic!("request {n} was sent"),
            }
            let logs = hooks.logs.finish();
            let [entry] = &logs[..] else {
                panic!("request {n}: one log line, not {logs:?}")
            };
            assert_eq!((entry.level, entry.source), (Level::Warn, Source::Host));
            assert_eq!(
                entry.message,
                "outbound request refused: an invocation may send at most 32 requests"
            );
        }
    }
}
