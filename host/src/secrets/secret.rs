//! The type decrypted values travel in.

use super::seal::MASK;
use std::fmt;
use zeroize::Zeroizing;

/// A decrypted value.
///
/// `Debug` and `Display` print `********`, so a secret that ends up in a log line or
/// an error message through formatting shows as the mask. The buffer is wiped when
/// the value drops, and a clone is another wiped buffer. There is deliberately no
/// `Serialize`: the only way to the plaintext is [`SecretString::expose`], which is
/// easy to find in review.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `s`; its buffer is wiped when the secret drops.
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    /// The plaintext. Every call site is a place where the secret leaves this type.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_print_the_mask() {
        let secret = SecretString::new("sk_live_do_not_print".to_owned());
        assert_eq!(format!("{secret:?}"), "********");
        assert_eq!(format!("{secret}"), "********");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(********)");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Input {
            token: SecretString,
        }
        let input = Input {
            token: secret.clone(),
        };
        assert!(!format!("{input:?}").contains("sk_live"));
        assert!(!format!("{input:#?}").contains("sk_live"));
        assert_eq!(secret.expose(), "sk_live_do_not_print");
    }
}
