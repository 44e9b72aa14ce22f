//! Secrets: everything that touches `encryptedParams` key material or plaintext
//! (docs/architecture.md#secrets).
//!
//! - [`keyring`]: the versioned AES-256 keys from `SECRET_KEYS`, validated at start;
//!   generating a new key or a first keyring.
//! - [`seal`]: AES-256-GCM encryption of one parameter value into the stored
//!   `iv:ciphertext:tag` blob, bound to where it lives by associated data; opening it
//!   again; re-encrypting under the current key (rewrap); the `********` mask that
//!   every read path shows instead.
//! - [`redact`]: replacing decrypted values that a function echoes in its output,
//!   logs or error before anything is stored or returned.
//! - [`SecretString`]: the only type a decrypted value travels in. Its `Debug` and
//!   `Display` print the mask, it is wiped on drop, and it cannot be serialized.
//! - [`params`]: the sealing rules, turning a definition as sent into its stored
//!   form (sealing new secrets, keeping stored ones) and the stored form into the
//!   masked one every read returns.
//! - [`input`]: a compute step's triggerParams with its own secrets decrypted, as
//!   the engine hands them to the function, and the redactor for what comes back.
//! - [`rotation`]: counting secrets per key version, the start-up check that the
//!   keyring opens them, and rewrapping them under the current key.
//!
//! Nothing here logs, and no error of this module contains a key, a blob or a
//! plaintext: callers may log errors as they are and add the context they know
//! (the keyring's source, the step and parameter names).

pub mod input;
pub mod keyring;
pub mod params;
pub mod redact;
pub mod rotation;
pub mod seal;
mod secret;

pub use keyring::{KeyVersion, Keyring, KeyringError};
pub use redact::Redactor;
pub use rotation::{RewrapReport, Rotation};
pub use seal::{Binding, MASK, SealError, open, rewrap, seal};
pub use secret::SecretString;

/// Fills `buf` from the operating system's random number generator.
///
/// Panics if the OS generator fails: there is no safe way to go on encrypting
/// without randomness (a repeated GCM nonce reveals plaintext), and on the systems
/// Trellis runs on the `getrandom` system call does not fail once the kernel's pool
/// is initialised.
fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}
