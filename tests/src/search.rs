//! Searching everything a server stored or said for a plaintext secret.

/// Every byte the database holds: the SQLite files (database, WAL, shared memory), or
/// a `pg_dump` of the PostgreSQL database.
pub fn database_bytes(url: &str) -> Vec<u8> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let dir = std::path::Path::new(path).parent().expect("a directory");
        std::fs::read_dir(dir)
            .expect("the database directory")
            .flatten()
            .flat_map(|entry| std::fs::read(entry.path()).unwrap_or_default())
            .collect()
    } else {
        let output = std::process::Command::new("pg_dump")
            .arg(url)
            .output()
            .expect("running pg_dump");
        assert!(
            output.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stdout.windows(22).any(|w| w == b"orchestration_versions"),
            "the dump has the table"
        );
        output.stdout
    }
}

/// Searches for each secret, and for its last 32 characters alone (a unique tail,
/// as tests make their secrets), which survive any escaping of the characters
/// before them.
pub fn assert_nowhere(text: &str, secrets: &[&str], place: &str) {
    for secret in secrets {
        let tail = &secret[secret.len().saturating_sub(32)..];
        assert!(
            !text.contains(secret) && !text.contains(tail),
            "a secret reached {place}"
        );
    }
}
