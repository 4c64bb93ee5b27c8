//! Precompiled components cached on disk by content hash, so restarts skip compilation.

use super::engine::PluginEngine;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// SHA-256 of a plugin file, hex encoded.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A directory of `<content-hash>-<engine-hash>.cwasm` files.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// A cache in `dir`; `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir }
    }

    fn entry(&self, engine: &PluginEngine, hash: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.engine().precompile_compatibility_hash().hash(&mut h);
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{hash}-{:016x}.cwasm", h.finish())))
    }

    /// The component for `bytes`: from the cache when present and valid, else compiled
    /// (and written back, atomically, best effort).
    pub fn load(&self, engine: &PluginEngine, hash: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let entry = self.entry(engine, hash);
        if let Some(path) = entry.as_deref().filter(|p| p.exists()) {
            // SAFETY: the file was written by `Engine::precompile_component` of an engine
            // with the same compatibility hash (it is in the file name), into a directory
            // owned by the gateway, and it is never modified in place (atomic rename).
            match unsafe { Component::deserialize_file(engine.engine(), path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding unusable precompiled plugin"),
            }
        }
        let compiled = engine.engine().precompile_component(bytes)?;
        if let Some(path) = entry.as_deref()
            && let Err(e) = write_atomically(path, &compiled)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache precompiled plugin");
        }
        // SAFETY: `compiled` was produced just above by this engine.
        Ok(unsafe { Component::deserialize(engine.engine(), &compiled)? })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp =
        dir.join(format!(".{}.tmp-{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
