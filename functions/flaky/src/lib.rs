//! Shows retries and idempotency keys: optionally sleeps `sleepMs`, fails with a
//! retryable error until the attempt named by `succeedOnAttempt`, then returns its
//! invocation facts. Every call logs its
//! idempotency key and attempt, which the crash tests use as the function's own record
//! of what ran.

use serde::{Deserialize, Serialize};
use trellis_guest::{Error, Invocation, log};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    /// The first attempt that succeeds; 1 (the default) succeeds at once.
    #[serde(default = "first")]
    succeed_on_attempt: u32,
    /// Fail with a permanent (non-retryable) error instead.
    #[serde(default)]
    fail_permanently: bool,
    /// Sleep this long first, to stand in for real work.
    #[serde(default)]
    sleep_ms: u64,
}

fn first() -> u32 {
    1
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Facts {
    run_id: Option<String>,
    step_id: Option<String>,
    attempt: u32,
    idempotency_key: String,
}

#[trellis_guest::function]
fn flaky(params: Params, invocation: &Invocation) -> Result<Facts, Error> {
    log::info!(
        "invoked key={} attempt={}",
        invocation.idempotency_key,
        invocation.attempt
    );
    std::thread::sleep(std::time::Duration::from_millis(params.sleep_ms));
    if params.fail_permanently {
        return Err(Error::new("permanent_failure", "this step is told to fail"));
    }
    if invocation.attempt < params.succeed_on_attempt {
        return Err(Error::retryable(
            "not_yet",
            format!(
                "attempt {} fails; attempt {} will succeed",
                invocation.attempt, params.succeed_on_attempt
            ),
        ));
    }
    Ok(Facts {
        run_id: invocation.run_id.clone(),
        step_id: invocation.step_id.clone(),
        attempt: invocation.attempt,
        idempotency_key: invocation.idempotency_key.clone(),
    })
}
