//! The JSON view of usage shared by `plugin check --json`, golden cases and the APIs.

use crate::decimal::nano_to_usd;
use crate::json::Value;
use crate::{Usage, prompt_tokens};

/// Usage as the stable JSON object: `input_tokens` is every prompt-side token,
/// the other counts are the non-overlapping buckets (`cache_write_tokens` is the
/// 5-minute bucket), `reasoning_tokens` is part of `output_tokens`.
pub fn usage_to_json(u: &Usage) -> Value {
    let fees: serde_json::Map<String, Value> = u.fees.iter().map(|f| (f.name.clone(), Value::from(f.count))).collect();
    serde_json::json!({
        "input_tokens": prompt_tokens(u),
        "input_uncached_tokens": u.input_uncached_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_5m_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "provider_cost_usd": u.provider_cost_nano_usd.map(nano_to_usd),
        "fees": fees,
        "served_model": u.served_model,
    })
}
