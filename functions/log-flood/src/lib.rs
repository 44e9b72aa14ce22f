//! Shows the log cap: prints `print`, floods the log import, stdout and stderr, then
//! returns `{ "done": true }`.

use std::io::Write;

use serde::Deserialize;
use serde_json::{Value, json};
use trellis_guest::{Error, log};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    #[serde(default = "default_count")]
    count: u64,
    #[serde(default = "one_mib")]
    stdout_bytes: usize,
    /// Printed to stdout first, as is (a multi-line value arrives line by line).
    #[serde(default)]
    print: String,
}

fn default_count() -> u64 {
    100_000
}

fn one_mib() -> usize {
    1 << 20
}

/// With the 10-character line number and a space, each line is 100 bytes.
const FILLER: &str =
    "the quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly...";

/// Prints `print`, writes `count` log lines of 100 bytes, then `stdoutBytes` to each
/// of stdout and stderr.
#[trellis_guest::function]
fn log_flood(params: Params) -> Result<Value, Error> {
    if !params.print.is_empty() {
        println!("{}", params.print);
    }
    for line in 0..params.count {
        log::info!("{line:>10} {FILLER}");
    }
    flood(std::io::stdout().lock(), params.stdout_bytes);
    flood(std::io::stderr().lock(), params.stdout_bytes);
    Ok(json!({ "done": true }))
}

/// Writes `bytes` bytes of 80-character lines.
fn flood(mut stream: impl Write, bytes: usize) {
    let line = [b"o".repeat(79), b"\n".to_vec()].concat();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(line.len());
        // A host may refuse or close these streams; a fixture that measures how the host
        // copes with the flood has nothing to report if it does, so stop quietly.
        if stream.write_all(&line[..n]).is_err() {
            return;
        }
        left -= n;
    }
    // Same reason as above: a failed flush means the host refused the bytes.
    let _ = stream.flush();
}
