//! The log filter every Trellis process uses. `RUST_LOG` chooses levels as usual,
//! but dependencies that log whole protocol messages at debug level are held at
//! `warn` whatever it says: rmcp logs each MCP request and response (a
//! `create_orchestration` call carries plaintext secrets), and a log is not a place
//! for secrets.

use tracing_subscriber::EnvFilter;

/// Targets that log message bodies below `warn`.
const MESSAGE_LOGGERS: [&str; 1] = ["rmcp"];

/// `directives` (a `RUST_LOG` value), with [`MESSAGE_LOGGERS`] capped at `warn`:
/// any directive naming one of them or a module inside it is dropped first, since a
/// more specific target (`rmcp::service=debug`) would win over the cap.
pub fn filter(directives: &str) -> EnvFilter {
    let kept: Vec<&str> = directives
        .split(',')
        .filter(|directive| {
            let target = directive.trim().trim_start_matches('[');
            !MESSAGE_LOGGERS.iter().any(|logger| target.starts_with(logger))
        })
        .collect();
    let mut filter = EnvFilter::try_new(kept.join(",")).unwrap_or_else(|_| EnvFilter::new("info"));
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
        for asked in [
            "debug,rmcp=trace",
            "info,rmcp::service=debug",
            "rmcp::transport=trace,debug",
        ] {
            let text = filter(asked).to_string();
            assert!(text.contains("rmcp=warn"), "{asked}: {text}");
            assert!(
                !text.contains("rmcp=trace") && !text.contains("rmcp::"),
                "{asked}: {text}"
            );
            assert!(
                text.contains("debug") || text.contains("info"),
                "{asked}: other directives kept: {text}"
            );
        }
    }
}
