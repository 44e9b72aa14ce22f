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
        usage(self.dir.path()) > SCRATCH_CAP_BYTES
    }
}

/// Bytes under `dir`: per file the larger of its length and its allocated blocks,
/// so neither a sparse nor a preallocated file slips under the cap.
fn usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len().max(meta.blocks() * 512);
            }
        }
    }
    total
}
