//! Write a Trellis function as an ordinary Rust function.
//!
//! A function takes the caller's JSON params (its `triggerParams`) as any type that
//! implements [`serde::Deserialize`] and returns `Result<U, E>`, where `U` implements
//! [`serde::Serialize`] and `E` converts into [`Error`]. The [`function`] attribute turns
//! it into the `handler` export of the `trellis:function` component world:
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use trellis_guest::{log, Error, Invocation};
//!
//! #[derive(Deserialize)]
//! struct Params {
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Greeting {
//!     message: String,
//! }
//!
//! #[trellis_guest::function]
//! fn greet(params: Params, invocation: &Invocation) -> Result<Greeting, Error> {
//!     if params.name.is_empty() {
//!         return Err(Error::invalid_params("name must not be empty"));
//!     }
//!     log::info!("greeting on attempt {}", invocation.attempt);
//!     Ok(Greeting {
//!         message: format!("Hello, {}!", params.name),
//!     })
//! }
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2`; the output is a component ready to upload.
//! The crate's README walks through writing, building, uploading and invoking.

#![deny(missing_docs)]

mod error;
pub mod http;
mod invocation;
pub mod log;

pub use error::Error;
pub use invocation::Invocation;

/// Turns a function into the component's `handler` export.
///
/// Two signatures are accepted:
///
/// ```text
/// #[trellis_guest::function]
/// fn handler(params: T) -> Result<U, E>
///
/// #[trellis_guest::function]
/// fn handler(params: T, invocation: &trellis_guest::Invocation) -> Result<U, E>
/// ```
///
/// with `T: serde::de::DeserializeOwned`, `U: serde::Serialize` and
/// `E: Into<trellis_guest::Error>`; `serde_json::Value` works for both `T` and `U`. The
/// function stays callable as written, so unit tests can call it directly.
///
/// - Params that do not deserialize into `T` become the error `invalid_params` (not
///   retryable), whose message names what was expected and where, never the value.
/// - Output that fails to serialize becomes the error `invalid_output`.
/// - A panic traps the component; its message is first written to the log at level
///   error, prefixed `panic: `, so the caller can see why.
///
/// Use it once per crate: a component has one `handler`. The expansion refers to this
/// crate as `::trellis_guest`, so depend on it under that name.
pub use trellis_guest_macros::function;

/// What the [`function`] expansion calls. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    use std::sync::Once;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::error::describe_json_error;
    use crate::log::{self, Level};
    use crate::{Error, Invocation};

    /// Bindings for the `trellis:function` world, generated from the crate's own copy
    /// of the repository's `wit/` (a test keeps the two identical), so the crate
    /// builds without the rest of the repository.
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "function",
            // The `#[function]` expansion invokes the export macro from the author's
            // crate, so it must be exported and must find the bindings through an
            // absolute path rather than `self`.
            pub_export_macro: true,
            default_bindings_module: "::trellis_guest::__private::bindings",
        });
    }

    pub use bindings::export;
    pub use bindings::exports::trellis::function::handler::{
        FunctionError, Guest, Invocation as WitInvocation,
    };

    /// What a handler may return. Sealed by living here.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a valid return type for a Trellis function",
        label = "expected `Result<U, E>` with `U: serde::Serialize` and `E: Into<trellis_guest::Error>`"
    )]
    pub trait Outcome {
        /// The JSON text of the output, or the error to report.
        fn into_output(self) -> Result<String, Error>;
    }

    impl<U: Serialize, E: Into<Error>> Outcome for Result<U, E> {
        fn into_output(self) -> Result<String, Error> {
            let output = self.map_err(Into::into)?;
            serde_json::to_string(&output).map_err(|err| {
                Error::new(
                    "invalid_output",
                    format!("output is not valid JSON: {}", describe_json_error(&err)),
                )
            })
        }
    }

    /// The body of the generated `Guest::handle`: parse the params, call the author's
    /// function, serialize what it returns.
    pub fn run<T, R, F>(
        invocation: WitInvocation,
        params: String,
        handler: F,
    ) -> Result<String, FunctionError>
    where
        T: DeserializeOwned,
        R: Outcome,
        F: FnOnce(T, &Invocation) -> R,
    {
        install_panic_hook();
        log::install_facade();
        let invocation = Invocation {
            function_id: invocation.function_id,
            run_id: invocation.run_id,
            step_id: invocation.step_id,
            attempt: invocation.attempt,
            idempotency_key: invocation.idempotency_key,
        };
        let output = match serde_json::from_str(&params) {
            Ok(params) => handler(params, &invocation).into_output(),
            Err(err) => Err(Error::invalid_params(format!(
                "invalid params: {}",
                describe_json_error(&err)
            ))),
        };
        output.map_err(|err| FunctionError {
            code: err.code,
            message: err.message,
            retryable: err.retryable,
        })
    }

    /// Sends panic messages to the log import. A panic aborts the instance (Rust's wasm
    /// targets have no unwinding), so the host only sees a trap; the log line is the one
    /// place the reason survives. The default hook would print to stderr, which the
    /// sandbox does not keep.
    fn install_panic_hook() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = info.payload_as_str().unwrap_or("non-string panic payload");
                let line = match info.location() {
                    Some(location) => format!("panic: {message} (at {location})"),
                    None => format!("panic: {message}"),
                };
                log::write(Level::Error, &line);
            }));
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{Value, json};

    use super::__private::{WitInvocation, run};
    use super::{Error, Invocation};

    fn invocation() -> WitInvocation {
        WitInvocation {
            function_id: "fn-test".to_owned(),
            run_id: Some("run-1".to_owned()),
            step_id: Some("step-1".to_owned()),
            attempt: 2,
            idempotency_key: "key-1".to_owned(),
        }
    }

    #[test]
    fn params_and_invocation_reach_the_handler_and_the_output_is_json() {
        let output = run(
            invocation(),
            r#"{"a": 1}"#.to_owned(),
            |params: Value, invocation: &Invocation| {
                Ok::<_, Error>(json!({ "params": params, "invocation": format!("{invocation:?}") }))
            },
        )
        .expect("handler succeeds");
        let output: Value = serde_json::from_str(&output).expect("output is JSON");
        assert_eq!(output["params"], json!({ "a": 1 }));
        let facts = output["invocation"].as_str().expect("a string");
        for fact in ["fn-test", "run-1", "step-1", "attempt: 2", "key-1"] {
            assert!(facts.contains(fact), "{facts}");
        }
    }

    #[test]
    fn params_that_do_not_fit_are_invalid_params_without_the_value() {
        let err = run(
            invocation(),
            r#"{"n": "hunter2"}"#.to_owned(),
            |params: HashMap<String, u32>, _| Ok::<_, Error>(params),
        )
        .expect_err("params do not fit");
        assert_eq!(err.code, "invalid_params");
        assert!(!err.retryable);
        assert_eq!(
            err.message,
            "invalid params: invalid type, expected u32 at line 1 column 15"
        );
    }

    #[test]
    fn a_handler_error_is_passed_through() {
        let err = run(invocation(), "{}".to_owned(), |_: Value, _| {
            Err::<Value, _>(Error::retryable("upstream_down", "GitHub answered 503"))
        })
        .expect_err("handler fails");
        assert_eq!(
            (err.code.as_str(), err.message.as_str(), err.retryable),
            ("upstream_down", "GitHub answered 503", true)
        );
    }

    #[test]
    fn a_handler_may_return_anyhow_errors() {
        let err = run(invocation(), "{}".to_owned(), |_: Value, _| {
            Err::<Value, _>(anyhow::anyhow!("no luck"))
        })
        .expect_err("handler fails");
        assert_eq!(
            (err.code.as_str(), err.message.as_str(), err.retryable),
            ("function_error", "no luck", false)
        );
    }

    #[test]
    fn output_that_is_not_json_is_invalid_output() {
        let err = run(invocation(), "{}".to_owned(), |_: Value, _| {
            Ok::<_, Error>(HashMap::from([(vec![1_u8], 1_u8)]))
        })
        .expect_err("a map with non-string keys is not JSON");
        assert_eq!(err.code, "invalid_output");
        assert_eq!(err.message, "output is not valid JSON: key must be a string");
    }
}
