//! The log filter every Trellis process uses. `RUST_LOG` chooses levels as usual,
//! but dependencies that log whole protocol messages below `warn` are held at
//! `warn` whatever it says: rmcp logs each MCP request and response at debug (a
//! `create_orchestration` call carries plaintext secrets), and a log is not a place
//! for secrets. The cap is a second filter beside `RUST_LOG`'s, so no directive
//! (a target, a module, a span) can lift it.

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// Targets that log message bodies below `warn`.
const MESSAGE_LOGGERS: [&str; 1] = ["rmcp"];

/// `directives` (a `RUST_LOG` value) and the cap on [`MESSAGE_LOGGERS`], both of
/// which an event must pass.
pub fn filter<S>(directives: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let directives = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    directives.and(filter_fn(within_cap))
}

fn within_cap(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    let logs_messages = MESSAGE_LOGGERS.iter().any(|logger| {
        target == *logger
            || target
                .strip_prefix(logger)
                .is_some_and(|rest| rest.starts_with("::"))
    });
    !logs_messages || *metadata.level() <= Level::WARN
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    /// What a subscriber with [`filter`] writes for an rmcp debug event inside a
    /// span, and for one of our own.
    fn logged(directives: &str) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buffer = buffer.clone();
            move || Capture(buffer.clone())
        };
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .with_filter(filter(directives));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::debug_span!("serve_inner");
            let _entered = span.enter();
            tracing::debug!(target: "rmcp::service", "received request SECRET-VALUE");
            tracing::warn!(target: "rmcp::service", "a warning");
            tracing::debug!(target: "trellis::engine", "our own debug line");
        });
        let bytes = buffer.lock().expect("the buffer").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("the buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rmcp_stays_at_warn_whatever_the_directives_say() {
        for asked in [
            "trace",
            "debug,rmcp=trace",
            "rmcp::service=debug",
            "[serve_inner]=debug",
            "[rmcp]=trace",
        ] {
            let log = logged(asked);
            assert!(!log.contains("SECRET-VALUE"), "{asked}: {log}");
        }
        let log = logged("debug");
        assert!(
            log.contains("a warning") && log.contains("our own debug line"),
            "{log}"
        );
    }
}
