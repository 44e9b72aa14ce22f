//! Shows the smallest possible function: returns its triggerParams unchanged.

use serde_json::Value;
use trellis_guest::Error;

#[trellis_guest::function]
fn echo(params: Value) -> Result<Value, Error> {
    Ok(params)
}
