//! Shows the output cap: returns a JSON string of `bytes` (default 16 MiB) `x`s.

use serde::Deserialize;
use trellis_guest::Error;

#[derive(Deserialize)]
struct Params {
    #[serde(default = "sixteen_mib")]
    bytes: usize,
}

/// Four times the host's 4 MiB output cap, and small enough that building it never
/// runs into the default 128 MiB memory limit first.
fn sixteen_mib() -> usize {
    16 << 20
}

#[trellis_guest::function]
fn huge_output(params: Params) -> Result<String, Error> {
    Ok("x".repeat(params.bytes))
}
