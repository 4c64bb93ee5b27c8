//! Shared helpers for the host's integration tests: where built plugins and fixtures are.
#![allow(dead_code)]

pub mod cluster;
pub mod harness;
pub mod http;
pub mod money;
pub mod panics;
pub mod process;
pub mod raw_h2;
pub mod raw_http;
pub mod scenarios;
pub mod schema;
pub mod services;

use std::path::PathBuf;
use std::sync::Arc;
use xjp_gateway::plugins::cache::ComponentCache;
use xjp_gateway::plugins::{Plugin, PluginEngine, RuntimeLimits};

/// Waits until `done` says so, checking every 50 ms; fails naming `what` after `within`.
pub async fn until(what: &str, within: std::time::Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn built(dir: &str, name: &str) -> PathBuf {
    let p = root().join("target").join(dir).join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: run `cargo xtask build-plugins` (cargo xtask test does it)", p.display());
    p
}

/// A provider plugin built by `cargo xtask build-plugins`.
pub fn plugin_file(name: &str) -> PathBuf {
    built("plugins", name)
}

/// A deliberately broken test plugin (`trap`, `spin`, `hog`, `wrong-world`; the contract
/// breakers `error-usage`, `price-down`, `slow-large`, `hog-large`).
pub fn test_plugin_file(name: &str) -> PathBuf {
    built("test-plugins", name)
}

/// The recorded provider responses of one provider.
pub fn fixtures(provider: &str) -> PathBuf {
    root().join("fixtures").join(provider)
}

/// An engine with default limits.
pub fn engine() -> Arc<PluginEngine> {
    PluginEngine::new(RuntimeLimits::default()).expect("engine")
}

/// Loads a plugin file with no cache.
pub fn load(engine: &Arc<PluginEngine>, path: &std::path::Path) -> Arc<Plugin> {
    let bytes = std::fs::read(path).unwrap();
    Plugin::load(engine, &ComponentCache::new(None), &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
