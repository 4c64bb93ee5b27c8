//! Conversions between plugin ABI types and the JSON the gateway prints.

use super::bindings::{PluginError, PluginInfo, PriceEntry, TokenRates, Usage};
use serde_json::{Value, json};

/// A price of zero for every bucket (used by the self-test).
pub fn zero_price() -> PriceEntry {
    PriceEntry {
        rates: TokenRates { input: 0, output: 0, cache_read: 0, cache_write_5m: 0, cache_write_1h: 0, reasoning: None },
        long_context: None,
        fees: Vec::new(),
    }
}

/// All prompt-side tokens (saturating).
pub fn prompt_tokens(u: &Usage) -> u64 {
    xjp_usage_shape::prompt_tokens!(u)
}

/// Usage as the stable JSON object of `plugin check --json` and the APIs: `input_tokens`
/// is every prompt-side token; `cache_write_tokens` is the 5-minute bucket;
/// `reasoning_tokens` is part of `output_tokens`. The plugin SDK prints the same
/// (`xjp-usage-shape` defines it for both).
pub fn usage_json(u: &Usage) -> Value {
    xjp_usage_shape::usage_json!(u)
}

/// A plugin's self-description as JSON.
pub fn info_json(info: &PluginInfo) -> Value {
    json!({
        "name": info.name,
        "version": info.version,
        "formats": info.formats.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
    })
}

/// A plugin's typed error as JSON: `{"kind": ..., "message": ...}`.
pub fn plugin_error_json(e: &PluginError) -> Value {
    let (kind, message) = match e {
        PluginError::Malformed(m) => ("malformed", m.clone()),
        PluginError::UnsupportedFormat(f) => ("unsupported_format", format!("plugin does not read {f}")),
        PluginError::InvalidRequest(m) => ("invalid_request", m.clone()),
        PluginError::Overflow => ("overflow", "arithmetic overflow".to_string()),
        PluginError::Other(m) => ("other", m.clone()),
    };
    json!({ "kind": kind, "message": message })
}

/// Usage with every bucket zero (a request that consumed nothing billable); the SDK's
/// `empty_usage` is the same value (`xjp-usage-shape`).
pub fn zero_usage() -> Usage {
    xjp_usage_shape::zero_usage!(Usage)
}
