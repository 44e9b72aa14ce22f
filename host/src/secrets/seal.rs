//! Sealing one parameter value: AES-256-GCM with a fresh random 96-bit IV per call
//! and a 128-bit tag, stored as `iv:ciphertext:tag` (each standard base64), with
//! associated data that binds the blob to where it lives (docs/architecture.md#secrets).
//!
//! Random IVs are safe up to about 2^32 encryptions under one key (NIST SP 800-38D
//! §8.3); a deployment that saves anywhere near that many values rotates keys long
//! before.

use super::keyring::{KeyVersion, Keyring};
use super::random_bytes;
use super::secret::SecretString;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

pub use trellis_types::MASK;

/// GCM's standard 96-bit IV: the only length that needs no extra GHASH pass.
const IV_BYTES: usize = 12;
/// The full 128-bit tag; shorter tags weaken forgery resistance.
const TAG_BYTES: usize = 16;

/// Where a blob lives. Its text form is the associated data:
/// `trellis/v1|<orchestrationId>|<stepId>|<paramName>|<keyVersion>`, so a blob copied
/// to another orchestration, step, parameter name or key version does not
/// authenticate.
///
/// The text is unambiguous as long as the orchestration id and the parameter name
/// hold no `|` (orchestration ids are generated, parameter names match
/// `[A-Za-z_][A-Za-z0-9_]{0,127}`): the step id, whatever it holds, is then exactly
/// what lies between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub orchestration_id: &'a str,
    pub step_id: &'a str,
    pub param: &'a str,
}

impl Binding<'_> {
    /// The associated data for a blob sealed under `version`.
    pub fn associated_data(&self, version: KeyVersion) -> String {
        debug_assert!(
            !self.orchestration_id.contains('|') && !self.param.contains('|'),
            "orchestration ids and param names must not contain '|'"
        );
        format!(
            "trellis/v1|{}|{}|{}|{version}",
            self.orchestration_id, self.step_id, self.param
        )
    }
}

/// Why a stored blob could not be opened. Messages never contain the plaintext, the
/// key or the blob; the caller adds the step and parameter names.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// The blob names a key version that the keyring does not hold.
    #[error("key version {0} is not in the keyring")]
    UnknownKeyVersion(KeyVersion),
    /// Not `iv:ciphertext:tag` in standard base64 with a 12-byte IV and a 16-byte tag.
    #[error(
        "the stored value is not an encrypted blob (iv:ciphertext:tag in standard base64, \
         12-byte IV, 16-byte tag)"
    )]
    Malformed,
    /// Wrong key, altered bytes, or a blob moved to another orchestration, step,
    /// parameter or key version.
    #[error(
        "the stored value does not authenticate: it was altered, sealed with another key, \
         or moved from another orchestration, step or parameter"
    )]
    Authentication,
}

/// Encrypts `plaintext` under the keyring's current key, bound to `binding`.
/// Returns the blob `iv:ciphertext:tag` and the key version used.
///
/// Panics only if the operating system's random number generator fails.
pub fn seal(keyring: &Keyring, binding: &Binding, plaintext: &str) -> (String, KeyVersion) {
    let (version, key) = keyring.current_key();
    let mut iv = [0u8; IV_BYTES];
    random_bytes(&mut iv);
    // Encrypted in place: the copy holds plaintext only until the call returns, and
    // is wiped in any case.
    let mut buffer = Zeroizing::new(plaintext.as_bytes().to_vec());
    let tag = key
        .cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&iv),
            binding.associated_data(version).as_bytes(),
            &mut buffer,
        )
        // GCM refuses only plaintexts over 2^36 bytes; values are capped far below.
        .expect("AES-GCM encrypts any value under 64 GiB");

    let mut blob = String::with_capacity(4 * (IV_BYTES + buffer.len() + TAG_BYTES) / 3 + 8);
    STANDARD.encode_string(iv, &mut blob);
    blob.push(':');
    STANDARD.encode_string(&buffer[..], &mut blob);
    blob.push(':');
    STANDARD.encode_string(tag, &mut blob);
    (blob, version)
}

