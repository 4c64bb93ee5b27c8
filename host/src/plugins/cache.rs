//! Precompiled components cached on disk, so restarts skip compilation — and never load
//! native code this installation did not write.
//!
//! An entry is `<content-hash>-<engine-hash>.xjpc`: the SHA-256 of the component file and a
//! hash of the engine's compatibility hash (its configuration and wasmtime version). It holds
//! a magic, an HMAC-SHA256 and the artifact; the MAC is keyed by a per-install secret
//! (`cache.key`, 32 random bytes, created on first use with mode 0600, read once per
//! process) and covers both hashes and the artifact, so a flipped byte, another plugin's
//! artifact under this name or a file written by anyone without the secret fails the check.
//! A failing entry is deleted, counted (`xjp_plugin_cache_rejected_total{reason}`) and
//! recompiled. Entries are written atomically (a temporary file, then a rename). A secret
//! that cannot be created, is readable by others or is not owned by the process's effective
//! uid, or a cache directory that group or others may write, disables the cache (compile
//! every time; logged and counted in `xjp_plugin_cache_disabled_total{reason}`).

use super::cache_secret::read_or_create_secret;
use super::engine::PluginEngine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wasmtime::component::Component;

/// SHA-256 of a plugin file, hex encoded.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The start of every entry (the format's version is its last byte).
const MAGIC: &[u8; 8] = b"XJPCWSM1";
const MAC_LEN: usize = 32;
pub use super::cache_secret::{SECRET_FILE, SecretError};

type HmacSha256 = Hmac<Sha256>;

/// A directory of authenticated precompiled components.
#[derive(Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// Read (or created) on first use; `None` when unusable (caching is then off).
    secret: OnceLock<Option<[u8; 32]>>,
}

impl std::fmt::Debug for ComponentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentCache").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Feeds `Hash` output into SHA-256 (a stable digest of the engine's compatibility hash).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("read with finalize")
    }
}

/// The engine configuration's hash (16 hex digits).
pub fn engine_hash(engine: &PluginEngine) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    engine.engine().precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..8])
}

impl ComponentCache {
    /// A cache in `dir`; `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir, secret: OnceLock::new() }
    }

    /// The entry path of a component (`None` when caching is off).
    pub fn entry(&self, engine: &PluginEngine, hash: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{hash}-{}.xjpc", engine_hash(engine))))
    }

    fn secret(&self) -> Option<&[u8; 32]> {
        self.secret
            .get_or_init(|| {
                let dir = self.dir.as_ref()?;
                read_or_create_secret(dir)
                    .map_err(|e| {
                        metrics::counter!("xjp_plugin_cache_disabled_total", "reason" => e.reason()).increment(1);
                        tracing::error!(dir = %dir.display(), error = %e, "plugin cache disabled: no usable secret");
                    })
                    .ok()
            })
            .as_ref()
    }

    /// The component for `bytes`: from the cache when its entry is present and verifies,
    /// else compiled (and written back, atomically, best effort).
    pub fn load(&self, engine: &PluginEngine, hash: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let entry = self.entry(engine, hash).zip(self.secret());
        if let Some((path, key)) = &entry {
            match std::fs::read(path) {
                Ok(file) => match verify(key, hash, &engine_hash(engine), &file) {
                    // SAFETY: the artifact carries this installation's MAC over the component's
                    // hash, the engine's compatibility hash and its bytes: it was written by
                    // `Engine::precompile_component` of a compatible engine in this
                    // installation, and the bytes verified are the bytes deserialized (from
                    // memory, not a file that could change after the check).
                    Ok(artifact) => match unsafe { Component::deserialize(engine.engine(), artifact) } {
                        Ok(c) => return Ok(c),
                        Err(e) => reject(path, "deserialize", &format!("{e:#}")),
                    },
                    Err(reason) => reject(path, reason, "the entry does not verify"),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => reject(path, "unreadable", &e.to_string()),
            }
        }
        let compiled = engine.engine().precompile_component(bytes)?;
        if let Some((path, key)) = &entry {
            let mut file = Vec::with_capacity(MAGIC.len() + MAC_LEN + compiled.len());
            file.extend_from_slice(MAGIC);
            file.extend_from_slice(&mac(key, hash, &engine_hash(engine), &compiled));
            file.extend_from_slice(&compiled);
            if let Err(e) = write_atomically(path, &file) {
                tracing::warn!(path = %path.display(), error = %e, "cannot cache precompiled plugin");
            }
        }
        // SAFETY: `compiled` was produced just above by this engine.
        Ok(unsafe { Component::deserialize(engine.engine(), &compiled)? })
    }
}

/// The MAC state over what an entry vouches for: the format, both hashes, the artifact.
fn keyed(key: &[u8; 32], hash: &str, engine: &str, artifact: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in [MAGIC.as_slice(), hash.as_bytes(), b"\0", engine.as_bytes(), b"\0", artifact] {
        m.update(part);
    }
    m
}

fn mac(key: &[u8; 32], hash: &str, engine: &str, artifact: &[u8]) -> [u8; MAC_LEN] {
    keyed(key, hash, engine, artifact).finalize().into_bytes().into()
}

/// The artifact of an entry whose MAC verifies (compared in constant time), or why not.
fn verify<'a>(key: &[u8; 32], hash: &str, engine: &str, file: &'a [u8]) -> Result<&'a [u8], &'static str> {
    let rest = file.strip_prefix(MAGIC.as_slice()).ok_or("format")?;
    if rest.len() < MAC_LEN {
        return Err("format");
    }
    let (tag, artifact) = rest.split_at(MAC_LEN);
    keyed(key, hash, engine, artifact).verify_slice(tag).map_err(|_| "mac")?;
    Ok(artifact)
}

/// Deletes an entry that failed its check (it is recompiled) and counts it.
fn reject(path: &Path, reason: &'static str, detail: &str) {
    tracing::warn!(path = %path.display(), reason, detail, "discarding a precompiled plugin that failed its check");
    metrics::counter!("xjp_plugin_cache_rejected_total", "reason" => reason).increment(1);
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot delete the rejected entry");
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_data()));
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_binds_the_hashes_and_the_bytes() {
        let key = [7u8; 32];
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&mac(&key, "aa", "e1", b"artifact"));
        file.extend_from_slice(b"artifact");
        assert_eq!(verify(&key, "aa", "e1", &file), Ok(b"artifact".as_slice()));
        assert_eq!(verify(&key, "bb", "e1", &file), Err("mac"), "another component's name");
        assert_eq!(verify(&key, "aa", "e2", &file), Err("mac"), "another engine");
        assert_eq!(verify(&[8u8; 32], "aa", "e1", &file), Err("mac"), "another install");
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verify(&key, "aa", "e1", &flipped), Err("mac"));
        assert_eq!(verify(&key, "aa", "e1", b"\x7fELF"), Err("format"));
    }
}
