//! The keyring: versioned AES-256 keys from `SECRET_KEYS`
//! (docs/architecture.md#secrets).
//!
//! ```json
//! { "currentKeyVersion": 2, "keys": { "1": "<base64 of 32 bytes>", "2": "<base64 of 32 bytes>" } }
//! ```
//!
//! New encryptions use `currentKeyVersion`; every version in `keys` can still
//! decrypt, which is what makes rotation work without re-encrypting. Parsing checks
//! everything that can be checked without the database and names the problem
//! precisely; no error ever contains key material. The caller prefixes the source
//! (`SECRET_KEYS` or `SECRET_KEYS_FILE <path>`).

use super::random_bytes;
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// An integer naming one key in the keyring; stored beside every blob.
pub type KeyVersion = u32;

/// AES-256 takes exactly 32 bytes of key.
const KEY_BYTES: usize = 32;

/// Names longer than this are not quoted in errors: an operator who swapped a
/// version and its key must not see the key echoed in a start-up error (or the log
/// that records it). Long enough for a typo of "currentKeyVersion"; shorter than the
/// base64 of any key of 16 bytes or more (24 characters; a valid one has 44).
const MAX_QUOTED_NAME: usize = 20;

/// One key, held only as its expanded AES-GCM state.
///
/// With aes-gcm's `zeroize` feature the AES round keys (the first of which is the
/// key itself) are wiped when this drops. The GHASH subkey `H = AES_k(0)` is wiped on
/// the soft backend but not on polyval 0.6's auto-detected CLMUL backend; `H` allows
/// forging tags under this key, not recovering it.
pub(super) struct Key {
    pub(super) cipher: Aes256Gcm,
}

// Fails to compile if the `zeroize` feature of aes-gcm (and so of aes) is ever dropped.
const _: fn() = || {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<aes_gcm::aes::Aes256>();
};

/// The versioned keys new encryptions and every decryption use.
///
/// Always holds its current version (checked when parsed). Not `Clone`, so that key
/// material exists once: share it behind an `Arc`. `Debug` prints versions only.
pub struct Keyring {
    current: KeyVersion,
    keys: BTreeMap<KeyVersion, Key>,
}

/// Why a keyring was refused. Messages never contain key material.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum KeyringError {
    /// The text does not parse as JSON. Only the position and kind of the problem
    /// are kept: a parser message could quote the input, and the input is keys.
    #[error("the keyring is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object.
    #[error(
        "the keyring must be a JSON object like \
         {{\"currentKeyVersion\": 1, \"keys\": {{\"1\": \"<base64 of 32 bytes>\"}}}}"
    )]
    NotAnObject,
    /// `currentKeyVersion` or `keys` is absent.
    #[error("the keyring has no \"{0}\" field")]
    MissingField(&'static str),
    /// A top-level field appears twice; JSON parsers disagree on which one wins.
    #[error("the keyring has the field \"{0}\" twice")]
    DuplicateField(&'static str),
    /// A top-level field other than `currentKeyVersion` and `keys` (often a typo).
    #[error("the keyring has an unknown field {0}; its fields are \"currentKeyVersion\" and \"keys\"")]
    UnknownField(String),
    /// A field of the wrong JSON type or range.
    #[error("in the keyring, {field} must be {expected}")]
    WrongType { field: String, expected: &'static str },
    /// `keys` is an empty object.
    #[error("the keyring's \"keys\" is empty; it needs at least the current key")]
    NoKeys,
    /// A name in `keys` that is not a positive integer (quoted only when short).
    #[error(
        "the keyring's key name {0} is not a key version; versions are positive integers \
         without leading zeros, like \"1\""
    )]
    BadVersion(String),
    /// The same version twice in `keys`, e.g. two `"2"` entries.
    #[error("the keyring has key {0} twice")]
    DuplicateVersion(KeyVersion),
    /// A key that is not standard base64.
    #[error(
        "key {version} is not valid standard base64 (A-Z, a-z, 0-9, + and /, padded with =); \
         `trellis keys generate` prints a valid key"
    )]
    BadBase64 { version: KeyVersion },
    /// A key that does not decode to 32 bytes.
    #[error(
        "key {version} is {bytes} bytes after base64 decoding; it must be exactly 32 \
         (`trellis keys generate` prints a valid key)"
    )]
    WrongLength { version: KeyVersion, bytes: usize },
    /// `currentKeyVersion` names no key in `keys`.
    #[error("currentKeyVersion {current} is not in the keyring's \"keys\" (it has {})", list(.available))]
    CurrentMissing {
        current: KeyVersion,
        available: Vec<KeyVersion>,
    },
}

