//! Shows the memory limit: allocates until allocation fails, which aborts the instance.

use serde::Deserialize;
use serde_json::Value;
use trellis_guest::Error;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    #[serde(default = "one_mib")]
    chunk_bytes: usize,
}

fn one_mib() -> usize {
    1 << 20
}

/// Allocates and touches `chunkBytes` (default 1 MiB) at a time and keeps all of it, forever:
/// the failed allocation at the memory limit aborts, as it would in any Rust program.
#[trellis_guest::function]
fn memory_bomb(params: Params) -> Result<Value, Error> {
    let mut chunks = Vec::new();
    loop {
        // A non-zero fill writes every page, so the memory is really committed rather
        // than left as fresh zeroed pages, and `black_box` keeps the optimizer from
        // dropping allocations that nothing reads.
        let chunk = vec![0xA5_u8; params.chunk_bytes];
        chunks.push(std::hint::black_box(chunk));
    }
}
