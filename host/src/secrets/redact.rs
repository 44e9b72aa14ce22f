//! Replacing decrypted values that a function echoes (in its output, logs or error)
//! with `********` before anything is stored or returned (docs/architecture.md#secrets).
//!
//! This guards against accidental echo: a function that prints its input, an HTTP
//! client that logs an `Authorization` header, an error that quotes a request. It is
//! not a defence against a function that means to leak a value it was given: any
//! encoding not listed below (reversed, hex, split, line-wrapped base64, encrypted…)
//! passes through.

use super::seal::MASK;
use super::secret::SecretString;
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Values shorter than this are not redacted: masking every `"yes"` or `"42"` in an
/// output would mangle ordinary text and hide nothing worth hiding.
pub const MIN_SECRET_BYTES: usize = 4;

/// Shortest line of a multi-line value matched on its own.
const MIN_LINE_BYTES: usize = 8;

/// Shortest base64 run matched for a value embedded in a larger base64 text (see
/// [`base64_forms`]): 8 characters are 48 bits, which ordinary text or an unrelated
/// blob matches by chance about once in 2^48 positions.
const MIN_EMBEDDED_BASE64_CHARS: usize = 8;

/// Replaces the decrypted values of one step execution, and the forms they take when
/// a function passes them on, with `********`.
///
/// For each value of at least [`MIN_SECRET_BYTES`] bytes (shorter values are left
/// alone) it finds:
/// - the value itself;
/// - its JSON-escaped form, as serde_json writes it (quotes, backslashes, control
///   characters) and as ASCII-only writers do (`\u00e9`, surrogate pairs);
/// - its base64: standard and URL-safe alphabets, padded and unpadded, and the run of
///   characters that encodes only the value when it is part of a larger encoded text
///   (`Basic base64(user:token)`), at each of the three byte alignments;
/// - its percent-encoded forms: RFC 3986 (upper- and lowercase hex), form encoding
///   (space as `+`), `encodeURIComponent`, and Python's `quote` (which keeps `/`).
///
/// Every byte covered by any match is masked, so a value that contains or overlaps
/// another leaves no part of either visible; overlapping matches become one mask.
pub struct Redactor {
    matcher: Matcher,
}

enum Matcher {
    /// No value long enough to redact.
    Nothing,
    Patterns {
        automaton: AhoCorasick,
        count: usize,
        /// The longest pattern, in bytes.
        longest: usize,
    },
    /// The automaton could not be built (it cannot be for values under the 64 KiB
    /// cap, but a redactor must not fail open): everything is masked.
    Everything,
}