fn list(versions: &[KeyVersion]) -> String {
    let names: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
    names.join(", ")
}

/// A name for an error message: quoted when short, else only its length.
fn describe_name(name: &str) -> String {
    let chars = name.chars().count();
    if chars <= MAX_QUOTED_NAME && !name.chars().any(char::is_control) {
        format!("{name:?}")
    } else {
        format!("(a {chars}-character name)")
    }
}

impl Keyring {
    /// Parses the JSON of `SECRET_KEYS`:
    /// `{ "currentKeyVersion": 2, "keys": { "1": "<base64 of 32 bytes>", "2": "…" } }`.
    ///
    /// Reports the first problem in document order. Intermediate copies of the keys
    /// are wiped; `text` itself belongs to the caller.
    pub fn from_json(text: &str) -> Result<Keyring, KeyringError> {
        if text.trim().is_empty() {
            return Err(KeyringError::NotJson("it is empty".to_owned()));
        }
        let root: Node = serde_json::from_str(text).map_err(|e| KeyringError::NotJson(position(&e)))?;
        let Node::Object(fields) = &root else {
            return Err(KeyringError::NotAnObject);
        };

        let mut current = None;
        let mut keys = None;
        for (name, value) in fields {
            let (slot, field) = match name.as_str() {
                "currentKeyVersion" => (&mut current, "currentKeyVersion"),
                "keys" => (&mut keys, "keys"),
                _ => return Err(KeyringError::UnknownField(describe_name(name))),
            };
            if slot.replace(value).is_some() {
                return Err(KeyringError::DuplicateField(field));
            }
        }
        let current = current.ok_or(KeyringError::MissingField("currentKeyVersion"))?;
        let keys = keys.ok_or(KeyringError::MissingField("keys"))?;

        let current = match current {
            Node::Integer(n) => KeyVersion::try_from(*n).ok().filter(|&v| v > 0),
            _ => None,
        }
        .ok_or_else(|| KeyringError::WrongType {
            field: "\"currentKeyVersion\"".to_owned(),
            expected: "a positive integer: the version in \"keys\" that new encryptions use",
        })?;

        let Node::Object(entries) = keys else {
            return Err(KeyringError::WrongType {
                field: "\"keys\"".to_owned(),
                expected: "an object from key version to base64 key, like {\"1\": \"<base64 of 32 bytes>\"}",
            });
        };
        let mut parsed = BTreeMap::new();
        for (name, value) in entries {
            let version = parse_version(name).ok_or_else(|| KeyringError::BadVersion(describe_name(name)))?;
            if parsed.contains_key(&version) {
                return Err(KeyringError::DuplicateVersion(version));
            }
            let Node::String(encoded) = value else {
                return Err(KeyringError::WrongType {
                    field: format!("key {version}"),
                    expected: "a string: the standard base64 of 32 bytes",
                });
            };
            parsed.insert(version, decode_key(version, encoded)?);
        }
        if parsed.is_empty() {
            return Err(KeyringError::NoKeys);
        }
        if !parsed.contains_key(&current) {
            return Err(KeyringError::CurrentMissing {
                current,
                available: parsed.keys().copied().collect(),
            });
        }
        Ok(Keyring {
            current,
            keys: parsed,
        })
    }

    /// The version new encryptions use.
    pub fn current_version(&self) -> KeyVersion {
        self.current
    }

