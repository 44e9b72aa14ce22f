//! Shows what a panic looks like to the caller: a trap whose message reaches the error and logs.

use serde::Deserialize;
use serde_json::Value;
use trellis_guest::Error;

#[derive(Deserialize)]
struct Params {
    #[serde(default = "boom")]
    message: String,
}

fn boom() -> String {
    "boom".to_owned()
}

/// Panics with `message` (default `boom`).
#[trellis_guest::function]
fn panic_with_message(params: Params) -> Result<Value, Error> {
    panic!("{}", params.message)
}
