//! Fault isolation: plugins that trap, loop forever, allocate without bound, export the
//! wrong world or are truncated each end in a clear error within a bounded time, while
//! the good plugins keep serving.

use crate::common;

use std::time::{Duration, Instant};
use xjp_gateway::plugins::bindings::ApiFormat;
use xjp_gateway::plugins::cache::ComponentCache;
use xjp_gateway::plugins::{LoadError, Plugin, PluginCallError, PluginEngine, PluginStream, RuntimeLimits};

const TRIGGER: &[u8] = br#"{"choices":[],"note":"misbehave"}"#;
const BENIGN: &[u8] = br#"{"choices":[]}"#;
const OPENAI_OK: &[u8] =
    br#"{"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// A generous time budget so that, on a loaded machine, only the spinning plugin times out
/// and the memory hog reaches its (smaller) cap first.
fn fault_engine() -> std::sync::Arc<xjp_gateway::plugins::PluginEngine> {
    let limits = RuntimeLimits { memory_bytes: 16 << 20, call_timeout_ms: 1_000, ..RuntimeLimits::default() };
    PluginEngine::new(limits).unwrap()
}

#[test]
fn faulty_calls_fail_fast_and_the_instance_is_replaced() {
    let engine = fault_engine();
    let good = common::load(&engine, &common::plugin_file("openai"));
    for (name, expected) in [("trap", "trap"), ("spin", "timeout"), ("hog", "out_of_memory")] {
        let bad = common::load(&engine, &common::test_plugin_file(name));
        let (result, took) = timed(|| bad.extract_response(ApiFormat::OpenaiChat, 200, TRIGGER));
        let err = result.expect_err(name);
        assert_eq!(err.class(), expected, "{name}: {err}");
        assert!(took < Duration::from_secs(3), "{name} took {took:?}");
        // The failed store was dropped: the same plugin still answers benign input.
        assert_eq!(bad.extract_response(ApiFormat::OpenaiChat, 200, BENIGN), Ok(None), "{name} after fault");
        // And the good plugin is untouched.
        let usage = good.extract_response(ApiFormat::OpenaiChat, 200, OPENAI_OK).unwrap().unwrap();
        assert_eq!(usage.output_tokens, 3);
    }
}

#[test]
fn timeout_error_is_specific() {
    let engine = common::engine();
    let spin = common::load(&engine, &common::test_plugin_file("spin"));
    let err = spin.extract_response(ApiFormat::OpenaiChat, 200, TRIGGER).unwrap_err();
    assert_eq!(err, PluginCallError::Timeout(engine.limits().call_timeout_ms));
    assert!(err.to_string().contains("time budget"), "{err}");
}

#[test]
fn a_faulty_stream_push_poisons_only_that_stream() {
    let engine = common::engine();
    let trap = common::load(&engine, &common::test_plugin_file("trap"));
    let mut stream = PluginStream::open(trap.clone(), ApiFormat::OpenaiChat).unwrap();
    stream.push(b"data: {}\n\n").unwrap();
    let err = stream.push(b"data: misbehave\n\n").unwrap_err();
    assert_eq!(err.class(), "trap");
    assert_eq!(stream.push(b"data: {}\n\n").unwrap_err(), err, "a failed stream stays failed");
    assert_eq!(stream.finish().unwrap_err(), err);
    drop(stream);
    let mut fresh = PluginStream::open(trap, ApiFormat::OpenaiChat).unwrap();
    fresh.push(b"data: {}\n\n").unwrap();
    assert!(fresh.finish().is_ok());
}

#[test]
fn broken_files_are_refused_with_a_clear_error() {
    let engine = common::engine();
    let cache = ComponentCache::new(None);
    let load = |bytes: &[u8]| Plugin::load(&engine, &cache, bytes).map(|_| ()).unwrap_err();

    let wrong = std::fs::read(common::test_plugin_file("wrong-world")).unwrap();
    let e = load(&wrong);
    assert!(matches!(e, LoadError::WrongWorld(_)), "{e}");
    assert!(e.to_string().contains("xjp:billing"), "{e}");

    let good = std::fs::read(common::plugin_file("openai")).unwrap();
    for cut in [0, 4, 9, good.len() / 2, good.len() - 1] {
        let e = load(&good[..cut]);
        assert!(matches!(e, LoadError::Compile(_)), "truncated at {cut}: {e}");
    }
    // Just the 8-byte header is a valid, empty component: it exports nothing of the world.
    assert!(matches!(load(&good[..8]), LoadError::WrongWorld(_)));
    let e = load(b"not wasm at all");
    assert!(matches!(e, LoadError::Compile(_)), "{e}");
}

#[test]
fn faults_in_parallel_never_disturb_good_calls() {
    let engine = fault_engine();
    let good = common::load(&engine, &common::plugin_file("openai"));
    let bad: Vec<_> =
        ["trap", "spin", "hog"].iter().map(|n| common::load(&engine, &common::test_plugin_file(n))).collect();
    std::thread::scope(|s| {
        for b in &bad {
            s.spawn(move || {
                for _ in 0..3 {
                    assert!(b.extract_response(ApiFormat::OpenaiChat, 200, TRIGGER).is_err());
                }
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..500 {
                    let u = good.extract_response(ApiFormat::OpenaiChat, 200, OPENAI_OK).unwrap().unwrap();
                    assert_eq!(u.output_tokens, 3);
                }
            });
        }
    });
}

/// `max_instances` is the number of instances the pool really holds: every one can be leased
/// at once (a component instantiates several core modules, so the engine sizes its core
/// instance slots for that), and the next lease is a clear "no free plugin instance".
#[test]
fn the_pool_holds_max_instances_at_once() {
    let limits = RuntimeLimits { max_instances: 6, idle_per_plugin: 0, ..RuntimeLimits::default() };
    let engine = PluginEngine::new(limits).unwrap();
    let plugin = common::load(&engine, &common::plugin_file("openai"));
    let held: Vec<_> = (0..6)
        .map(|i| {
            xjp_gateway::plugins::PluginStream::open(plugin.clone(), ApiFormat::OpenaiChat)
                .unwrap_or_else(|e| panic!("lease {} of 6: {e}", i + 1))
        })
        .collect();
    let err = xjp_gateway::plugins::PluginStream::open(plugin.clone(), ApiFormat::OpenaiChat).err().expect("a 7th");
    assert!(err.to_string().contains("no free plugin instance"), "{err}");
    drop(held);
    assert!(xjp_gateway::plugins::PluginStream::open(plugin, ApiFormat::OpenaiChat).is_ok(), "freed on drop");
}
