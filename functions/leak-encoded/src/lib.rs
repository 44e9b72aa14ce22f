//! Hostile fixture: passes `secret` on in every encoding a function might use by
//! accident (as is, JSON-escaped, base64, inside a Basic credential, percent-encoded),
//! in its output, its log and its stdout; with `fail`, fails instead, with the forms
//! in its error message and `code` as its error code. Proves redaction finds them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value};
use trellis_guest::{Error, log};

#[derive(Deserialize)]
struct Params {
    secret: String,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    code: String,
}

#[trellis_guest::function]
fn leak_encoded(params: Params) -> Result<Value, Error> {
    let forms = forms(&params.secret);
    let all = forms
        .iter()
        .map(|(name, form)| format!("{name}=<{form}>"))
        .collect::<Vec<_>>()
        .join(" ");
    for (name, form) in &forms {
        log::info!("{name}: {form}");
        println!("{name}={form}");
    }
    if params.fail {
        return Err(Error::new(params.code, format!("leaked {all}")));
    }
    let mut output: Map<String, Value> = forms.into_iter().map(|(n, f)| (n.to_owned(), f.into())).collect();
    output.insert("all".into(), all.into());
    Ok(output.into())
}

fn forms(secret: &str) -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json[1..json.len() - 1].to_owned();
    let json_ascii = json
        .chars()
        .map(|c| match c.is_ascii() {
            true => c.to_string(),
            false => c
                .encode_utf16(&mut [0; 2])
                .iter()
                .map(|u| format!("\\u{u:04x}"))
                .collect(),
        })
        .collect();
    vec![
        ("raw", secret.to_owned()),
        ("json", json),
        ("jsonAscii", json_ascii),
        ("base64", STANDARD.encode(secret)),
        ("base64NoPad", STANDARD_NO_PAD.encode(secret)),
        ("base64Url", URL_SAFE.encode(secret)),
        ("base64UrlNoPad", URL_SAFE_NO_PAD.encode(secret)),
        (
            "basicAuth",
            format!("Basic {}", STANDARD.encode(format!("user:{secret}"))),
        ),
        ("percent", percent(secret, rfc3986, false, true)),
        ("percentLower", percent(secret, rfc3986, false, false)),
        ("queryEscape", percent(secret, rfc3986, true, true)),
        (
            "uriComponent",
            percent(
                secret,
                |b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b),
                false,
                true,
            ),
        ),
        (
            "pythonQuote",
            percent(secret, |b| rfc3986(b) || b == b'/', false, true),
        ),
    ]
}

fn rfc3986(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn percent(text: &str, safe: fn(u8) -> bool, space_as_plus: bool, upper: bool) -> String {
    text.bytes()
        .map(|b| match b {
            b if safe(b) => char::from(b).to_string(),
            b' ' if space_as_plus => "+".to_owned(),
            b if upper => format!("%{b:02X}"),
            b => format!("%{b:02x}"),
        })
        .collect()
}