/// Decrypts a blob sealed under key `version` for `binding`.
pub fn open(
    keyring: &Keyring,
    binding: &Binding,
    version: KeyVersion,
    blob: &str,
) -> Result<SecretString, SealError> {
    let key = keyring
        .key(version)
        .ok_or(SealError::UnknownKeyVersion(version))?;
    let Parts { iv, ciphertext, tag } = parse(blob)?;
    let mut buffer = Zeroizing::new(ciphertext);
    // aes-gcm checks the tag before it decrypts, so a failure leaves no plaintext.
    key.cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&iv),
            binding.associated_data(version).as_bytes(),
            &mut buffer,
            Tag::from_slice(&tag),
        )
        .map_err(|_| SealError::Authentication)?;
    // Moves the buffer (no copy) into the secret, which wipes it from now on.
    match String::from_utf8(std::mem::take(&mut *buffer)) {
        Ok(text) => Ok(SecretString::new(text)),
        // Authentic but not UTF-8: only someone holding the key could have made it.
        Err(error) => {
            error.into_bytes().zeroize();
            Err(SealError::Malformed)
        }
    }
}

/// Re-encrypts a blob under the current key version with a new IV and the same
/// binding (for `trellis keys rewrap`). Returns the new blob and the current version.
pub fn rewrap(
    keyring: &Keyring,
    binding: &Binding,
    version: KeyVersion,
    blob: &str,
) -> Result<(String, KeyVersion), SealError> {
    let plaintext = open(keyring, binding, version, blob)?;
    Ok(seal(keyring, binding, plaintext.expose()))
}

/// The decoded parts of a blob.
struct Parts {
    iv: [u8; IV_BYTES],
    ciphertext: Vec<u8>,
    tag: [u8; TAG_BYTES],
}

fn parse(blob: &str) -> Result<Parts, SealError> {
    let mut parts = blob.split(':');
    let (Some(iv), Some(ciphertext), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SealError::Malformed);
    };
    let decode = |part: &str| STANDARD.decode(part).map_err(|_| SealError::Malformed);
    Ok(Parts {
        iv: decode(iv)?.try_into().map_err(|_| SealError::Malformed)?,
        ciphertext: decode(ciphertext)?,
        tag: decode(tag)?.try_into().map_err(|_| SealError::Malformed)?,
    })
}

