//! Shows the announcement's `provision-repo` step: creates a GitHub repository as a
//! GitHub App. It mints an RS256 app JWT from `GITHUB_PRIVATE_KEY`, exchanges it for an
//! installation token, and creates `org/name`. No key, JWT or token ever appears in
//! its output, logs or errors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use trellis_guest::{Error, http, log};

#[derive(Deserialize)]
struct Params {
    #[serde(rename = "GITHUB_APP_ID")]
    app_id: AppId,
    #[serde(rename = "GITHUB_PRIVATE_KEY")]
    private_key: String,
    #[serde(rename = "GITHUB_INSTALLATION_ID")]
    installation_id: AppId,
    org: String,
    name: String,
    #[serde(default = "private_by_default")]
    private: bool,
    #[serde(rename = "GITHUB_API_URL", default = "github_api")]
    api_url: String,
}

/// Ids arrive as numbers or as strings (encryptedParams values are strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum AppId {
    Number(u64),
    Text(String),
}

impl AppId {
    fn text(&self) -> String {
        match self {
            AppId::Number(n) => n.to_string(),
            AppId::Text(t) => t.trim().to_owned(),
        }
    }
}

fn private_by_default() -> bool {
    true
}

fn github_api() -> String {
    "https://api.github.com".into()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    id: u64,
    full_name: String,
    html_url: String,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

#[derive(Deserialize)]
struct Repository {
    id: u64,
    full_name: String,
    html_url: String,
}

#[trellis_guest::function]
fn create_github_repo(params: Params) -> Result<Created, Error> {
    let api = params.api_url.trim_end_matches('/');
    // Both go into URL paths: nothing but what GitHub allows may change the route.
    let org_ok = !params.org.is_empty()
        && params.org.len() <= 39
        && params.org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !org_ok {
        return Err(Error::invalid_params(
            "org must be 1 to 39 letters, digits or hyphens",
        ));
    }
    let installation_id = params.installation_id.text();
    if installation_id.is_empty() || !installation_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid_params("GITHUB_INSTALLATION_ID must be a number"));
    }
    let jwt = app_jwt(&params.app_id.text(), &params.private_key, now()?)?;
    log::info!("exchanging the app JWT for an installation token");
    let response = http::post(&format!(
        "{api}/app/installations/{installation_id}/access_tokens"
    ))
    .header("authorization", &format!("Bearer {jwt}"))
    .header("accept", "application/vnd.github+json")
    .header("user-agent", "trellis-create-github-repo")
    .send()?;
    let token: Token = match response.status {
        201 | 200 => response.json()?,
        status => return Err(github_error("the installation token exchange", status)),
    };
    log::info!("creating {}/{}", params.org, params.name);
    let response = http::post(&format!("{api}/orgs/{}/repos", params.org))
        .header("authorization", &format!("Bearer {}", token.token))
        .header("accept", "application/vnd.github+json")
        .header("user-agent", "trellis-create-github-repo")
        .json(&json!({ "name": params.name, "private": params.private }))?
        .send()?;
    let repository: Repository = match response.status {
        201 => response.json()?,
        status => return Err(github_error("creating the repository", status)),
    };
    Ok(Created {
        id: repository.id,
        full_name: repository.full_name,
        html_url: repository.html_url,
    })
}

/// A GitHub answer other than success, as a clear error. The response body is not
/// quoted: it could echo what was sent.
fn github_error(what: &str, status: u16) -> Error {
    let meaning = match status {
        401 => "the app's credentials were refused (check GITHUB_APP_ID and GITHUB_PRIVATE_KEY)",
        403 => {
            "forbidden: the app lacks a permission it needs here (creating repositories needs Administration: write), or GitHub is rate limiting it"
        }
        404 => "not found (check the installation id and the organization)",
        422 => "GitHub refused the request (a repository of that name may already exist)",
        _ => "unexpected answer",
    };
    let code = match status {
        401 => "github_unauthorized",
        403 => "github_forbidden",
        404 => "github_not_found",
        422 => "github_unprocessable",
        _ => "github_error",
    };
    let error = Error::new(code, format!("{what}: GitHub answered {status}: {meaning}"));
    match status {
        500..=599 | 429 => Error {
            retryable: true,
            ..error
        },
        _ => error,
    }
}

fn now() -> Result<u64, Error> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Error::new("clock_error", "the clock is before 1970"))
}

/// An RS256 GitHub App JWT: issued 60 s in the past (GitHub's advice against clock
/// drift), expiring 9 minutes after now (GitHub allows at most 10).
fn app_jwt(app_id: &str, pem: &str, now: u64) -> Result<String, Error> {
    let key = RsaPrivateKey::from_pkcs1_pem(pem.trim())
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem.trim()))
        .map_err(|_| {
            Error::invalid_params("GITHUB_PRIVATE_KEY is not an RSA private key in PEM (PKCS#1 or PKCS#8)")
        })?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims =
        URL_SAFE_NO_PAD.encode(json!({ "iat": now - 60, "exp": now + 540, "iss": app_id }).to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = SigningKey::<Sha256>::new(key)
        .try_sign(signing_input.as_bytes())
        .map_err(|_| Error::invalid_params("GITHUB_PRIVATE_KEY is too small to sign with RS256"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}
