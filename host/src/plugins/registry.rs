//! The plugin set: loaded from a directory, reloaded on change, swapped atomically.
//!
//! A request takes `registry.current()` once and keeps that `Arc<PluginSet>` until it
//! ends, so a reload never changes the plugin under a running request, and a deleted
//! plugin is freed when its last in-flight call drops it. A file that fails to load
//! leaves the previous version serving and is reported in [`PluginRegistry::status`].

use super::cache::{ComponentCache, content_hash};
use super::convert::info_json;
use super::engine::PluginEngine;
use super::error::LoadError;
use super::plugin::Plugin;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// One immutable generation of loaded plugins, keyed by file stem (`openai.wasm` -> `openai`).
#[derive(Debug, Default)]
pub struct PluginSet {
    plugins: HashMap<String, Arc<Plugin>>,
    generation: u64,
}

impl PluginSet {
    /// The plugin loaded from `<key>.wasm`.
    pub fn get(&self, key: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(key)
    }

    /// Keys of every loaded plugin.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.plugins.keys().map(String::as_str)
    }

    /// Increases by one on every swap.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// What the operator sees for one plugin file (`GET /internal/plugins`).
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub key: String,
    pub file: String,
    /// The version serving now: `{name, version, formats}` plus its hash.
    pub loaded: Option<serde_json::Value>,
    pub sha256: Option<String>,
    pub loaded_at: Option<u64>,
    /// The last load failure; cleared when a later version of the file loads.
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
}

/// What one reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub loaded: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub removed: Vec<String>,
}

/// Loads plugins from a directory and swaps in new versions.
pub struct PluginRegistry {
    engine: Arc<PluginEngine>,
    cache: ComponentCache,
    dir: PathBuf,
    current: ArcSwap<PluginSet>,
    status: Mutex<BTreeMap<String, PluginStatus>>,
    reload_lock: Mutex<()>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry").field("dir", &self.dir).finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl PluginRegistry {
    /// A registry over `dir` (nothing loaded until [`reload`](Self::reload)).
    pub fn new(engine: Arc<PluginEngine>, dir: impl Into<PathBuf>, cache_dir: Option<PathBuf>) -> Arc<Self> {
        Arc::new(PluginRegistry {
            engine,
            cache: ComponentCache::new(cache_dir),
            dir: dir.into(),
            current: ArcSwap::from_pointee(PluginSet::default()),
            status: Mutex::new(BTreeMap::new()),
            reload_lock: Mutex::new(()),
        })
    }

    /// The plugin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current plugin set; hold it for the whole request.
    pub fn current(&self) -> Arc<PluginSet> {
        self.current.load_full()
    }

    /// Per-file status, sorted by key.
    pub fn status(&self) -> Vec<PluginStatus> {
        self.status.lock().values().cloned().collect()
    }

    /// Rescans the directory: loads new and changed files, unloads deleted ones, keeps
    /// the old version of any file that fails. Blocking (compiles): call it off the
    /// request path.
    pub fn reload(&self) -> ReloadReport {
        let _one_at_a_time = self.reload_lock.lock();
        let old = self.current.load_full();
        let mut next: HashMap<String, Arc<Plugin>> = HashMap::new();
        let mut report = ReloadReport::default();
        for (key, path) in self.plugin_files() {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(source) => {
                    let e = LoadError::Read { path: path.display().to_string(), source };
                    self.record_failure(&key, &path, &e, old.get(&key), &mut next, &mut report);
                    continue;
                }
            };
            if let Some(existing) = old.get(&key).filter(|p| p.hash() == content_hash(&bytes)) {
                // The file is (again) the version serving: nothing to load, nothing wrong.
                if let Some(status) = self.status.lock().get_mut(&key) {
                    status.last_error = None;
                    status.last_error_at = None;
                }
                next.insert(key, existing.clone());
                continue;
            }
            match Plugin::load(&self.engine, &self.cache, &bytes) {
                Ok(plugin) => {
                    tracing::info!(plugin = %key, name = %plugin.info().name, version = %plugin.info().version, "plugin loaded");
                    self.status.lock().insert(
                        key.clone(),
                        PluginStatus {
                            key: key.clone(),
                            file: path.display().to_string(),
                            loaded: Some(info_json(plugin.info())),
                            sha256: Some(plugin.hash().to_string()),
                            loaded_at: Some(unix_now()),
                            last_error: None,
                            last_error_at: None,
                        },
                    );
                    report.loaded.push(key.clone());
                    next.insert(key, plugin);
                }
                Err(e) => self.record_failure(&key, &path, &e, old.get(&key), &mut next, &mut report),
            }
        }
        for key in old.keys().filter(|k| !next.contains_key(*k)) {
            tracing::info!(plugin = %key, "plugin file removed; unloading after in-flight calls");
            report.removed.push(key.to_string());
        }
        {
            let mut status = self.status.lock();
            status.retain(|k, s| {
                next.contains_key(k) || s.last_error.is_some() && self.dir.join(format!("{k}.wasm")).exists()
            });
        }
        if !report.loaded.is_empty() || !report.removed.is_empty() {
            self.current.store(Arc::new(PluginSet { plugins: next, generation: old.generation + 1 }));
        }
        metrics::gauge!("xjp_plugins_loaded").set(self.current.load().plugins.len() as f64);
        report
    }

    fn record_failure(
        &self,
        key: &str,
        path: &Path,
        error: &LoadError,
        previous: Option<&Arc<Plugin>>,
        next: &mut HashMap<String, Arc<Plugin>>,
        report: &mut ReloadReport,
    ) {
        let serving = previous.map(|p| p.info().version.clone());
        tracing::warn!(plugin = %key, file = %path.display(), error = %error, still_serving = ?serving, "plugin failed to load");
        metrics::counter!("xjp_plugin_load_errors_total", "plugin" => key.to_string()).increment(1);
        if let Some(p) = previous {
            next.insert(key.to_string(), p.clone());
        }
        let mut status = self.status.lock();
        let entry = status.entry(key.to_string()).or_insert_with(|| PluginStatus {
            key: key.to_string(),
            file: path.display().to_string(),
            loaded: None,
            sha256: None,
            loaded_at: None,
            last_error: None,
            last_error_at: None,
        });
        entry.last_error = Some(error.to_string());
        entry.last_error_at = Some(unix_now());
        report.failed.push((key.to_string(), error.to_string()));
    }

    /// `*.wasm` files of the directory (hidden and temporary files skipped), by key.
    fn plugin_files(&self) -> BTreeMap<String, PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            tracing::warn!(dir = %self.dir.display(), "plugin directory unreadable");
            return BTreeMap::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .filter_map(|p| {
                let stem = p.file_stem()?.to_str()?.to_string();
                (!stem.starts_with('.')).then_some((stem, p))
            })
            .collect()
    }
}
