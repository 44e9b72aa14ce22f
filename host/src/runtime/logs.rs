//! What a function says while it runs: entries from the `log` import and lines it
//! writes to stdout/stderr, in order, under one byte cap. Past the cap entries are
//! dropped and counted; the guest never sees an error, so a chatty function still
//! finishes, and the record says how much was cut.

use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Total bytes of log text kept per invocation. It travels back in the invoke
/// response and, for orchestrations, into the run record, so it stays small.
pub const MAX_LOG_BYTES: usize = 256 << 10;

/// What ends a line that was cut at [`MAX_LINE_BYTES`].
pub const LINE_TRUNCATED: &str = " …[line truncated]";

/// A single line longer than this is cut, so one runaway line cannot take the
/// whole budget.
const MAX_LINE_BYTES: usize = 16 << 10;

/// What each entry costs against the budget besides its text: about its JSON
/// framing and its size in memory, so a flood of empty lines is capped too.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// Room kept for the panic message that explains a trap, even after a flood.
const PANIC_RESERVE_BYTES: usize = MAX_LINE_BYTES + ENTRY_OVERHEAD_BYTES;

pub use trellis_types::{LogEntry, LogLevel as Level, LogSource as Source};

/// The most recent panic message the guest SDK logged, to explain a trap.
pub fn panic_message(entries: &[LogEntry]) -> Option<&str> {
    entries
        .iter()
        .rev()
        .find(|entry| entry.level == Level::Error && entry.source == Source::Log)
        .and_then(|entry| entry.message.strip_prefix("panic: "))
}

/// Shared between the store's host functions and its stdout/stderr streams.
#[derive(Clone, Default)]
pub struct LogCollector(Arc<Mutex<Collected>>);

#[derive(Default)]
struct Collected {
    entries: Vec<LogEntry>,
    bytes: usize,
    dropped_entries: u64,
    dropped_bytes: u64,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
    /// The stream's current line was cut at the cap: the rest of it, up to the next
    /// newline, is dropped rather than becoming an entry of its own (which would
    /// carry the end of whatever the cut split, a secret's included).
    skipping_stdout: bool,
    skipping_stderr: bool,
}

impl LogCollector {
    fn lock(&self) -> MutexGuard<'_, Collected> {
        // A poisoned lock only means another thread panicked mid-append; the entries
        // are still valid text.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn push(&self, level: Level, source: Source, message: String) {
        self.lock().push(level, source, message);
    }

    fn write_stream(&self, source: Source, bytes: &[u8]) {
        let mut collected = self.lock();
        let mut bytes = bytes;
        if *collected.skipping(source) {
            match bytes.iter().position(|&b| b == b'\n') {
                None => return,
                Some(newline) => {
                    bytes = &bytes[newline + 1..];
                    *collected.skipping(source) = false;
                }
            }
        }
        let mut pending = std::mem::take(collected.partial(source));
        pending.extend_from_slice(bytes);
        let mut rest = pending.as_slice();
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            collected.push_line(source, &rest[..newline]);
            rest = &rest[newline + 1..];
        }
        // An unterminated line waits for its end, but never grows past one line's cap.
        if rest.len() > MAX_LINE_BYTES {
            collected.push_line(source, rest);
            rest = &[];
            *collected.skipping(source) = true;
        }
        *collected.partial(source) = rest.to_vec();
    }

    /// The entries in order, with any unterminated stdout/stderr line flushed and a
    /// closing notice when something was dropped.
    pub fn finish(&self) -> Vec<LogEntry> {
        let mut collected = self.lock();
        for source in [Source::Stdout, Source::Stderr] {
            let rest = std::mem::take(collected.partial(source));
            if !rest.is_empty() {
                collected.push_line(source, &rest);
            }
        }
        let mut entries = std::mem::take(&mut collected.entries);
        if collected.dropped_entries > 0 {
            entries.push(LogEntry {
                level: Level::Warn,
                source: Source::Host,
                message: format!(
                    "log truncated: {} more entries ({} bytes) dropped; the cap is {} bytes per invocation",
                    collected.dropped_entries, collected.dropped_bytes, MAX_LOG_BYTES
                ),
            });
        }
        entries
    }

    pub fn stream(&self, source: Source) -> CapturedStream {
        CapturedStream {
            logs: self.clone(),
            source,
        }
    }
}

impl Collected {
    fn skipping(&mut self, source: Source) -> &mut bool {
        match source {
            Source::Stderr => &mut self.skipping_stderr,
            _ => &mut self.skipping_stdout,
        }
    }

    fn partial(&mut self, source: Source) -> &mut Vec<u8> {
        match source {
            Source::Stderr => &mut self.partial_stderr,
            _ => &mut self.partial_stdout,
        }
    }

