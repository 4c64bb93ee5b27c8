//! Reloads the plugin registry when files in its directory change (debounced).

use super::registry::PluginRegistry;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::sync::Arc;
use std::time::Duration;

/// Debounce window: a burst of writes to one file causes one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Keeps the directory watch alive; dropping it stops reloading.
pub struct PluginWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginWatcher")
    }
}

/// Watches `registry.dir()` and reloads on every debounced change. Compilation runs on
/// the watcher's own thread, never on a request.
pub fn watch(registry: Arc<PluginRegistry>) -> notify::Result<PluginWatcher> {
    let dir = registry.dir().to_path_buf();
    let weak = Arc::downgrade(&registry);
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| match result {
        Ok(events) if events.iter().any(|e| !e.kind.is_access()) => {
            if let Some(registry) = weak.upgrade() {
                let report = registry.reload();
                tracing::debug!(?report, "plugin directory changed");
            }
        }
        Ok(_) => {}
        Err(errors) => tracing::warn!(?errors, "plugin directory watch error"),
    })?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(PluginWatcher { _debouncer: debouncer })
}
