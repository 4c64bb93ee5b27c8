//! The JSON view of usage shared by `plugin check --json`, golden cases and the APIs;
//! one definition with the gateway's, in `xjp-usage-shape`.

use crate::Usage;
use crate::json::Value;

/// Usage as the stable JSON object: `input_tokens` is every prompt-side token,
/// the other counts are the non-overlapping buckets (`cache_write_tokens` is the
/// 5-minute bucket), `reasoning_tokens` is part of `output_tokens`.
pub fn usage_to_json(u: &Usage) -> Value {
    xjp_usage_shape::usage_json!(u)
}
