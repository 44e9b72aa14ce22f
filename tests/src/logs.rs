//! Captures every log line the process writes at DEBUG and above, so a test can prove
//! that a secret never reaches one. One capture per test binary (tracing has one
//! global subscriber); each test searches for its own secrets.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static CAPTURED: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn buffer() -> &'static Mutex<Vec<u8>> {
    CAPTURED.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        buffer()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per process; later calls do nothing),
/// with the filter the server itself uses.
pub fn capture() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(|| Capture)
        .with_filter(trellis::logging::filter("debug"));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Everything logged so far in this process.
pub fn captured() -> String {
    String::from_utf8_lossy(&buffer().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Asserts that the capture holds a line with every one of `parts`: a line the
/// calling test is known to have caused at DEBUG (a function's own log line with its
/// step's idempotency key, a request's `finished processing request`). A search of
/// the capture for a secret proves nothing unless this holds first: an empty or
/// broken capture fails here instead of passing the search.
pub fn assert_captured(parts: &[&str]) {
    let captured = captured();
    assert!(
        captured
            .lines()
            .any(|line| parts.iter().all(|part| line.contains(part))),
        "the debug log holds no line with all of {parts:?}: the capture is not working \
         ({} bytes captured)",
        captured.len()
    );
}
