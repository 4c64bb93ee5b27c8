//! The shipped plugins' memory image stays small: every plugin instance maps its module's
//! data segments as its own memory (an open stream holds an instance), so 17 KB of float
//! printing tables linked back in by one `to_string()` on a JSON number costs ~17 MB of RSS
//! at 1,000 streams. The SDK avoids them (`xjp_plugin_sdk::json::number_text`); this test
//! catches a change that brings them back.

use crate::common;

/// The most data-segment bytes a shipped provider plugin may carry (they are ~18–21 KB;
/// serde_json's float printer alone is 17 KB).
const MAX_DATA_BYTES: usize = 24 * 1024;

const SHIPPED: [&str; 6] = ["openai", "anthropic", "gemini", "openrouter", "perplexity", "xai"];

/// Bytes of every data segment of every core module inside a component.
fn data_bytes(wasm: &[u8]) -> usize {
    let mut total = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::DataSection(reader) = payload.expect("a valid component") {
            for data in reader {
                total += data.expect("a valid data segment").data.len();
            }
        }
    }
    total
}

#[test]
fn shipped_plugins_carry_under_24_kib_of_data_each() {
    let dir = common::root().join("target/plugins");
    let mut sizes = Vec::new();
    for name in SHIPPED {
        let path = dir.join(format!("{name}.wasm"));
        let wasm = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run cargo xtask build-plugins first)", path.display()));
        sizes.push((name, data_bytes(&wasm)));
    }
    for (name, bytes) in &sizes {
        // A parser that found nothing would pass any budget.
        assert!(*bytes > 1024, "{name}: only {bytes} data bytes found; is the parse right?");
    }
    let over: Vec<_> = sizes.iter().filter(|(_, bytes)| *bytes > MAX_DATA_BYTES).collect();
    assert!(over.is_empty(), "plugins over {MAX_DATA_BYTES} data bytes: {over:?} (all: {sizes:?})");
}
