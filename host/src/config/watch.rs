//! Config reload without a restart: on SIGHUP and when the file changes (debounced).
//! The reload itself is the caller's callback; a config that fails to parse or validate is
//! logged and the old one keeps serving.
//!
//! "Changes" means its *content* as read through any symlinks: any event in the file's
//! directory makes the watcher re-read the file and reload when the bytes differ. That is
//! what catches a Kubernetes ConfigMap update, where `gateway.toml` is a symlink to
//! `..data/gateway.toml` and the update swaps the `..data` symlink to a new timestamped
//! directory (an event on `..data`, none on `gateway.toml`), as well as editors that write a
//! new file and rename it over the old one. Events on other files of the directory (a log
//! written next to the config, say) are ignored without reading anything.

use super::ConfigError;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Keeps the file watch alive.
pub struct ConfigWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigWatcher")
    }
}

/// What a reload does: re-read the file and swap it in, or say why not.
pub type Reload = Arc<dyn Fn() -> Result<(), ConfigError> + Send + Sync>;

fn run(reload: &Reload, why: &str) {
    match reload() {
        Ok(()) => tracing::info!(trigger = why, "config reloaded"),
        Err(e) => {
            metrics::counter!("xjp_config_reload_errors_total").increment(1);
            tracing::error!(trigger = why, error = %e, "config reload failed; keeping the previous config");
        }
    }
}

/// Watches `path`'s directory (editors replace files) and listens for SIGHUP; each calls
/// `reload` (on a blocking thread, never on a request).
pub fn watch(path: PathBuf, reload: Reload) -> notify::Result<ConfigWatcher> {
    #[cfg(unix)]
    {
        let reload = reload.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                let reload = reload.clone();
                let _ = tokio::task::spawn_blocking(move || run(&reload, "SIGHUP")).await;
            }
        });
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| ".".into());
    let mut seen = fingerprint(&path);
    let name = path.file_name().map(|n| n.to_os_string());
    // The file itself, or the `..data`-style entries a ConfigMap swap goes through.
    let concerns = move |p: &Path| {
        p.file_name().is_some_and(|n| Some(n) == name.as_deref() || n.as_encoded_bytes().starts_with(b".."))
    };
    let mut debouncer = new_debouncer(Duration::from_millis(200), None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        if !events.iter().any(|e| !e.kind.is_access() && e.paths.iter().any(|p| concerns(p))) {
            return;
        }
        // Unreadable for a moment (mid-swap, deleted): wait for the next event.
        let Some(now) = fingerprint(&path) else { return };
        if seen != Some(now) {
            seen = Some(now);
            run(&reload, "file change");
        }
    })?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(ConfigWatcher { _debouncer: debouncer })
}

/// The config's content hash, read through symlinks (`None` when it cannot be read).
fn fingerprint(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|bytes| Sha256::digest(&bytes).into())
}
