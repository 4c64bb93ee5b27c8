//! Inputs shared by the plugin benchmarks: the ~2 KB OpenAI response, its SSE events,
//! the gpt-4o price in host and SDK types, and loading `openai.wasm`.

use std::path::PathBuf;
use std::sync::Arc;
use xjp_gateway::plugins::bindings::{ApiFormat, PriceEntry};
use xjp_gateway::plugins::cache::ComponentCache;
use xjp_gateway::plugins::{Plugin, PluginEngine, RuntimeLimits};
use xjp_plugin_openai::OpenAi;
use xjp_plugin_sdk::Provider;

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
pub fn response_2k() -> Vec<u8> {
    let body = String::from_utf8(fixture("chat_basic.json")).expect("fixture is UTF-8");
    let anchor = "Here is a concise comparison";
    assert!(body.contains(anchor), "chat_basic.json changed: no `{anchor}`");
    let pad = "In short: keep money in Postgres, speed in Redis and bulk in object storage. ".repeat(4);
    let body = body.replacen(anchor, &format!("{pad}{anchor}"), 1);
    assert!((2000..2200).contains(&body.len()), "body is {} bytes, want ~2 KB", body.len());
    body.into_bytes()
}

/// `stream_usage.sse` split at blank lines: one chunk per SSE event, terminator included.
pub fn sse_events() -> Vec<Vec<u8>> {
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

/// `openai.wasm` from `target/plugins`, loaded on a new engine with `limits`.
pub fn load(limits: RuntimeLimits) -> Arc<Plugin> {
    let path = root().join("target/plugins/openai.wasm");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} — run `cargo xtask build-plugins` first", path.display()));
    let engine = PluginEngine::new(limits).expect("plugin engine");
    Plugin::load(&engine, &ComponentCache::new(None), &bytes).expect("openai.wasm loads")
}

/// The gpt-4o price as a `PriceEntry` of the module `$types` (host bindings or SDK).
macro_rules! gpt4o_price {
    ($($types:ident)::+) => {
        $($types)::+::PriceEntry {
            rates: $($types)::+::TokenRates {
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
    };
}

/// The gpt-4o price as the host hands it to a plugin.
pub fn host_price() -> PriceEntry {
    gpt4o_price!(xjp_gateway::plugins::bindings)
}

/// The gpt-4o price in the SDK's types, for the native comparison.
pub fn sdk_price() -> xjp_plugin_sdk::PriceEntry {
    gpt4o_price!(xjp_plugin_sdk)
}

/// Extract + price natively: the plugin crate compiled into the bench.
pub fn native_extract_price(body: &[u8], price: &xjp_plugin_sdk::PriceEntry) -> i64 {
    let usage = OpenAi::extract_response(xjp_plugin_sdk::ApiFormat::OpenaiChat, 200, body).unwrap().unwrap();
    xjp_plugin_sdk::pricing::price(&usage, price).unwrap().total
}

/// Extract + price through the wasm component in one call (`price-response`), as the
/// proxy does for a whole response.
pub fn wasm_extract_price(plugin: &Plugin, body: &[u8], price: &PriceEntry) -> i64 {
    let priced = plugin.price_response(ApiFormat::OpenaiChat, 200, body, price).unwrap().unwrap();
    priced.cost.unwrap().total
}

/// Extract + price as two calls (`extract-response`, then `price`), for comparison.
pub fn wasm_extract_then_price(plugin: &Plugin, body: &[u8], price: &PriceEntry) -> i64 {
    let usage = plugin.extract_response(ApiFormat::OpenaiChat, 200, body).unwrap().unwrap();
    plugin.price(&usage, price).unwrap().total
}