    fn push_line(&mut self, source: Source, line: &[u8]) {
        let level = if source == Source::Stderr {
            Level::Warn
        } else {
            Level::Info
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.push(level, source, String::from_utf8_lossy(line).into_owned());
    }

    fn push(&mut self, level: Level, source: Source, mut message: String) {
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(LINE_TRUNCATED);
        }
        let cost = message.len() + ENTRY_OVERHEAD_BYTES;
        // Once anything is dropped, everything after is too, so the record has no
        // holes; except the SDK's panic line, which explains a trap and gets its own
        // reserve.
        let is_panic = level == Level::Error && source == Source::Log && message.starts_with("panic: ");
        let budget = if is_panic {
            MAX_LOG_BYTES + PANIC_RESERVE_BYTES
        } else {
            MAX_LOG_BYTES
        };
        if (self.dropped_entries > 0 && !is_panic) || self.bytes + cost > budget {
            self.dropped_entries += 1;
            self.dropped_bytes += message.len() as u64;
            return;
        }
        self.bytes += cost;
        self.entries.push(LogEntry {
            level,
            source,
            message,
        });
    }
}

/// The guest's stdout or stderr. Writes always succeed, so hitting the cap never
/// traps the guest.
pub struct CapturedStream {
    logs: LogCollector,
    source: Source,
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(CapturedStream {
            logs: self.logs.clone(),
            source: self.source,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(CapturedStream {
            logs: self.logs.clone(),
            source: self.source,
        })
    }
}

/// How much the guest may write in one call; it loops for more.
const WRITE_PERMIT: usize = 64 << 10;

impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.logs.write_stream(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.logs.write_stream(self.source, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_a_cut_line_is_dropped_not_logged_on_its_own() {
        let logs = LogCollector::default();
        logs.write_stream(Source::Stdout, &vec![b'a'; MAX_LINE_BYTES + 10]);
        logs.write_stream(Source::Stdout, b"secret-tail still the same line");
        logs.write_stream(Source::Stdout, b" and more\nnext line\n");
        let entries = logs.finish();
        let messages: Vec<_> = entries.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages.len(),
            2,
            "{:?}",
            messages.iter().map(|m| m.len()).collect::<Vec<_>>()
        );
        assert!(messages[0].ends_with(LINE_TRUNCATED));
        assert_eq!(messages[1], "next line");
    }

    #[test]
    fn stdout_is_split_into_lines_in_order_with_log_entries() {
        let logs = LogCollector::default();
        logs.write_stream(Source::Stdout, b"hel");
        logs.push(Level::Info, Source::Log, "between".into());
        logs.write_stream(Source::Stdout, b"lo\nworld");
        let entries = logs.finish();
        let messages: Vec<_> = entries.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["between", "hello", "world"]);
        assert_eq!(entries[1].source, Source::Stdout);
    }

    #[test]
    fn past_the_cap_entries_are_dropped_and_counted() {
        let logs = LogCollector::default();
        let line = "x".repeat(1000);
        for _ in 0..1000 {
            logs.push(Level::Info, Source::Log, line.clone());
        }
        let entries = logs.finish();
        let kept: usize = entries.iter().filter(|e| e.source == Source::Log).count();
        assert_eq!(kept, MAX_LOG_BYTES / (1000 + ENTRY_OVERHEAD_BYTES));
        let notice = entries.last().expect("a truncation notice");
        assert_eq!(notice.source, Source::Host);
        assert!(notice.message.contains(&format!("{} more entries", 1000 - kept)));
    }

    #[test]
    fn empty_lines_cannot_flood_past_the_cap() {
        let logs = LogCollector::default();
        logs.write_stream(Source::Stdout, &vec![b'\n'; 1 << 20]);
        let entries = logs.finish();
        assert!(
            entries.len() <= MAX_LOG_BYTES / ENTRY_OVERHEAD_BYTES + 1,
            "{} entries",
            entries.len()
        );
    }

    #[test]
    fn after_a_drop_nothing_but_a_panic_is_kept() {
        let logs = LogCollector::default();
        for _ in 0..30 {
            logs.push(Level::Info, Source::Log, "x".repeat(10_000));
        }
        logs.push(Level::Info, Source::Log, "small".into());
        logs.push(Level::Error, Source::Log, "panic: boom".into());
        let entries = logs.finish();
        let kept_lines = MAX_LOG_BYTES / (10_000 + ENTRY_OVERHEAD_BYTES);
        assert_eq!(
            entries.len(),
            kept_lines + 2,
            "the lines that fit, the panic, the notice"
        );
        assert!(
            entries.iter().all(|e| e.message != "small"),
            "nothing after a drop"
        );
        assert_eq!(entries[kept_lines].message, "panic: boom");
        let dropped = 30 - kept_lines + 1;
        assert!(
            entries[kept_lines + 1]
                .message
                .contains(&format!("{dropped} more entries"))
        );
        assert_eq!(panic_message(&entries), Some("boom"));
    }

    #[test]
    fn an_endless_line_is_cut() {
        let logs = LogCollector::default();
        logs.write_stream(Source::Stderr, &vec![b'y'; MAX_LINE_BYTES * 3]);
        let entries = logs.finish();
        assert!(entries.iter().all(|e| e.message.len() <= MAX_LINE_BYTES + 32));
        assert_eq!(entries[0].level, Level::Warn);
    }
}
