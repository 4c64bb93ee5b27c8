//! Config reload without a restart: on SIGHUP and when the file changes (debounced).
//! The reload itself is the caller's callback; a config that fails to parse or validate is
//! logged and the old one keeps serving.

use super::ConfigError;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::path::PathBuf;
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
    let file_name = path.file_name().map(|n| n.to_owned());
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| ".".into());
    let mut debouncer = new_debouncer(Duration::from_millis(200), None, move |result: DebounceEventResult| {
        if let Ok(events) = result {
            let touches_config = events
                .iter()
                .any(|e| !e.kind.is_access() && e.paths.iter().any(|p| p.file_name() == file_name.as_deref()));
            if touches_config {
                run(&reload, "file change");
            }
        }
    })?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(ConfigWatcher { _debouncer: debouncer })
}
