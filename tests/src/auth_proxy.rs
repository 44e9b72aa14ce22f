//! A loopback reverse proxy that adds `Authorization: Bearer <token>` to every
//! request, for test clients that cannot send headers (the MCP conformance suite).
//! Everything else, `Host` and `Origin` included, passes through unchanged, so the
//! server's own auth and DNS-rebinding checks still run on every request.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Clone)]
struct Proxy {
    client: Client<HttpConnector, Body>,
    /// `127.0.0.1:<port>` of the server.
    upstream: String,
    authorization: HeaderValue,
}

/// Starts the proxy for the server at `upstream` (`http://127.0.0.1:<port>`) and
/// returns its own base URL.
pub async fn start(upstream: &str, token: &str) -> String {
    let proxy = Proxy {
        client: Client::builder(TokioExecutor::new()).build_http(),
        upstream: upstream.trim_start_matches("http://").to_owned(),
        authorization: HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the proxy");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn forward(State(proxy): State<Proxy>, mut request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    *request.uri_mut() = match format!("http://{}{path}", proxy.upstream).parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, proxy.authorization.clone());
    match proxy.client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
