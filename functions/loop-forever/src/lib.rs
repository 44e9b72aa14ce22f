//! Shows the wall-clock deadline: spins forever until the host interrupts it.

use serde_json::Value;
use trellis_guest::Error;

#[trellis_guest::function]
fn loop_forever(_params: Value) -> Result<Value, Error> {
    let mut spins = 0u64;
    loop {
        // `black_box` hides the counter from the optimizer, so the loop stays a real
        // loop that burns CPU rather than something it could reason about.
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}
