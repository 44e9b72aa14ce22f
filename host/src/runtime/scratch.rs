//! The opt-in scratch directory (`scratchDir: true`): empty at every invocation,
//! removed afterwards, and capped in size. WASI has no quota of its own, so the cap
//! is checked from the epoch callback while the guest runs; a guest writing faster
//! than that can overshoot by what it writes between two checks.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Bytes a function may keep in its scratch directory. Enough for unpacking an
/// archive or buffering a report, small enough that a hostile function cannot fill
/// the node's disk.
pub const SCRATCH_CAP_BYTES: u64 = 64 << 20;

/// Epoch ticks between two size checks (at 10 ms a tick: every 50 ms).
pub const CHECK_EVERY_TICKS: u64 = 5;

/// What each file or directory costs against the cap besides its bytes: roughly an
/// inode and a block, so millions of empty files cannot slip under it.
const ENTRY_COST_BYTES: u64 = 4 << 10;

/// Removes scratch directories a crashed process left behind. Called at start,
/// before any call runs.
pub fn clear_leftovers(root: &Path) {
    if root.exists()
        && let Err(error) = std::fs::remove_dir_all(root)
    {
        tracing::warn!(%error, root = %root.display(), "could not clear old scratch directories");
    }
}

pub struct ScratchDir {
    dir: tempfile::TempDir,
}

impl ScratchDir {
    pub fn create(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("scratch-")
            .tempdir_in(root)
            .context("creating a scratch directory")?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the directory holds more than [`SCRATCH_CAP_BYTES`].
    pub fn over_cap(&self) -> bool {
        usage_over(self.dir.path(), SCRATCH_CAP_BYTES)
    }
}

/// Whether the bytes under `dir` pass `cap`: per file the larger of its length and
/// its allocated blocks (so neither a sparse nor a preallocated file slips under),
/// plus [`ENTRY_COST_BYTES`] per entry. Stops walking as soon as the cap is passed,
/// so a tree of a million entries costs at most `cap / ENTRY_COST_BYTES` stats.
fn usage_over(dir: &Path, cap: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            total += ENTRY_COST_BYTES;
            // `DirEntry::metadata` does not follow symlinks, so a link to a big host
            // file counts as a link.
            if let Ok(meta) = entry.metadata() {
                if meta.is_dir() {
                    pending.push(entry.path());
                } else {
                    total += meta.len().max(meta.blocks() * 512);
                }
            }
            if total > cap {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_empty_files_count_against_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..10 {
            std::fs::write(dir.path().join(i.to_string()), b"").expect("write");
        }
        assert!(usage_over(dir.path(), 9 * ENTRY_COST_BYTES));
        assert!(!usage_over(dir.path(), 11 * ENTRY_COST_BYTES));
    }

    #[test]
    fn bytes_in_subdirectories_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("a")).expect("mkdir");
        std::fs::write(dir.path().join("a/big"), vec![1u8; 1 << 20]).expect("write");
        assert!(usage_over(dir.path(), 1 << 20));
        assert!(!usage_over(dir.path(), 2 << 20));
    }
}
