//! The `usage` object of a chat completion, split into non-overlapping buckets.
//!
//! OpenAI counts cached prompt tokens inside `prompt_tokens` and reasoning tokens inside
//! `completion_tokens`, so the uncached input is `prompt - cached` and the output is
//! `completion` with `reasoning` reported as a part of it.

use xjp_plugin_sdk::json::{Value, sat_sub, u64_at, u64_or_zero};
use xjp_plugin_sdk::{Usage, empty_usage};

/// Buckets from an OpenAI `usage` object; `served_model` is left unset.
///
/// `None` when `usage` is not an object or has neither `prompt_tokens` nor
/// `completion_tokens` (an empty `{}` is no usage, not a free request). Cached tokens
/// come from `prompt_tokens_details.cached_tokens`, or DeepSeek-style
/// `prompt_cache_hit_tokens` when that is absent. See [`output_tokens`] for how
/// upstreams that leave reasoning out of `completion_tokens` are recognised.
pub fn usage_from_value(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let prompt = u64_at(usage, &["prompt_tokens"]);
    let completion = u64_at(usage, &["completion_tokens"]);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let prompt = prompt.unwrap_or(0);
    let completion = completion.unwrap_or(0);
    let cached = u64_at(usage, &["prompt_tokens_details", "cached_tokens"])
        .or_else(|| u64_at(usage, &["prompt_cache_hit_tokens"]))
        .unwrap_or(0);
    let reasoning = u64_or_zero(usage, &["completion_tokens_details", "reasoning_tokens"]);
    let total = u64_at(usage, &["total_tokens"]);

    let mut out = empty_usage();
    out.input_uncached_tokens = sat_sub(prompt, cached);
    out.cache_read_tokens = cached;
    out.output_tokens = output_tokens(prompt, completion, reasoning, total);
    out.reasoning_tokens = reasoning;
    Some(out)
}

/// All generated tokens, reasoning included.
///
/// OpenAI's `completion_tokens` already includes reasoning. Some OpenAI-compatible
/// translators (Gemini behind an OpenAI facade, for one) report it apart; that shows as
/// `total_tokens == prompt + completion + reasoning` with `reasoning > 0`, and then the
/// reasoning is added. Output is never less than the reasoning it contains.
pub fn output_tokens(prompt: u64, completion: u64, reasoning: u64, total: Option<u64>) -> u64 {
    let reasoning_apart = reasoning > 0 && total == Some(prompt.saturating_add(completion).saturating_add(reasoning));
    let output = if reasoning_apart { completion.saturating_add(reasoning) } else { completion };
    output.max(reasoning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cached_and_reasoning_are_parts_of_their_totals() {
        let u = usage_from_value(&json!({
            "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 256}
        }))
        .unwrap();
        assert_eq!(u.input_uncached_tokens, 86);
        assert_eq!(u.cache_read_tokens, 1920);
        assert_eq!(u.cache_write_5m_tokens, 0);
        assert_eq!(u.output_tokens, 300);
        assert_eq!(u.reasoning_tokens, 256);
        assert_eq!(u.served_model, None);
    }

    #[test]
    fn cached_above_prompt_saturates() {
        let u = usage_from_value(&json!({"prompt_tokens": 10, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 64}}))
        .unwrap();
        assert_eq!(u.input_uncached_tokens, 0);
        assert_eq!(u.cache_read_tokens, 64);
    }

    #[test]
    fn reasoning_reported_apart_is_added_when_total_says_so() {
        // completion excludes the 60 reasoning tokens: 21 + 0 + 60 == 81.
        let u = usage_from_value(&json!({"prompt_tokens": 21, "completion_tokens": 0,
            "total_tokens": 81, "completion_tokens_details": {"reasoning_tokens": 60}}))
        .unwrap();
        assert_eq!((u.output_tokens, u.reasoning_tokens), (60, 60));
        let u = usage_from_value(&json!({"prompt_tokens": 21, "completion_tokens": 40,
            "total_tokens": 121, "completion_tokens_details": {"reasoning_tokens": 60}}))
        .unwrap();
        assert_eq!(u.output_tokens, 100);
        // OpenAI's own shape: total == prompt + completion, nothing added.
        let u = usage_from_value(&json!({"prompt_tokens": 21, "completion_tokens": 100,
            "total_tokens": 121, "completion_tokens_details": {"reasoning_tokens": 60}}))
        .unwrap();
        assert_eq!(u.output_tokens, 100);
        // No total and reasoning above completion: output is at least the reasoning.
        let u = usage_from_value(&json!({"prompt_tokens": 21, "completion_tokens": 5,
            "completion_tokens_details": {"reasoning_tokens": 60}}))
        .unwrap();
        assert_eq!(u.output_tokens, 60);
    }

    #[test]
    fn deepseek_cache_hit_field_is_a_fallback() {
        let u = usage_from_value(&json!({"prompt_tokens": 1000, "completion_tokens": 5,
            "prompt_cache_hit_tokens": 768, "prompt_cache_miss_tokens": 232}))
        .unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_read_tokens), (232, 768));
    }

    #[test]
    fn no_counts_is_no_usage() {
        assert_eq!(usage_from_value(&json!({})), None);
        assert_eq!(usage_from_value(&json!(null)), None);
        assert_eq!(usage_from_value(&json!("12")), None);
        assert_eq!(usage_from_value(&json!({"prompt_tokens": -3, "completion_tokens": 1.5})), None);
        assert!(usage_from_value(&json!({"completion_tokens": 7})).is_some());
    }

    #[test]
    fn huge_counts_saturate() {
        let u = usage_from_value(&json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX,
            "total_tokens": u64::MAX, "completion_tokens_details": {"reasoning_tokens": u64::MAX}}))
        .unwrap();
        assert_eq!(u.output_tokens, u64::MAX);
    }
}
