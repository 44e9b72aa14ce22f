//! Function settings: checking and applying a `PATCH`, and turning stored settings
//! into the limits the runtime enforces on a call.

use super::{FunctionsError, MAX_MEMORY_LIMIT_MB, MAX_TIMEOUT_MS, Result};
use crate::runtime::Limits;
use crate::runtime::outbound::AllowEntry;
use crate::store::FunctionSettings;
use std::time::Duration;
use trellis_types::SettingsPatch;

pub(super) fn validate_patch(patch: &SettingsPatch) -> Result<()> {
    if let Some(timeout_ms) = patch.timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms)
    {
        return Err(FunctionsError::InvalidSettings(format!(
            "timeoutMs must be between 1 and {MAX_TIMEOUT_MS}"
        )));
    }
    if let Some(memory_limit_mb) = patch.memory_limit_mb
        && !(1..=MAX_MEMORY_LIMIT_MB).contains(&memory_limit_mb)
    {
        return Err(FunctionsError::InvalidSettings(format!(
            "memoryLimitMb must be between 1 and {MAX_MEMORY_LIMIT_MB}"
        )));
    }
    for host in patch.allowed_hosts.iter().flatten() {
        check_allowed_host(host)?;
    }
    Ok(())
}

/// `settings` with every field the patch names replaced.
pub(super) fn apply_patch(patch: &SettingsPatch, mut settings: FunctionSettings) -> FunctionSettings {
    settings.timeout_ms = patch.timeout_ms.unwrap_or(settings.timeout_ms);
    settings.memory_limit_mb = patch.memory_limit_mb.unwrap_or(settings.memory_limit_mb);
    if let Some(allowed_hosts) = &patch.allowed_hosts {
        settings.allowed_hosts = allowed_hosts.clone();
    }
    settings.scratch_dir = patch.scratch_dir.unwrap_or(settings.scratch_dir);
    settings
}

/// Checked by the rules that enforce it ([`crate::runtime::outbound`]), so every
/// stored entry is one the runtime accepts.
fn check_allowed_host(entry: &str) -> Result<()> {
    entry
        .parse::<AllowEntry>()
        .map(drop)
        .map_err(FunctionsError::InvalidSettings)
}

pub(super) fn limits(settings: &FunctionSettings) -> Limits {
    Limits {
        timeout: Duration::from_millis(settings.timeout_ms.into()),
        memory_limit_bytes: (settings.memory_limit_mb as usize) << 20,
        scratch_dir: settings.scratch_dir,
        // Validated when set, so every stored entry parses.
        allowed_hosts: settings
            .allowed_hosts
            .iter()
            .filter_map(|entry| entry.parse().ok())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_accept_origins_and_wildcards_only() {
        for ok in ["https://api.github.com", "http://127.0.0.1:8099", "*.example.com"] {
            assert!(check_allowed_host(ok).is_ok(), "{ok}");
        }
        for bad in ["api.github.com", "ftp://x", "https://x/path", "*.", "https://"] {
            assert!(check_allowed_host(bad).is_err(), "{bad}");
        }
    }
}
