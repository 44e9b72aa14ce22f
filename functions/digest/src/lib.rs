//! Shows how a step proves what it received without revealing it: a SHA-256 per param.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use trellis_guest::Error;

/// Params that are not a JSON object fail to deserialize into a `Map`, which the SDK
/// reports as `invalid_params`.
#[trellis_guest::function]
fn digest(params: Map<String, Value>) -> Result<Map<String, Value>, Error> {
    Ok(params
        .into_iter()
        .map(|(key, value)| (key, Value::String(hash(&value))))
        .collect())
}

/// A string hashes as its UTF-8 bytes, so a caller can check a secret by hashing it
/// directly; anything else as its compact JSON text, which is what `Value`'s `Display`
/// writes (the same as `serde_json::to_string`, without a `Result` that cannot fail).
fn hash(value: &Value) -> String {
    let digest = match value {
        Value::String(text) => Sha256::digest(text.as_bytes()),
        other => Sha256::digest(other.to_string().as_bytes()),
    };
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_hash_as_their_bytes_and_other_values_as_compact_json() {
        // `printf %s hunter2 | sha256sum` and `printf %s '{"a":[1,2]}' | sha256sum`
        assert_eq!(
            hash(&json!("hunter2")),
            "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
        );
        assert_eq!(
            hash(&json!({ "a": [1, 2] })),
            "01530d164d479cf08e26d3b1ad9bdba927120d97e2d057a6d792db778780d720"
        );
    }
}
