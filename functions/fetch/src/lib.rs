//! Shows outbound HTTP: sends `times` (default 1) requests to `url` (with `method`,
//! `headers` and a text `body`, or a `json` body sent with `Request::json`) through
//! `trellis_guest::http`, and returns the last response's status, headers and body
//! text. A refused or failed request is the error `http_error`, naming which request
//! failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trellis_guest::{Error, http};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    url: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    /// Sent as the body instead of `body`, with `content-type: application/json`.
    json: Option<Value>,
    #[serde(default = "once")]
    times: u32,
}

fn get() -> String {
    "GET".into()
}

fn once() -> u32 {
    1
}

#[derive(Serialize)]
struct Fetched {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

#[trellis_guest::function]
fn fetch(params: Params) -> Result<Fetched, Error> {
    let mut last = None;
    for n in 1..=params.times.max(1) {
        let mut request = http::Request::new(&params.method, &params.url);
        for (name, value) in &params.headers {
            request = request.header(name, value);
        }
        let request = match &params.json {
            Some(json) => request.json(json)?,
            None => request.body(params.body.clone()),
        };
        let response = request.send().map_err(|e| {
            Error::from(http::HttpError {
                message: format!("request {n}: {}", e.message),
                ..e
            })
        })?;
        last = Some(response);
    }
    let response = last.ok_or_else(|| Error::new("no_request", "no request was sent"))?;
    Ok(Fetched {
        status: response.status,
        headers: response
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&response.body).into_owned(),
    })
}