impl Redactor {
    /// Builds the matcher. The automaton keeps its own copies of the patterns, which
    /// cannot be wiped; drop the redactor when the step execution ends.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Redactor {
        let mut patterns = Zeroizing::new(Vec::new());
        for secret in secrets {
            let value = secret.expose();
            if value.len() >= MIN_SECRET_BYTES {
                forms(value, &mut patterns);
            }
            // A multi-line value (a PEM key) printed to stdout reaches the logs one
            // line per entry: each line is a value of its own.
            // Lines are trimmed, and short ones skipped: a pretty-printed JSON secret
            // has lines such as `},` that would otherwise mask ordinary output.
            if value.contains('\n') {
                for line in value.lines().map(str::trim) {
                    if line.len() >= MIN_LINE_BYTES {
                        forms(line, &mut patterns);
                    }
                }
            }
        }
        patterns.sort_unstable();
        patterns.dedup_by(|later, earlier| {
            let same = later == earlier;
            if same {
                later.zeroize();
            }
            same
        });
        if patterns.is_empty() {
            return Redactor {
                matcher: Matcher::Nothing,
            };
        }
        // Standard semantics report every match, overlapping ones included, which the
        // masking needs (leftmost-longest would leave the tail of an overlapping value).
        // A redactor is built for every step execution: a DFA took 5x longer to build
        // (600 µs against 110 µs for 10 values) and searched no faster, since the
        // prefilter does most of the work on text that holds no value.
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        let matcher = match AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns.iter())
        {
            Ok(automaton) => Matcher::Patterns {
                automaton,
                count: patterns.len(),
                longest,
            },
            Err(_) => Matcher::Everything,
        };
        Redactor { matcher }
    }

    /// Whether there is nothing to redact (no value of at least [`MIN_SECRET_BYTES`]).
    pub fn is_empty(&self) -> bool {
        matches!(self.matcher, Matcher::Nothing)
    }

    /// `text` with every match replaced; borrowed when nothing matched.
    pub fn redact_str<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let automaton = match &self.matcher {
            Matcher::Nothing => return Cow::Borrowed(text),
            Matcher::Everything if text.is_empty() => return Cow::Borrowed(text),
            Matcher::Everything => return Cow::Owned(MASK.to_owned()),
            Matcher::Patterns { automaton, .. } => automaton,
        };
        // Overlapping matches arrive in order of their end, never decreasing. Merging
        // each into the stack of disjoint spans as it arrives keeps the stack sorted
        // and small (a run of "aaaa…" for the value "aaaa" stays one span).
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for found in automaton.find_overlapping_iter(text) {
            let (mut start, end) = (found.start(), found.end());
            while let Some(&(last_start, last_end)) = spans.last() {
                if last_end <= start {
                    break;
                }
                start = start.min(last_start);
                spans.pop();
            }
            spans.push((start, end));
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in spans {
            // Patterns are valid UTF-8, so matches in valid UTF-8 start and end on
            // character boundaries.
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
            copied = end;
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// As [`Redactor::redact_str`], for text with cuts in it: each of `markers`
    /// follows text that was cut short, and a value cut in two by the cut no longer
    /// matches, so the tail before each marker that could hold its beginning (as long
    /// as the longest pattern, less one byte) is masked as well.
    pub fn redact_cut(&self, text: &str, markers: &[&str]) -> String {
        let Matcher::Patterns { longest, .. } = &self.matcher else {
            return self.redact_str(text).into_owned();
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        loop {
            let next = markers
                .iter()
                .filter_map(|marker| rest.find(marker).map(|at| (at, *marker)))
                .min_by_key(|(at, _)| *at);
            let Some((at, marker)) = next else {
                out.push_str(&self.redact_str(rest));
                return out;
            };
            let mut cut = self.redact_str(&rest[..at]).into_owned();
            let mut keep = cut.len().saturating_sub(longest.saturating_sub(1));
            while !cut.is_char_boundary(keep) {
                keep -= 1;
            }
            cut.truncate(keep);
            cut.push_str(MASK);
            out.push_str(&cut);
            out.push_str(marker);
            rest = &rest[at + marker.len()..];
        }
    }

    /// Walks a JSON value and redacts every string, object keys too. A number whose
    /// text contains a value (an app id such as `12345` echoed as a number) becomes a
    /// masked string. Returns whether anything changed.
    ///
    /// Two keys that redact to the same text collapse into one (the later wins).
    pub fn redact_json(&self, value: &mut Value) -> bool {
        if self.is_empty() {
            return false;
        }
        match value {
            Value::String(text) => match self.redact_str(text) {
                Cow::Owned(redacted) => {
                    *text = redacted;
                    true
                }
                Cow::Borrowed(_) => false,
            },
            Value::Number(number) => match self.redact_str(&number.to_string()) {
                Cow::Owned(redacted) => {
                    *value = Value::String(redacted);
                    true
                }
                Cow::Borrowed(_) => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.redact_json(item) | changed),
            Value::Object(map) => {
                let mut changed = map
                    .values_mut()
                    .fold(false, |changed, item| self.redact_json(item) | changed);
                if map.keys().any(|key| self.is_match(key)) {
                    let entries = std::mem::take(map);
                    for (key, item) in entries {
                        map.insert(self.redact_str(&key).into_owned(), item);
                    }
                    changed = true;
                }
                changed
            }
            Value::Null | Value::Bool(_) => false,
        }
    }

    /// Redacts function output that travels as JSON text: parses it, redacts its
    /// strings, and re-serializes only if something changed (then compactly, keys in
    /// serde_json's order). Text that is not valid JSON is redacted as text.
    pub fn redact_json_text(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        // Fast path, which skips parsing. Without `\u` and `\/`, the only escapes JSON
        // text can hold are serde_json's own (`\"`, `\\`, `\n`, ...), which escape
        // character by character: a string holding a value then shows the value's
        // escaped form, which is a pattern. So no match means nothing to redact.
        if !self.is_match(text) && !text.contains("\\u") && !text.contains("\\/") {
            return text.to_owned();
        }
        match serde_json::from_str::<Value>(text) {
            Ok(mut value) => {
                if !self.redact_json(&mut value) {
                    return text.to_owned();
                }
                serde_json::to_string(&value).unwrap_or_else(|_| MASK.to_owned())
            }
            Err(_) => self.redact_str(text).into_owned(),
        }
    }

    /// Whether `text` holds any value (or a form of one).
    pub fn is_match(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::Nothing => false,
            Matcher::Everything => !text.is_empty(),
            Matcher::Patterns { automaton, .. } => automaton.is_match(text),
        }
    }
}

impl fmt::Debug for Redactor {
    /// The number of patterns only; the automaton's own `Debug` would print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let patterns = match &self.matcher {
            Matcher::Nothing => 0,
            Matcher::Patterns { count, .. } => *count,
            Matcher::Everything => usize::MAX,
        };
        f.debug_struct("Redactor").field("patterns", &patterns).finish()
    }
}

