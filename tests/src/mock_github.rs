//! A mock of the two GitHub endpoints the `create-github-repo` function calls, on
//! loopback. It checks what GitHub would: the app JWT's RS256 signature against the
//! app's public key and its claims (`iss`, `iat`, `exp`), then the installation token
//! on the repository call. The organization `forbidden` answers 403, as GitHub does
//! when the app lacks a permission; the repository name `exists` answers 422.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The test app's key pair, made with `openssl genrsa -traditional 2048` (a test
/// fixture, not a credential of anything).
pub const PRIVATE_KEY_PKCS1: &str = include_str!("../fixtures/github-app-pkcs1.pem");
/// The same key as PKCS#8.
pub const PRIVATE_KEY_PKCS8: &str = include_str!("../fixtures/github-app-pkcs8.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/github-app-public.pem");

pub struct MockGitHub {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The installation token it issued last, to search records and logs for.
    pub token: Arc<Mutex<Option<String>>>,
    /// Each call as `"<route> <status>"`.
    pub calls: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Mock {
    app_id: String,
    installation_id: String,
    token: Arc<Mutex<Option<String>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl MockGitHub {
    pub async fn start(app_id: &str, installation_id: &str) -> MockGitHub {
        Self::start_on("127.0.0.1:0", app_id, installation_id).await
    }

    /// As [`MockGitHub::start`], on a given address (`127.0.0.1:8099`).
    pub async fn start_on(address: &str, app_id: &str, installation_id: &str) -> MockGitHub {
        let mock = Mock {
            app_id: app_id.into(),
            installation_id: installation_id.into(),
            token: Default::default(),
            calls: Default::default(),
        };
        let (token, calls) = (mock.token.clone(), mock.calls.clone());
        let app = axum::Router::new()
            .route("/app/installations/{id}/access_tokens", post(access_token))
            .route("/orgs/{org}/repos", post(create_repo))
            .with_state(mock);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .unwrap_or_else(|error| panic!("binding the mock GitHub to {address}: {error}"));
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockGitHub { url, token, calls }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn issued_token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn answer(mock: &Mock, route: &str, status: StatusCode, body: Value) -> (StatusCode, Json<Value>) {
    mock.calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(format!("{route} {}", status.as_u16()));
    (status, Json(body))
}

async fn access_token(
    State(mock): State<Mock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let route = "access_tokens";
    let jwt = bearer(&headers).unwrap_or_default();
    if let Err(problem) = check_jwt(&jwt, &mock.app_id) {
        return answer(
            &mock,
            route,
            StatusCode::UNAUTHORIZED,
            json!({ "message": problem }),
        );
    }
    if id != mock.installation_id {
        return answer(
            &mock,
            route,
            StatusCode::NOT_FOUND,
            json!({ "message": "Not Found" }),
        );
    }
    let token = format!("ghs_{}", uuid::Uuid::new_v4().simple());
    *mock.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
    answer(
        &mock,
        route,
        StatusCode::CREATED,
        json!({ "token": token, "expires_at": "2099-01-01T00:00:00Z" }),
    )
}

async fn create_repo(
    State(mock): State<Mock>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    // The route records what was asked for privacy, so tests see the default.
    let route = &format!("repos private={}", body["private"]);
    let issued = mock.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if issued.is_none() || bearer(&headers) != issued {
        return answer(
            &mock,
            route,
            StatusCode::UNAUTHORIZED,
            json!({ "message": "Bad credentials" }),
        );
    }
    if org == "forbidden" {
        return answer(
            &mock,
            route,
            StatusCode::FORBIDDEN,
            json!({ "message": "Resource not accessible by integration" }),
        );
    }
    let name = body["name"].as_str().unwrap_or_default();
    if name == "exists" {
        return answer(
            &mock,
            route,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "message": "name already exists" }),
        );
    }
    answer(
        &mock,
        route,
        StatusCode::CREATED,
        json!({
            "id": 4242,
            "full_name": format!("{org}/{name}"),
            "html_url": format!("https://github.com/{org}/{name}"),
            "private": body["private"],
        }),
    )
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .map(str::to_owned)
}

/// What GitHub checks of an app JWT.
fn check_jwt(jwt: &str, app_id: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| "bad base64".to_string());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| "bad header")?;
    if header["alg"] != "RS256" {
        return Err("alg must be RS256".into());
    }
    let key = RsaPublicKey::from_public_key_pem(PUBLIC_KEY).map_err(|_| "bad fixture key")?;
    let signature = Signature::try_from(decode(signature)?.as_slice()).map_err(|_| "bad signature")?;
    VerifyingKey::<sha2::Sha256>::new(key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with the app's public key")?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| "bad claims")?;
    let now = chrono::Utc::now().timestamp();
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    if claims["iss"].as_str() != Some(app_id)
        && claims["iss"].as_i64().map(|n| n.to_string()).as_deref() != Some(app_id)
    {
        return Err("iss is not the app id".into());
    }
    if iat > now || exp <= now || exp - iat > 600 {
        return Err(format!("iat {iat} / exp {exp} are not a valid window at {now}"));
    }
    Ok(())
}
