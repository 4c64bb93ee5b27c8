//! Precompiled plugin cache integrity: entries carry this install's MAC; a flipped byte,
//! another plugin's artifact under this plugin's name, a foreign file or an entry written by
//! another install is rejected (deleted, counted), recompiled, and the plugin still works —
//! through `Plugin::load`, and across a restart of the real binary with a state directory.
//! A secret others may read or a cache directory others may write turns the cache off.

use crate::common;

use common::harness::Options;
use common::http::{metric, post};
use common::money::CHAT;
use common::process::GatewayProcess;
use common::scenarios::mock;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use xjp_gateway::plugins::cache::{ComponentCache, SECRET_FILE, content_hash};
use xjp_gateway::plugins::{ApiFormat, Plugin, PluginEngine};

/// A counter of this test process, by its `reason`.
fn counted(name: &str, reason: &str) -> f64 {
    let text = xjp_gateway::ops::install_metrics().render();
    let prefix = format!("{name}{{reason=\"{reason}\"}}");
    text.lines().find(|l| l.starts_with(&prefix)).and_then(|l| l.rsplit_once(' ')?.1.parse().ok()).unwrap_or(0.0)
}

fn rejected(reason: &str) -> f64 {
    counted("xjp_plugin_cache_rejected_total", reason)
}

fn disabled(reason: &str) -> f64 {
    counted("xjp_plugin_cache_disabled_total", reason)
}

/// Loads `name` through a cache in `dir` (a new cache each time, as a restart would).
fn load(engine: &Arc<PluginEngine>, dir: &Path, name: &str) -> Arc<Plugin> {
    let bytes = std::fs::read(common::plugin_file(name)).unwrap();
    Plugin::load(engine, &ComponentCache::new(Some(dir.to_path_buf())), &bytes).expect("loads")
}

fn entry(engine: &PluginEngine, dir: &Path, name: &str) -> std::path::PathBuf {
    let hash = content_hash(&std::fs::read(common::plugin_file(name)).unwrap());
    ComponentCache::new(Some(dir.to_path_buf())).entry(engine, &hash).unwrap()
}

/// The plugin prices a recorded answer.
fn works(plugin: &Plugin) {
    let body = std::fs::read(common::fixtures("openai").join("chat_basic.json")).unwrap();
    let usage = plugin.extract_response(ApiFormat::OpenaiChat, 200, &body).unwrap().expect("usage");
    assert!(usage.output_tokens > 0);
}

#[test]
fn tampered_entries_are_rejected_and_recompiled() {
    xjp_gateway::ops::install_metrics();
    let engine = common::engine();
    let dir = tempfile::tempdir().unwrap();
    let openai = entry(&engine, dir.path(), "openai");

    works(&load(&engine, dir.path(), "openai"));
    let secret = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap();
    assert_eq!(secret.permissions().mode() & 0o777, 0o600, "the secret is private");
    assert_eq!(std::fs::metadata(&openai).unwrap().permissions().mode() & 0o777, 0o600);
    let good = std::fs::read(&openai).unwrap();
    assert!(good.starts_with(b"XJPCWSM1"));

    // A restart loads the entry as it is.
    works(&load(&engine, dir.path(), "openai"));
    assert_eq!(rejected("mac") + rejected("format"), 0.0);
    assert_eq!(std::fs::read(&openai).unwrap(), good);

    // A flipped byte in the native code.
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    std::fs::write(&openai, &flipped).unwrap();
    works(&load(&engine, dir.path(), "openai"));
    assert_eq!(rejected("mac"), 1.0);
    assert_eq!(std::fs::read(&openai).unwrap().len(), good.len(), "recompiled and written back");
    works(&load(&engine, dir.path(), "openai"));
    assert_eq!(rejected("mac"), 1.0, "the rewritten entry verifies");

    // Another plugin's valid entry under this plugin's name.
    load(&engine, dir.path(), "anthropic");
    std::fs::copy(entry(&engine, dir.path(), "anthropic"), &openai).unwrap();
    let plugin = load(&engine, dir.path(), "openai");
    assert_eq!(plugin.info().name, "openai", "not the anthropic code");
    works(&plugin);
    assert_eq!(rejected("mac"), 2.0);

    // A file that is no entry at all.
    std::fs::write(&openai, b"\x7fELF\x02\x01\x01").unwrap();
    works(&load(&engine, dir.path(), "openai"));
    assert_eq!(rejected("format"), 1.0);

    // An entry another install wrote (another secret).
    let other = tempfile::tempdir().unwrap();
    load(&engine, other.path(), "openai");
    std::fs::copy(entry(&engine, other.path(), "openai"), &openai).unwrap();
    works(&load(&engine, dir.path(), "openai"));
    assert_eq!(rejected("mac"), 3.0);
    assert_eq!(std::fs::read(&openai).unwrap().len(), good.len());
}