/// Pushes every form of `value` that the redactor looks for (duplicates are removed
/// by the caller).
fn forms(value: &str, out: &mut Vec<String>) {
    out.push(value.to_owned());
    json_forms(value, out);
    base64_forms(value.as_bytes(), out);
    percent_forms(value, out);
}

/// The inside of the JSON string literal for `value`: serde_json's escaping, and the
/// ASCII-only escaping of writers such as Python's `json.dumps`.
fn json_forms(value: &str, out: &mut Vec<String>) {
    let mut escaped = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\u{8}' => escaped.push_str("\\b"),
            '\u{c}' => escaped.push_str("\\f"),
            c if c < ' ' => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    if !value.is_ascii() {
        let mut ascii = String::with_capacity(escaped.len() * 2);
        for c in escaped.chars() {
            if c.is_ascii() {
                ascii.push(c);
            } else {
                for unit in c.encode_utf16(&mut [0u16; 2]) {
                    ascii.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out.push(ascii);
    }
    out.push(escaped);
}

/// Standard and URL-safe base64 of `bytes`, padded and unpadded, and the parts that
/// survive when `bytes` sit inside a larger encoded text.
///
/// Inside a larger text, base64 groups bytes by three from the start of that text,
/// so the characters at the edges of the value mix its bits with its neighbours'.
/// For each alignment (the value starting 0, 1 or 2 bytes into a group) the run of
/// characters made only of the value's bits is the same wherever the value sits, and
/// that run is matched; the one or two edge characters stay (each holds under a byte
/// of the value). Runs shorter than [`MIN_EMBEDDED_BASE64_CHARS`] are skipped. Not
/// found: base64 wrapped across lines (MIME) or of a text that encodes the value
/// first (base64 of the JSON-escaped form, say).
fn base64_forms(bytes: &[u8], out: &mut Vec<String>) {
    for (padded, unpadded) in [(&STANDARD, &STANDARD_NO_PAD), (&URL_SAFE, &URL_SAFE_NO_PAD)] {
        out.push(padded.encode(bytes));
        let mut shifted = Zeroizing::new(Vec::with_capacity(bytes.len() + 2));
        for offset in 0..3 {
            shifted.clear();
            shifted.resize(offset, 0);
            shifted.extend_from_slice(bytes);
            let encoded = Zeroizing::new(unpadded.encode(&shifted[..]));
            if offset == 0 {
                out.push(encoded.to_string());
            }
            // Character i carries bits [6i, 6i + 6); the value's bits are
            // [8 * offset, 8 * (offset + len)).
            let first = (8 * offset).div_ceil(6);
            let end = 8 * (offset + bytes.len()) / 6;
            if end >= first + MIN_EMBEDDED_BASE64_CHARS {
                out.push(encoded[first..end].to_owned());
            }
        }
    }
}

/// One percent-encoder's habits.
struct PercentStyle {
    /// Bytes written as they are; the rest become `%XX`.
    safe: fn(u8) -> bool,
    space_as_plus: bool,
    upper_hex: bool,
}

fn rfc3986(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Percent-encoded forms, as the common encoders write them.
fn percent_forms(value: &str, out: &mut Vec<String>) {
    const STYLES: [PercentStyle; 6] = [
        PercentStyle {
            safe: rfc3986,
            space_as_plus: false,
            upper_hex: true,
        },
        PercentStyle {
            safe: rfc3986,
            space_as_plus: false,
            upper_hex: false,
        },
        // Go's url.QueryEscape, Python's quote_plus.
        PercentStyle {
            safe: rfc3986,
            space_as_plus: true,
            upper_hex: true,
        },
        // WHATWG application/x-www-form-urlencoded.
        PercentStyle {
            safe: |b| b.is_ascii_alphanumeric() || b"*-._".contains(&b),
            space_as_plus: true,
            upper_hex: true,
        },
        // JavaScript's encodeURIComponent.
        PercentStyle {
            safe: |b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b),
            space_as_plus: false,
            upper_hex: true,
        },
        // Python's quote, which keeps '/' by default.
        PercentStyle {
            safe: |b| rfc3986(b) || b == b'/',
            space_as_plus: false,
            upper_hex: true,
        },
    ];
    for style in &STYLES {
        let hex: &[u8; 16] = if style.upper_hex {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut encoded = String::with_capacity(value.len() * 3);
        for &b in value.as_bytes() {
            if (style.safe)(b) {
                encoded.push(char::from(b));
            } else if b == b' ' && style.space_as_plus {
                encoded.push('+');
            } else {
                encoded.push('%');
                encoded.push(char::from(hex[usize::from(b >> 4)]));
                encoded.push(char::from(hex[usize::from(b & 0xf)]));
            }
        }
        if encoded != value {
            out.push(encoded);
        } else {
            encoded.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_line_of_a_multi_line_value_is_masked_on_its_own() {
        let pem = SecretString::new(
            "-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\nBKcwggSjAgEAAoIBAQC7\r\n-----END PRIVATE KEY-----".into(),
        );
        let redactor = Redactor::new([&pem]);
        assert_eq!(
            redactor.redact_str("key line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            "key line: ********"
        );
        assert_eq!(redactor.redact_str("BKcwggSjAgEAAoIBAQC7"), "********");
    }

    #[test]
    fn a_value_cut_in_two_by_truncation_loses_its_visible_start() {
        let token = SecretString::new("tok-0123456789abcdef".into());
        let redactor = Redactor::new([&token]);
        let cut = format!("{} tok-01234 …[line truncated]", "prefix ".repeat(20));
        let redacted = redactor.redact_cut(&cut, &[" …[line truncated]"]);
        assert!(!redacted.contains("tok-0"), "{redacted}");
        // Only the tail that could hold a value's start goes.
        assert!(redacted.starts_with(&"prefix ".repeat(10)), "{redacted}");
        assert!(redacted.ends_with("******** …[line truncated]"), "{redacted}");
        // A cut inside a longer text (a panic message quoted in a trap reason).
        let quoted = format!("trap ({} tok-01234 …[line truncated])", "prefix ".repeat(20));
        let redacted = redactor.redact_cut(&quoted, &[" …[line truncated]"]);
        assert!(
            !redacted.contains("tok-0") && redacted.ends_with("******** …[line truncated])"),
            "{redacted}"
        );
        // Text that was not cut is redacted as usual.
        assert_eq!(
            redactor.redact_cut("a tok-0123456789abcdef b", &[" …[line truncated]"]),
            "a ******** b"
        );
    }

    use super::*;
    use serde_json::json;

    fn secret(value: &str) -> SecretString {
        SecretString::new(value.to_owned())
    }

    fn redactor(values: &[&str]) -> Redactor {
        let secrets: Vec<SecretString> = values.iter().map(|v| secret(v)).collect();
        Redactor::new(&secrets)
    }

    const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

    #[test]
    fn plain_value() {
        let redactor = redactor(&[TOKEN]);
        assert!(!redactor.is_empty());
        assert_eq!(
            redactor.redact_str(&format!("calling with token {TOKEN}, twice: {TOKEN}{TOKEN}")),
            "calling with token ********, twice: ****************"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed_unchanged() {
        let redactor = redactor(&[TOKEN, "hunter2hunter2"]);
        let text = "nothing to see here: ghp_ but not the token, hunter2 alone, ü ✓";
        assert!(matches!(redactor.redact_str(text), Cow::Borrowed(t) if t == text));
        let json = r#"{"b": 1.50, "a": [1e3, "x"]}"#;
        assert_eq!(
            redactor.redact_json_text(json),
            json,
            "not re-serialized when nothing matched"
        );
        let escaped = r#"{"b": "line\nbreak \"q\"",   "a": 12345678901234567890123}"#;
        assert_eq!(redactor.redact_json_text(escaped), escaped, "fast path");
        let escaped = r#"{"b": "\u0041\/",   "a": 12345678901234567890123}"#;
        assert_eq!(
            redactor.redact_json_text(escaped),
            escaped,
            "parsed, but left as it was"
        );
        let mut value = json!({"a": ["b", 1, true, null]});
        assert!(!redactor.redact_json(&mut value));
        assert_eq!(value, json!({"a": ["b", 1, true, null]}));
    }

    #[test]
    fn short_values_are_left_alone() {
        let redactor = redactor(&["yes", "42", "", "abc"]);
        assert!(redactor.is_empty());
        assert_eq!(redactor.redact_str("yes, 42 abc"), "yes, 42 abc");
        assert_eq!(redactor.redact_json_text(r#"{"yes": 42}"#), r#"{"yes": 42}"#);
        // Four bytes is enough.
        let redactor = self::redactor(&["abcd", "no"]);
        assert_eq!(redactor.redact_str("abc abcd no"), "abc ******** no");
    }

    #[test]
    fn json_escaped_value() {
        let value = "pa\"ss\\wo\nrd\t\u{1}é";
        let redactor = redactor(&[value]);
        let serialized = serde_json::to_string(&json!({ "password": value })).unwrap();
        assert!(!serialized.contains(value), "the raw form is not in the text");
        assert_eq!(redactor.redact_str(&serialized), r#"{"password":"********"}"#);
        // Python's json.dumps (ensure_ascii) writes é as \u00e9.
        let python = r#"{"password": "pa\"ss\\wo\nrd\t\u0001\u00e9"}"#;
        assert_eq!(redactor.redact_str(python), r#"{"password": "********"}"#);
        let emoji = redactor_for("key🔑key");
        assert_eq!(emoji.redact_str(r#""key\ud83d\udd11key""#), r#""********""#);
    }

    #[test]
    fn json_escaping_matches_serde_json() {
        let value: String = (0u8..0x80).map(char::from).chain("é€🔑".chars()).collect();
        let mut forms = Vec::new();
        json_forms(&value, &mut forms);
        let serialized = serde_json::to_string(&value).unwrap();
        assert_eq!(forms[1], serialized[1..serialized.len() - 1]);
        assert!(forms[0].is_ascii() && forms[0].ends_with("\\u00e9\\u20ac\\ud83d\\udd11"));
    }

    fn redactor_for(value: &str) -> Redactor {
        redactor(&[value])
    }

    #[test]
    fn base64_forms_of_the_value() {
        // 4 bytes: base64 needs padding, and the URL-safe alphabet differs.
        let value = "\u{fb}\u{ff}~~"; // UTF-8 bytes c3 bb c3 bf 7e 7e
        let redactor = redactor(&[value, TOKEN]);
        let bytes = value.as_bytes();
        for encoded in [
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            STANDARD.encode(TOKEN),
            STANDARD_NO_PAD.encode(TOKEN),
            URL_SAFE.encode(TOKEN),
            URL_SAFE_NO_PAD.encode(TOKEN),
        ] {
            assert_eq!(
                redactor.redact_str(&format!("data: {encoded}.")),
                "data: ********.",
                "{encoded}"
            );
        }
    }

    #[test]
    fn base64_inside_a_larger_encoding() {
        let redactor = redactor(&[TOKEN]);
        // HTTP basic auth, the token as password (offset 5) and as user (offset 0).
        for credentials in [
            format!("user:{TOKEN}"),
            format!("{TOKEN}:x-oauth-basic"),
            format!("ab{TOKEN}"),
        ] {
            for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
                let header = format!("Authorization: Basic {}", engine.encode(&credentials));
                let redacted = redactor.redact_str(&header);
                assert!(redacted.contains(MASK), "{credentials}: {redacted}");
                // What is left is at most the neighbours plus two edge characters
                // (under two bytes of the token).
                let left = redacted.len() - "Authorization: Basic ".len() - MASK.len();
                let neighbours = (credentials.len() - TOKEN.len()).div_ceil(3) * 4;
                assert!(left <= neighbours + 4, "{credentials}: {redacted}");
            }
        }
    }

    #[test]
    fn url_encoded_value() {
        let value = "p@ss word/+~é";
        let redactor = redactor(&[value]);
        for encoded in [
            "p%40ss%20word%2F%2B~%C3%A9", // RFC 3986
            "p%40ss%20word%2f%2b~%c3%a9", // lowercase hex
            "p%40ss+word%2F%2B~%C3%A9",   // Go QueryEscape, Python quote_plus
            "p%40ss+word%2F%2B%7E%C3%A9", // form encoding
            "p%40ss%20word%2F%2B~%C3%A9", // encodeURIComponent
            "p%40ss%20word/%2B~%C3%A9",   // Python quote
        ] {
            let url = format!("https://api.example.com/login?user=me&password={encoded}&next=1");
            assert_eq!(
                redactor.redact_str(&url),
                "https://api.example.com/login?user=me&password=********&next=1",
                "{encoded}"
            );
        }
    }

    #[test]
    fn nested_json_keys_and_values() {
        let redactor = redactor(&[TOKEN, "12345"]);
        let mut value = json!({
            "ok": true,
            "headers": [{ "authorization": format!("Bearer {TOKEN}") }],
            TOKEN: { "nested": [[format!("x{TOKEN}y")]] },
            "appId": 12345,
            "other": 42,
        });
        assert!(redactor.redact_json(&mut value));
        assert_eq!(
            value,
            json!({
                "ok": true,
                "headers": [{ "authorization": "Bearer ********" }],
                "********": { "nested": [["x********y"]] },
                "appId": "********",
                "other": 42,
            })
        );
        let text = serde_json::to_string(&json!({ "echo": { TOKEN: TOKEN }, "n": [1, 2] })).unwrap();
        assert_eq!(
            redactor.redact_json_text(&text),
            r#"{"echo":{"********":"********"},"n":[1,2]}"#
        );
    }

    #[test]
    fn json_text_with_escaped_spelling_is_redacted() {
        // "\u0067hp_…" decodes to the token although the raw text does not contain it.
        let redactor = redactor(&[TOKEN]);
        let text = format!(r#"{{"t": "\u0067{}"}}"#, &TOKEN[1..]);
        assert_eq!(redactor.redact_json_text(&text), r#"{"t":"********"}"#);
    }

    #[test]
    fn invalid_json_is_redacted_as_text() {
        let redactor = redactor(&[TOKEN]);
        let text = format!("panicked at 'bad token {TOKEN}', src/lib.rs:1");
        assert_eq!(
            redactor.redact_json_text(&text),
            "panicked at 'bad token ********', src/lib.rs:1"
        );
    }

    #[test]
    fn overlapping_and_contained_values() {
        // One value inside another: the longer one is fully masked.
        let redactor = self::redactor(&["secret", "my-secret-value"]);
        assert_eq!(
            redactor.redact_str("a my-secret-value b secret c"),
            "a ******** b ******** c"
        );
        // Two values that overlap in the text: no part of either shows.
        let redactor = self::redactor(&["abcdef1234", "1234wxyz"]);
        assert_eq!(redactor.redact_str("<abcdef1234wxyz>"), "<********>");
        assert_eq!(
            redactor.redact_str("<1234wxyz abcdef1234>"),
            "<******** ********>"
        );
        // Adjacent but not overlapping: two masks.
        assert_eq!(redactor.redact_str("abcdef1234wxyz1234wxyz"), "****************");
        // A value inside a longer match that started earlier, and a repeated value.
        let redactor = self::redactor(&["xxsecretxx", "cret", "aaaa"]);
        assert_eq!(redactor.redact_str("1xxsecretxx2cret3"), "1********2********3");
        assert_eq!(redactor.redact_str(&"a".repeat(1 << 20)), "********");
        assert_eq!(redactor.redact_str("aaaa-aaaaaaaa"), "********-********");
    }

    #[test]
    fn json_text_with_serde_escapes_is_redacted() {
        let value = "multi\nline \"quoted\" secret";
        let redactor = redactor(&[value]);
        let text = serde_json::to_string(&json!({ "log": format!("got {value}!") })).unwrap();
        assert_eq!(redactor.redact_json_text(&text), r#"{"log":"got ********!"}"#);
    }

    #[test]
    fn debug_prints_no_pattern() {
        let redactor = redactor(&[TOKEN]);
        let debug = format!("{redactor:?}");
        assert!(
            debug.starts_with("Redactor { patterns: ") && !debug.contains("ghp"),
            "{debug}"
        );
    }

    #[test]
    fn big_output() {
        let values: Vec<String> = (0..10)
            .map(|i| format!("sk_live_{i}_{}", "Zq8".repeat(8)))
            .collect();
        let redactor = redactor(&values.iter().map(String::as_str).collect::<Vec<_>>());
        let mut text = "lorem ipsum dolor sit amet ".repeat(4 << 20 >> 5);
        text.push_str(&values[3]);
        let redacted = redactor.redact_json_text(&text);
        assert!(redacted.ends_with("amet ********"));
        assert_eq!(redacted.len(), text.len() - values[3].len() + MASK.len());
    }
}
