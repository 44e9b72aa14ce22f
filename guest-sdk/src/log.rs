//! Log lines into the invocation's log record, which the caller gets back as `logs`.
//!
//! ```no_run
//! use trellis_guest::log;
//!
//! # let attempt = 1;
//! log::info!("creating repository (attempt {attempt})");
//! log::warn!("rate limit low: {} requests left", 12);
//! ```
//!
//! The host caps the total size of a log; past the cap lines are dropped and the log
//! says so. Writing never fails. Log lines are stored and shown to whoever can read
//! the invocation, so never log a secret.
//!
//! Records of the [`log`](https://docs.rs/log) facade, which many libraries log
//! through, land in the same log at their own level: the SDK installs a logger that
//! forwards them before it calls the function. Every level is forwarded; to quiet a
//! chatty dependency, lower the limit with `log::set_max_level` at the start of the
//! function, or at compile time with the `log` crate's `max_level_*` features.
//!
//! On a native target, where there is no host (unit tests of a handler), lines go to
//! standard error instead.

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Step-by-step detail.
    Trace,
    /// Detail useful while developing a function.
    Debug,
    /// What the function did.
    Info,
    /// Something unexpected that the function recovered from.
    Warn,
    /// Something that failed.
    Error,
}

/// Appends one line to the invocation's log. The macros ([`info!`] and friends) call
/// this with a formatted message.
pub fn write(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::__private::bindings::trellis::function::log;
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::write(level, message);
    }
    // The generated import only exists on wasm32; elsewhere it would panic.
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?} {message}");
}

/// Sends the `log` facade's records to [`write`].
struct Facade;

impl ::log::Log for Facade {
    fn enabled(&self, _: &::log::Metadata<'_>) -> bool {
        // The facade's max level (see `install_facade`) is the one filter.
        true
    }

    fn log(&self, record: &::log::Record<'_>) {
        let level = match record.level() {
            ::log::Level::Trace => Level::Trace,
            ::log::Level::Debug => Level::Debug,
            ::log::Level::Info => Level::Info,
            ::log::Level::Warn => Level::Warn,
            ::log::Level::Error => Level::Error,
        };
        write(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Makes [`Facade`] the `log` crate's logger, letting every level through. Called
/// before each handler runs; the `log` crate takes one logger per instance, so a
/// second call changes nothing.
pub(crate) fn install_facade() {
    static FACADE: Facade = Facade;
    if ::log::set_logger(&FACADE).is_ok() {
        ::log::set_max_level(::log::LevelFilter::Trace);
    }
}

// `#[macro_export]` puts a macro at the crate root under its own name, so the macros are
// exported under hidden names and re-exported here: `trellis_guest::log::info!` is then
// the one path a function author sees.

#[doc(hidden)]
#[macro_export]
macro_rules! __trellis_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

/// Logs a line at [`Level::Trace`]; takes the same arguments as [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __trellis_log_trace {
    ($($arg:tt)+) => { $crate::__trellis_log!(Trace, $($arg)+) };
}

/// Logs a line at [`Level::Debug`]; takes the same arguments as [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __trellis_log_debug {
    ($($arg:tt)+) => { $crate::__trellis_log!(Debug, $($arg)+) };
}

/// Logs a line at [`Level::Info`]; takes the same arguments as [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __trellis_log_info {
    ($($arg:tt)+) => { $crate::__trellis_log!(Info, $($arg)+) };
}

/// Logs a line at [`Level::Warn`]; takes the same arguments as [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __trellis_log_warn {
    ($($arg:tt)+) => { $crate::__trellis_log!(Warn, $($arg)+) };
}

/// Logs a line at [`Level::Error`]; takes the same arguments as [`format!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __trellis_log_error {
    ($($arg:tt)+) => { $crate::__trellis_log!(Error, $($arg)+) };
}

#[doc(inline)]
pub use crate::__trellis_log_debug as debug;
#[doc(inline)]
pub use crate::__trellis_log_error as error;
#[doc(inline)]
pub use crate::__trellis_log_info as info;
#[doc(inline)]
pub use crate::__trellis_log_trace as trace;
#[doc(inline)]
pub use crate::__trellis_log_warn as warn;
