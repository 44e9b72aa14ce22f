//! Compiled components cached on disk, keyed by content hash and engine
//! compatibility, so a restart (or a second node) does not recompile.

use anyhow::{Context, Result};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: PathBuf,
    /// Changes whenever the wasmtime version or any compilation setting changes, so
    /// an artifact is never loaded into an engine that could not run it.
    engine_key: String,
    compilations: AtomicU64,
    hits: AtomicU64,
}

impl ArtifactCache {
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self> {
        // Artifacts are native code loaded without verification: only this user may
        // write (or read) them.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the artifact cache {}", dir.display()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
            compilations: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        })
    }

    /// Loads the component for `sha256` from the cache, or compiles `bytes` and stores
    /// the artifact. A cached file that fails to load is recompiled and replaced.
    pub fn load_or_compile(&self, engine: &Engine, sha256: &str, bytes: &[u8]) -> Result<Component> {
        let path = self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key));
        if path.exists() {
            // SAFETY: this directory is private to the server's user (0700) and its
            // files are written only by `compile` below, from components this engine
            // compiled; the name carries the engine's compatibility key and wasmtime
            // checks the header again.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(component);
                }
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "discarding unreadable artifact")
                }
            }
        }
        self.compile(engine, &path, bytes)
    }

    fn compile(&self, engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component> {
        // A compile failure is the component's fault; everything after is ours.
        let artifact = engine
            .precompile_component(bytes)
            .map_err(|error| super::ValidationError::Invalid(format!("{error:#}")))?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `artifact` was produced by this engine a moment ago. Loading can
        // still refuse it (e.g. more memories than a pool slot holds): then it is the
        // component's fault, and nothing is cached.
        let component = unsafe { Component::deserialize(engine, &artifact) }
            .map_err(|error| super::ValidationError::Invalid(format!("{error:#}")))?;
        // Write then rename, so a concurrent reader never sees half a file.
        let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&partial, &artifact)
            .and_then(|()| std::fs::rename(&partial, path))
            .with_context(|| format!("writing artifact {}", path.display()))?;
        Ok(component)
    }

    /// Components compiled by this process (cache misses).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Components loaded from disk without compiling.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}
