//! Shows that the `log` facade reaches the invocation's logs: `library` stands for any
//! dependency that logs through the `log` crate and knows nothing of Trellis. It
//! writes one record per level about `subject`, each of which arrives at its level,
//! then the function returns `{ "subject": subject }`.

use serde::Deserialize;
use serde_json::{Value, json};
use trellis_guest::Error;

#[derive(Deserialize)]
struct Params {
    subject: String,
}

/// What a dependency does: log through the facade, never through `trellis_guest`.
mod library {
    pub fn work(subject: &str) {
        log::trace!("tracing {subject}");
        log::debug!("debugging {subject}");
        log::info!("working on {subject}");
        log::warn!("{subject} looks odd");
        log::error!("{subject} went wrong");
    }
}

#[trellis_guest::function]
fn log_facade(params: Params) -> Result<Value, Error> {
    library::work(&params.subject);
    Ok(json!({ "subject": params.subject }))
}