    /// Every version this keyring can decrypt, ascending.
    pub fn versions(&self) -> impl Iterator<Item = KeyVersion> + '_ {
        self.keys.keys().copied()
    }

    /// Whether blobs sealed under `version` can be opened.
    pub fn contains(&self, version: KeyVersion) -> bool {
        self.keys.contains_key(&version)
    }

    /// A fresh keyring with one random key as version 1, as JSON text (for the
    /// embedded default, written to a 0600 file by the caller).
    pub fn generate_json() -> String {
        let mut key = Self::generate_key_base64();
        let text =
            format!("{{\n  \"currentKeyVersion\": 1,\n  \"keys\": {{\n    \"1\": \"{key}\"\n  }}\n}}\n");
        key.zeroize();
        text
    }

    /// A new random 32-byte key in standard base64 (for `trellis keys generate`).
    pub fn generate_key_base64() -> String {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        random_bytes(&mut key[..]);
        STANDARD.encode(&key[..])
    }

    pub(super) fn key(&self, version: KeyVersion) -> Option<&Key> {
        self.keys.get(&version)
    }

    pub(super) fn current_key(&self) -> (KeyVersion, &Key) {
        let key = self
            .keys
            .get(&self.current)
            .expect("from_json checked that the current key exists");
        (self.current, key)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A version name: a positive integer in canonical form, so that `"1"`, `"01"` and
/// `"+1"` cannot name the same key twice.
fn parse_version(name: &str) -> Option<KeyVersion> {
    if name.starts_with('0') || name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn decode_key(version: KeyVersion, encoded: &str) -> Result<Key, KeyringError> {
    // Decode into a buffer that is wiped whatever happens; `decode` would return a
    // Vec that an error path drops unwiped. The estimate is an upper bound.
    let mut bytes = Zeroizing::new(vec![0u8; base64::decoded_len_estimate(encoded.len())]);
    let len = STANDARD
        .decode_slice(encoded, &mut bytes[..])
        .map_err(|_| KeyringError::BadBase64 { version })?;
    if len != KEY_BYTES {
        return Err(KeyringError::WrongLength { version, bytes: len });
    }
    let key = aes_gcm::Key::<Aes256Gcm>::from_slice(&bytes[..KEY_BYTES]);
    Ok(Key {
        cipher: Aes256Gcm::new(key),
    })
}

/// Where and what kind of syntax error, never the parser's message: serde_json's
/// messages for data errors quote the offending input.
fn position(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Eof => "it ends early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable value",
    };
    format!("{kind} at line {}, column {}", error.line(), error.column())
}

/// A JSON tree that keeps duplicate names (serde_json's `Value` silently keeps the
/// last) and accepts every shape, so parsing fails only on syntax and the checks
/// above decide, with their own messages, what is wrong. Strings are wiped on drop.
enum Node {
    Object(Vec<(String, Node)>),
    String(String),
    /// A non-negative integer.
    Integer(u64),
    /// Anything else: negative or fractional numbers, booleans, null, arrays.
    Other,
}

impl Drop for Node {
    fn drop(&mut self) {
        match self {
            Node::String(s) => s.zeroize(),
            // Names too: an operator may have swapped a version and its key.
            Node::Object(entries) => entries.iter_mut().for_each(|(name, _)| name.zeroize()),
            Node::Integer(_) | Node::Other => {}
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(u64::try_from(v).map_or(Node::Other, Node::Integer))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Integer(v))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Node::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Node>()? {
            entries.push(entry);
        }
        Ok(Node::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recognisable key material: 32 bytes of 'K' ("S0tL…" in base64).
    fn marked_key(byte: u8, len: usize) -> String {
        STANDARD.encode(vec![byte; len])
    }

    fn keyring_json(current: u32, keys: &[(&str, String)]) -> String {
        let keys: Vec<String> = keys.iter().map(|(v, k)| format!("{v:?}: {k:?}")).collect();
        format!(
            "{{\"currentKeyVersion\": {current}, \"keys\": {{{}}}}}",
            keys.join(", ")
        )
    }

    /// Parses `text`, expecting an error, and checks the message holds no key material.
    fn refused(text: &str) -> KeyringError {
        let error = Keyring::from_json(text).expect_err("keyring should be refused");
        let message = error.to_string();
        for secret in ["S0tL", "KKKK", "TUxN", "MMMM"] {
            assert!(
                !message.contains(secret),
                "{message:?} contains key material {secret:?}"
            );
        }
        assert!(!format!("{error:?}").contains("S0tL"));
        error
    }

    #[test]
    fn parses_a_rotated_keyring() {
        let text = keyring_json(2, &[("1", marked_key(b'K', 32)), ("2", marked_key(b'M', 32))]);
        let keyring = Keyring::from_json(&text).unwrap();
        assert_eq!(keyring.current_version(), 2);
        assert_eq!(keyring.versions().collect::<Vec<_>>(), vec![1, 2]);
        assert!(keyring.contains(1) && keyring.contains(2) && !keyring.contains(3));
        let debug = format!("{keyring:?}");
        assert_eq!(debug, "Keyring { current: 2, versions: [1, 2] }");
    }

    #[test]
    fn shareable_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Keyring>();
        send_sync::<crate::secrets::SecretString>();
        send_sync::<crate::secrets::Redactor>();
    }

    #[test]
    fn generated_keyring_and_keys_parse() {
        let keyring = Keyring::from_json(&Keyring::generate_json()).unwrap();
        assert_eq!(keyring.current_version(), 1);
        assert_eq!(keyring.versions().collect::<Vec<_>>(), vec![1]);

        let (a, b) = (Keyring::generate_key_base64(), Keyring::generate_key_base64());
        assert_ne!(a, b);
        assert_eq!(STANDARD.decode(&a).unwrap().len(), 32);
        let text = keyring_json(7, &[("7", a)]);
        assert_eq!(Keyring::from_json(&text).unwrap().current_version(), 7);
    }

    #[test]
    fn not_json() {
        let text = format!(
            "{{\"currentKeyVersion\": 1, \"keys\": {{\"1\": \"{}\"",
            marked_key(b'K', 32)
        );
        let error = refused(&text);
        assert!(matches!(&error, KeyringError::NotJson(_)), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("the keyring is not valid JSON: it ends early at line 1")
        );

        // A stray character right after a key: the position, never the text.
        let text = format!("{{\"keys\": {{\"1\": \"{}\"x}}}}", marked_key(b'K', 32));
        let error = refused(&text);
        assert!(error.to_string().contains("syntax error at line 1"), "{error}");

        assert_eq!(refused("  \n"), KeyringError::NotJson("it is empty".to_owned()));
        assert_eq!(
            refused(&format!("[{:?}]", marked_key(b'K', 32))),
            KeyringError::NotAnObject
        );
        assert_eq!(
            refused(&format!("{:?}", marked_key(b'K', 32))),
            KeyringError::NotAnObject
        );
    }

    #[test]
    fn missing_unknown_and_duplicate_fields() {
        let key = marked_key(b'K', 32);
        assert_eq!(
            refused(&format!("{{\"keys\": {{\"1\": {key:?}}}}}")),
            KeyringError::MissingField("currentKeyVersion")
        );
        assert_eq!(
            refused("{\"currentKeyVersion\": 1}"),
            KeyringError::MissingField("keys")
        );
        assert_eq!(
            refused(&format!(
                "{{\"currentKeyversion\": 1, \"keys\": {{\"1\": {key:?}}}}}"
            )),
            KeyringError::UnknownField("\"currentKeyversion\"".to_owned())
        );
        // A key pasted as a field name is not echoed.
        assert_eq!(
            refused(&format!("{{{key:?}: 1}}")),
            KeyringError::UnknownField("(a 44-character name)".to_owned())
        );
        assert_eq!(
            refused(&format!(
                "{{\"currentKeyVersion\": 1, \"currentKeyVersion\": 2, \"keys\": {{\"1\": {key:?}}}}}"
            )),
            KeyringError::DuplicateField("currentKeyVersion")
        );
    }

    #[test]
    fn wrong_types() {
        let key = marked_key(b'K', 32);
        for current in ["\"1\"", "0", "-1", "1.5", "4294967296", "null", "true"] {
            let text = format!("{{\"currentKeyVersion\": {current}, \"keys\": {{\"1\": {key:?}}}}}");
            let error = refused(&text);
            assert!(
                matches!(&error, KeyringError::WrongType { field, .. } if field == "\"currentKeyVersion\""),
                "{current}: {error:?}"
            );
        }
        let error = refused(&format!("{{\"currentKeyVersion\": 1, \"keys\": [{key:?}]}}"));
        assert!(
            matches!(&error, KeyringError::WrongType { field, .. } if field == "\"keys\""),
            "{error:?}"
        );
        let error = refused("{\"currentKeyVersion\": 1, \"keys\": {\"1\": 12345}}");
        assert!(
            matches!(&error, KeyringError::WrongType { field, .. } if field == "key 1"),
            "{error:?}"
        );
    }

    #[test]
    fn no_keys() {
        assert_eq!(
            refused("{\"currentKeyVersion\": 1, \"keys\": {}}"),
            KeyringError::NoKeys
        );
    }

    #[test]
    fn bad_version_names() {
        let key = marked_key(b'K', 32);
        for name in ["one", "0", "01", "+1", "-1", "1.0", "", " 1", "4294967296"] {
            let error = refused(&keyring_json(1, &[("1", key.clone()), (name, key.clone())]));
            assert_eq!(error, KeyringError::BadVersion(format!("{name:?}")), "{name:?}");
        }
        // Version and key swapped: the key is not echoed.
        let error = refused(&format!(
            "{{\"currentKeyVersion\": 1, \"keys\": {{{key:?}: \"1\"}}}}"
        ));
        assert_eq!(
            error,
            KeyringError::BadVersion("(a 44-character name)".to_owned())
        );
        assert_eq!(
            error.to_string(),
            "the keyring's key name (a 44-character name) is not a key version; versions are positive \
             integers without leading zeros, like \"1\""
        );
    }

    #[test]
    fn duplicate_version() {
        let text = keyring_json(1, &[("1", marked_key(b'K', 32)), ("1", marked_key(b'M', 32))]);
        assert_eq!(refused(&text), KeyringError::DuplicateVersion(1));
    }

    #[test]
    fn bad_base64() {
        let bad = format!("{}!", &marked_key(b'K', 32)[..43]);
        assert_eq!(
            refused(&keyring_json(1, &[("1", bad)])),
            KeyringError::BadBase64 { version: 1 }
        );
        // URL-safe alphabet, whitespace: not standard base64.
        let url = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]);
        assert_eq!(
            refused(&keyring_json(1, &[("1", url)])),
            KeyringError::BadBase64 { version: 1 }
        );
        let spaced = format!(" {}", marked_key(b'K', 32));
        assert_eq!(
            refused(&keyring_json(1, &[("1", spaced)])),
            KeyringError::BadBase64 { version: 1 }
        );
    }

    #[test]
    fn wrong_length() {
        let error = refused(&keyring_json(
            2,
            &[("1", marked_key(b'K', 32)), ("2", marked_key(b'M', 31))],
        ));
        assert_eq!(
            error,
            KeyringError::WrongLength {
                version: 2,
                bytes: 31
            }
        );
        assert_eq!(
            error.to_string(),
            "key 2 is 31 bytes after base64 decoding; it must be exactly 32 \
             (`trellis keys generate` prints a valid key)"
        );
        let error = refused(&keyring_json(1, &[("1", marked_key(b'K', 33))]));
        assert_eq!(
            error,
            KeyringError::WrongLength {
                version: 1,
                bytes: 33
            }
        );
        let error = refused(&keyring_json(1, &[("1", String::new())]));
        assert_eq!(error, KeyringError::WrongLength { version: 1, bytes: 0 });
    }

    #[test]
    fn current_missing() {
        let error = refused(&keyring_json(
            3,
            &[("1", marked_key(b'K', 32)), ("2", marked_key(b'M', 32))],
        ));
        assert_eq!(
            error,
            KeyringError::CurrentMissing {
                current: 3,
                available: vec![1, 2]
            }
        );
        assert_eq!(
            error.to_string(),
            "currentKeyVersion 3 is not in the keyring's \"keys\" (it has 1, 2)"
        );
    }
}
