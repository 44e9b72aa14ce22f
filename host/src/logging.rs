//! The log filter every Trellis process uses. `RUST_LOG` chooses levels as usual,
//! but dependencies that log whole protocol messages at debug level are held at
//! `warn` whatever it says: rmcp logs each MCP request and response (a
//! `create_orchestration` call carries plaintext secrets), and a log is not a place
//! for secrets.

use tracing_subscriber::EnvFilter;

/// Targets that log message bodies below `warn`.
const MESSAGE_LOGGERS: [&str; 1] = ["rmcp"];

/// `directives` (a `RUST_LOG` value), with [`MESSAGE_LOGGERS`] capped at `warn`.
pub fn filter(directives: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in MESSAGE_LOGGERS {
        filter = filter.add_directive(format!("{target}=warn").parse().expect("a valid directive"));
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmcp_stays_at_warn_even_when_asked_for_more() {
        let text = filter("debug,rmcp=trace").to_string();
        assert!(text.contains("rmcp=warn"), "{text}");
        assert!(!text.contains("rmcp=trace"), "{text}");
    }
}
