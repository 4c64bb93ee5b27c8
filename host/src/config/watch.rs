//! Config reload without a restart: on SIGHUP and when the file changes (debounced).
//! A config that fails to parse or validate is logged and the old one keeps serving.

use crate::gateway::Gateway;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::sync::{Arc, Weak};
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

fn reload(gw: &Weak<Gateway>, why: &str) {
    if let Some(gw) = gw.upgrade() {
        match gw.reload_config() {
            Ok(()) => tracing::info!(trigger = why, "config reloaded"),
            Err(e) => {
                metrics::counter!("xjp_config_reload_errors_total").increment(1);
                tracing::error!(trigger = why, error = %e, "config reload failed; keeping the previous config");
            }
        }
    }
}

/// Watches the config file's directory (editors replace files) and listens for SIGHUP.
pub fn watch(gw: &Arc<Gateway>) -> notify::Result<Option<ConfigWatcher>> {
    let Some(path) = gw.config_path.clone() else { return Ok(None) };
    let weak = Arc::downgrade(gw);
    #[cfg(unix)]
    {
        let weak = weak.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                let weak = weak.clone();
                let _ = tokio::task::spawn_blocking(move || reload(&weak, "SIGHUP")).await;
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
                reload(&weak, "file change");
            }
        }
    })?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(Some(ConfigWatcher { _debouncer: debouncer }))
}