impl fmt::Display for Binding<'_> {
    /// `step "<stepId>", param "<name>" of orchestration <orchestrationId>`, for the
    /// caller's error context.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {:?}, param {:?} of orchestration {}",
            self.step_id, self.param, self.orchestration_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAINTEXT: &str =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\u{e9}\u{1F511}\n-----END RSA PRIVATE KEY-----";

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    fn keyring(current: u32, keys: &[(u32, String)]) -> Keyring {
        let keys: Vec<String> = keys.iter().map(|(v, k)| format!("\"{v}\": {k:?}")).collect();
        Keyring::from_json(&format!(
            "{{\"currentKeyVersion\": {current}, \"keys\": {{{}}}}}",
            keys.join(",")
        ))
        .unwrap()
    }

    const HERE: Binding<'static> = Binding {
        orchestration_id: "orch-1",
        step_id: "provision-repo",
        param: "GITHUB_PRIVATE_KEY",
    };

    fn decoded_parts(blob: &str) -> Vec<Vec<u8>> {
        blob.split(':')
            .map(|part| STANDARD.decode(part).unwrap())
            .collect()
    }

    #[test]
    fn round_trip() {
        let keyring = keyring(1, &[(1, key(1))]);
        let (blob, version) = seal(&keyring, &HERE, PLAINTEXT);
        assert_eq!(version, 1);
        assert!(!blob.contains("BEGIN"));
        assert_eq!(open(&keyring, &HERE, version, &blob).unwrap().expose(), PLAINTEXT);

        let (blob, version) = seal(&keyring, &HERE, "");
        assert_eq!(open(&keyring, &HERE, version, &blob).unwrap().expose(), "");
    }

    #[test]
    fn associated_data_text() {
        assert_eq!(
            HERE.associated_data(7),
            "trellis/v1|orch-1|provision-repo|GITHUB_PRIVATE_KEY|7"
        );
    }

    #[test]
    fn same_value_seals_differently() {
        let keyring = keyring(1, &[(1, key(1))]);
        let (a, _) = seal(&keyring, &HERE, "s3cr3t");
        let (b, _) = seal(&keyring, &HERE, "s3cr3t");
        assert_ne!(a, b);
        assert_ne!(decoded_parts(&a)[0], decoded_parts(&b)[0], "IVs must differ");
        assert_ne!(decoded_parts(&a)[1], decoded_parts(&b)[1]);
    }

    #[test]
    fn blob_format() {
        let keyring = keyring(1, &[(1, key(1))]);
        let (blob, _) = seal(&keyring, &HERE, "s3cr3t-value");
        let parts: Vec<&str> = blob.split(':').collect();
        assert_eq!(parts.len(), 3, "{blob}");
        let decoded = decoded_parts(&blob);
        assert_eq!(decoded[0].len(), 12, "IV is 96 bits");
        assert_eq!(
            decoded[1].len(),
            "s3cr3t-value".len(),
            "GCM ciphertext is as long as the plaintext"
        );
        assert_eq!(decoded[2].len(), 16, "tag is 128 bits");
        // Standard alphabet with padding, nothing else.
        for part in parts {
            assert!(
                part.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
                "{part}"
            );
            assert_eq!(STANDARD.encode(STANDARD.decode(part).unwrap()), part);
        }
    }

    #[test]
    fn moved_blobs_do_not_authenticate() {
        // Keys 1 and 2 are the same bytes, so only the version in the associated data
        // tells them apart.
        let keyring = keyring(1, &[(1, key(1)), (2, key(1)), (3, key(3))]);
        let (blob, version) = seal(&keyring, &HERE, "s3cr3t");
        let elsewhere = [
            Binding {
                orchestration_id: "orch-2",
                ..HERE
            },
            Binding {
                step_id: "other-step",
                ..HERE
            },
            Binding {
                param: "GITHUB_APP_ID",
                ..HERE
            },
        ];
        for binding in elsewhere {
            assert_eq!(
                open(&keyring, &binding, version, &blob).unwrap_err(),
                SealError::Authentication
            );
        }
        assert_eq!(
            open(&keyring, &HERE, 2, &blob).unwrap_err(),
            SealError::Authentication
        );
        assert_eq!(
            open(&keyring, &HERE, 3, &blob).unwrap_err(),
            SealError::Authentication
        );
        assert_eq!(
            open(&keyring, &HERE, 9, &blob).unwrap_err(),
            SealError::UnknownKeyVersion(9)
        );
        // Another keyring whose version 1 is a different key.
        let other = keyring_with_current_1(key(9));
        assert_eq!(
            open(&other, &HERE, 1, &blob).unwrap_err(),
            SealError::Authentication
        );
        assert_eq!(open(&keyring, &HERE, version, &blob).unwrap().expose(), "s3cr3t");
    }

    fn keyring_with_current_1(key: String) -> Keyring {
        keyring(1, &[(1, key)])
    }

    #[test]
    fn tampering_is_detected() {
        let keyring = keyring(1, &[(1, key(1))]);
        let (blob, version) = seal(&keyring, &HERE, "s3cr3t-value");
        let parts = decoded_parts(&blob);
        for (part, byte) in [(0, 0), (1, 0), (1, 11), (2, 15)] {
            let mut parts = parts.clone();
            parts[part][byte] ^= 0x01;
            let tampered: Vec<String> = parts.iter().map(|p| STANDARD.encode(p)).collect();
            let tampered = tampered.join(":");
            assert_eq!(
                open(&keyring, &HERE, version, &tampered).unwrap_err(),
                SealError::Authentication
            );
        }
        // Truncated ciphertext.
        let truncated = format!(
            "{}:{}:{}",
            STANDARD.encode(&parts[0]),
            STANDARD.encode(&parts[1][..5]),
            STANDARD.encode(&parts[2])
        );
        assert_eq!(
            open(&keyring, &HERE, version, &truncated).unwrap_err(),
            SealError::Authentication
        );
    }

    #[test]
    fn malformed_blobs() {
        let keyring = keyring(1, &[(1, key(1))]);
        let (blob, version) = seal(&keyring, &HERE, "s3cr3t-value");
        let parts: Vec<&str> = blob.split(':').collect();
        let short_iv = STANDARD.encode([0u8; 8]);
        let short_tag = STANDARD.encode([0u8; 12]);
        let url_safe_ct = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 12]);
        let malformed = [
            String::new(),
            MASK.to_owned(),
            "s3cr3t-value".to_owned(),
            format!("{}:{}", parts[0], parts[1]),
            format!("{blob}:{}", parts[2]),
            format!("{}:{}:{}", short_iv, parts[1], parts[2]),
            format!("{}:{}:{}", parts[0], parts[1], short_tag),
            format!("{}:{}:{}", parts[0], url_safe_ct, parts[2]),
            format!("{}:{}!:{}", parts[0], parts[1], parts[2]),
            format!(" {blob}"),
            blob.replace(':', ";"),
        ];
        for text in malformed {
            assert_eq!(
                open(&keyring, &HERE, version, &text).unwrap_err(),
                SealError::Malformed,
                "{text:?}"
            );
        }
    }

    #[test]
    fn rewrap_moves_to_the_current_version() {
        let old = keyring(1, &[(1, key(1))]);
        let (blob, version) = seal(&old, &HERE, PLAINTEXT);
        assert_eq!(version, 1);

        let rotated = keyring(2, &[(1, key(1)), (2, key(2))]);
        assert_eq!(
            open(&rotated, &HERE, 1, &blob).unwrap().expose(),
            PLAINTEXT,
            "old blobs still open"
        );
        let (rewrapped, version) = rewrap(&rotated, &HERE, 1, &blob).unwrap();
        assert_eq!(version, 2);
        assert_ne!(decoded_parts(&rewrapped)[0], decoded_parts(&blob)[0], "new IV");
        assert_eq!(open(&rotated, &HERE, 2, &rewrapped).unwrap().expose(), PLAINTEXT);
        assert_eq!(
            open(&rotated, &HERE, 1, &rewrapped).unwrap_err(),
            SealError::Authentication
        );

        // Key 1 retired: the rewrapped blob still opens.
        let retired = keyring(2, &[(2, key(2))]);
        assert_eq!(open(&retired, &HERE, 2, &rewrapped).unwrap().expose(), PLAINTEXT);
        assert_eq!(
            open(&retired, &HERE, 1, &blob).unwrap_err(),
            SealError::UnknownKeyVersion(1)
        );

        // The binding is kept: a rewrap for another place fails and changes nothing.
        let other = Binding {
            step_id: "approve",
            ..HERE
        };
        assert_eq!(
            rewrap(&rotated, &other, 1, &blob).unwrap_err(),
            SealError::Authentication
        );
    }

    #[test]
    fn errors_hold_no_secret_material() {
        let keyring = keyring(1, &[(1, key(1))]);
        let (blob, _) = seal(&keyring, &HERE, "s3cr3t-value");
        for error in [
            SealError::UnknownKeyVersion(4),
            SealError::Malformed,
            SealError::Authentication,
        ] {
            let message = format!("{error} {error:?}");
            assert!(
                !message.contains("s3cr3t") && !message.contains(&blob[..8]),
                "{message}"
            );
        }
        assert_eq!(
            HERE.to_string(),
            "step \"provision-repo\", param \"GITHUB_PRIVATE_KEY\" of orchestration orch-1"
        );
    }
}
