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
