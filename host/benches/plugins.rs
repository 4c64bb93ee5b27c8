//! Plugin cost: extract + price and stream parsing, wasm (pooled and fresh instances) vs native.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use xjp_gateway::plugins::bindings::{ApiFormat, PriceEntry, TokenRates};
use xjp_gateway::plugins::cache::ComponentCache;
use xjp_gateway::plugins::{Plugin, PluginEngine, PluginStream, RuntimeLimits};
use xjp_plugin_openai::OpenAi;
use xjp_plugin_sdk::{Provider, StreamParse};

/// gpt-4o list prices in atto-USD per token: $2.50 / $10 / $1.25 per million.
const INPUT: u64 = 2_500_000_000_000;
const OUTPUT: u64 = 10_000_000_000_000;
const CACHE_READ: u64 = 1_250_000_000_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = root().join("fixtures/openai").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `chat_basic.json` (1.8 KB) with its message content lengthened to a body of ~2 KB.
fn response_2k() -> Vec<u8> {
    let body = String::from_utf8(fixture("chat_basic.json")).expect("fixture is UTF-8");
    let anchor = "Here is a concise comparison";
    assert!(body.contains(anchor), "chat_basic.json changed: no `{anchor}`");
    let pad = "In short: keep money in Postgres, speed in Redis and bulk in object storage. ".repeat(4);
    let body = body.replacen(anchor, &format!("{pad}{anchor}"), 1);
    assert!((2000..2200).contains(&body.len()), "body is {} bytes, want ~2 KB", body.len());
    body.into_bytes()
}

/// `stream_usage.sse` split at blank lines: one chunk per SSE event, terminator included.
fn sse_events() -> Vec<Vec<u8>> {
    let sse = fixture("stream_usage.sse");
    let mut events = Vec::new();
    let mut start = 0;
    while let Some(at) = sse[start..].windows(2).position(|w| w == b"\n\n") {
        events.push(sse[start..start + at + 2].to_vec());
        start += at + 2;
    }
    if start < sse.len() {
        events.push(sse[start..].to_vec());
    }
    events
}

fn load(limits: RuntimeLimits) -> Arc<Plugin> {
    let path = root().join("target/plugins/openai.wasm");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} — run `cargo xtask build-plugins` first", path.display()));
    let engine = PluginEngine::new(limits).expect("plugin engine");
    Plugin::load(&engine, &ComponentCache::new(None), &bytes).expect("openai.wasm loads")
}

fn host_price() -> PriceEntry {
    PriceEntry {
        rates: TokenRates {
            input: INPUT,
            output: OUTPUT,
            cache_read: CACHE_READ,
            cache_write_5m: 0,
            cache_write_1h: 0,
            reasoning: None,
        },
        long_context: None,
        fees: Vec::new(),
    }
}

fn sdk_price() -> xjp_plugin_sdk::PriceEntry {
    xjp_plugin_sdk::PriceEntry {
        rates: xjp_plugin_sdk::TokenRates {
            input: INPUT,
            output: OUTPUT,
            cache_read: CACHE_READ,
            cache_write_5m: 0,
            cache_write_1h: 0,
            reasoning: None,
        },
        long_context: None,
        fees: Vec::new(),
    }
}

/// Extract + price natively: the plugin crate compiled into the bench.
fn native_extract_price(body: &[u8], price: &xjp_plugin_sdk::PriceEntry) -> i64 {
    let usage = OpenAi::extract_response(xjp_plugin_sdk::ApiFormat::OpenaiChat, 200, body).unwrap().unwrap();
    xjp_plugin_sdk::pricing::price(&usage, price).unwrap().total
}

fn wasm_extract_price(plugin: &Plugin, body: &[u8], price: &PriceEntry) -> i64 {
    let usage = plugin.extract_response(ApiFormat::OpenaiChat, 200, body).unwrap().unwrap();
    plugin.price(&usage, price).unwrap().total
}

fn plugins(c: &mut Criterion) {
    let pooled = load(RuntimeLimits::default());
    let fresh = load(RuntimeLimits { idle_per_plugin: 0, ..Default::default() });
    let body = response_2k();
    let events = sse_events();
    let (host_price, sdk_price) = (host_price(), sdk_price());
    assert_eq!(
        wasm_extract_price(&pooled, &body, &host_price),
        native_extract_price(&body, &sdk_price),
        "wasm and native disagree on the cost"
    );

    let mut group = c.benchmark_group("plugins");
    group.bench_function("extract_price/wasm_reused", |b| {
        b.iter(|| wasm_extract_price(&pooled, black_box(&body), black_box(&host_price)))
    });
    group.bench_function("extract_price/native", |b| {
        b.iter(|| native_extract_price(black_box(&body), black_box(&sdk_price)))
    });
    group.bench_function("extract/wasm_reused", |b| {
        b.iter(|| pooled.extract_response(ApiFormat::OpenaiChat, 200, black_box(&body)).unwrap())
    });
    group.bench_function("extract/wasm_fresh_instance", |b| {
        b.iter(|| fresh.extract_response(ApiFormat::OpenaiChat, 200, black_box(&body)).unwrap())
    });

    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("stream_chunk/wasm", |b| {
        b.iter(|| {
            let mut stream = PluginStream::open(pooled.clone(), ApiFormat::OpenaiChat).unwrap();
            for event in &events {
                stream.push(black_box(event)).unwrap();
            }
            stream.finish().unwrap()
        })
    });
    group.bench_function("stream_chunk/native", |b| {
        b.iter(|| {
            let mut stream = OpenAi::new_stream(xjp_plugin_sdk::ApiFormat::OpenaiChat);
            for event in &events {
                stream.push(black_box(event)).unwrap();
            }
            stream.finish().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, plugins);
criterion_main!(benches);
