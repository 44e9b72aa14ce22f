//! Shows that unbounded recursion traps on the wasm stack limit without hurting the host.

use std::hint::black_box;

use serde::{Deserialize, Serialize};
use trellis_guest::Error;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    max_depth: Option<u64>,
}

#[derive(Serialize)]
struct Reached {
    depth: u64,
}

/// Recurses without end, or to `maxDepth` if given, then returns `{ "depth": <maxDepth> }`.
#[trellis_guest::function]
fn deep_recursion(params: Params) -> Result<Reached, Error> {
    let max_depth = params.max_depth.unwrap_or(u64::MAX);
    Ok(Reached {
        depth: descend(0, max_depth),
    })
}

/// Not a tail call: the result passes through `black_box` after the recursive call
/// returns, so every level keeps its frame and the optimizer can neither turn the
/// recursion into a loop nor see through the depth.
///
/// Nothing is kept in a stack array on purpose. Such locals live on Rust's shadow stack
/// in linear memory, whose overflow shows up as an out-of-bounds memory access; with
/// only scalars, it is the wasm call stack that runs out, a trap the host reports as a
/// stack overflow.
fn descend(depth: u64, max_depth: u64) -> u64 {
    if depth == max_depth {
        return depth;
    }
    black_box(descend(black_box(depth + 1), max_depth))
}
