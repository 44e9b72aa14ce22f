//! Shows the environment sandbox: returns the env vars, args and working directory it can see.

use serde_json::{Map, Value, json};
use trellis_guest::Error;

#[trellis_guest::function]
fn read_env(_params: Value) -> Result<Value, Error> {
    let vars: Map<String, Value> = std::env::vars_os()
        .map(|(key, value)| {
            (
                key.to_string_lossy().into_owned(),
                Value::String(value.to_string_lossy().into_owned()),
            )
        })
        .collect();
    let args: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    // `null` when the function cannot tell; WASI's libc otherwise reports `/`.
    let cwd = std::env::current_dir().ok().map(|dir| dir.display().to_string());
    Ok(json!({ "vars": vars, "args": args, "cwd": cwd }))
}