#[test]
fn a_secret_others_can_read_turns_the_cache_off() {
    xjp_gateway::ops::install_metrics();
    let engine = common::engine();
    let dir = tempfile::tempdir().unwrap();
    load(&engine, dir.path(), "openai");
    let openai = entry(&engine, dir.path(), "openai");
    std::fs::set_permissions(dir.path().join(SECRET_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(&openai).unwrap();
    works(&load(&engine, dir.path(), "openai"));
    assert!(!openai.exists(), "nothing is cached (or loaded) with a secret others may know");
    assert_eq!(disabled("secret_mode"), 1.0);
}

#[test]
fn a_cache_directory_group_or_others_may_write_turns_the_cache_off() {
    xjp_gateway::ops::install_metrics();
    let engine = common::engine();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
    works(&load(&engine, dir.path(), "openai"));
    assert!(!entry(&engine, dir.path(), "openai").exists(), "nothing is cached in a directory others may write");
    assert!(!dir.path().join(SECRET_FILE).exists(), "no secret is made there either");
    assert_eq!(disabled("directory_mode"), 1.0);
}

/// The real binary keeps its cache under `<state_dir>/plugin-cache`: after a stop, every
/// entry gets a flipped byte; the restart rejects each (counted on `/metrics`), recompiles
/// and writes it back, and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_rejects_tampered_entries_after_a_restart_and_recompiles() {
    let mock = mock().await;
    let (db, owner) = common::harness::owner(&mock.base_url()).await;
    let state = tempfile::tempdir().unwrap();
    let options = Options { state_dir: Some(state.path().to_path_buf()), ..Options::default() };
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &options).await;
    assert_eq!(post(&format!("{}/v1/chat/completions", process.url), &owner.key, &CHAT).await.status, 200);
    assert_eq!(metric(&process.url, "xjp_plugin_cache_rejected_total").await, 0.0);
    process.stop().await;

    let cache = state.path().join("plugin-cache");
    let openai = content_hash(&std::fs::read(common::plugin_file("openai")).unwrap());
    let mut entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xjpc"))
        .collect();
    entries.sort();
    assert!(
        entries.iter().any(|p| p.file_name().unwrap().to_string_lossy().starts_with(&openai)),
        "the openai entry was cached: {entries:?}"
    );
    let mut tampered = Vec::new();
    for path in &entries {
        let good = std::fs::read(path).unwrap();
        let mut bad = good.clone();
        let at = bad.len() / 2;
        bad[at] ^= 0x40;
        std::fs::write(path, &bad).unwrap();
        tampered.push((good.len(), bad));
    }

    let process = GatewayProcess::start(&mock.base_url(), &db.url, &options).await;
    let r = post(&format!("{}/v1/chat/completions", process.url), &owner.key, &CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rejected = metric(&process.url, "xjp_plugin_cache_rejected_total{reason=\"mac\"}").await;
    assert_eq!(rejected, entries.len() as f64, "every tampered entry is rejected");
    for (path, (len, bad)) in entries.iter().zip(&tampered) {
        let now = std::fs::read(path).unwrap();
        assert!(now != *bad && now.len() == *len, "{} was recompiled and written back", path.display());
    }
    process.stop().await;
}
