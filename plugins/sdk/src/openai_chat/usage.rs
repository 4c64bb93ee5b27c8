//! The `usage` object of a chat completion, split into non-overlapping buckets.
//!
//! OpenAI counts cached prompt tokens inside `prompt_tokens` and reasoning tokens inside
//! `completion_tokens`, so the uncached input is `prompt - cached` and the output is
//! `completion` with `reasoning` reported as a part of it. Cache writes, where an upstream
//! reports them (`prompt_tokens_details.cache_write_tokens`, inside `prompt_tokens` too), are
//! taken out of the uncached input into the 5-minute write bucket.

use crate::json::lenient::{Count, Fields, Obj, skip, value};
use crate::json::{Value, sat_sub};
use crate::{Usage, empty_usage};
use serde::Deserialize;
use serde::de::MapAccess;

/// The counts of an OpenAI `usage` object that billing reads, each `None` when absent
/// or not a non-negative integer (as [`crate::json::u64_at`] reads them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageObject {
    /// `prompt_tokens`.
    pub prompt_tokens: Option<u64>,
    /// `completion_tokens`.
    pub completion_tokens: Option<u64>,
    /// `total_tokens`.
    pub total_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: Option<u64>,
    /// `prompt_tokens_details.cache_write_tokens`.
    pub cache_write_tokens: Option<u64>,
    /// DeepSeek's `prompt_cache_hit_tokens`.
    pub prompt_cache_hit_tokens: Option<u64>,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: Option<u64>,
}

/// `prompt_tokens_details`, as far as billing reads it: cache reads and cache writes.
#[derive(Default)]
struct PromptDetails {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

impl<'de> Fields<'de> for PromptDetails {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "cached_tokens" => self.cached_tokens = value::<Count, _>(map)?.0,
            "cache_write_tokens" => self.cache_write_tokens = value::<Count, _>(map)?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `completion_tokens_details`, as far as billing reads it.
#[derive(Default)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl<'de> Fields<'de> for CompletionDetails {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "reasoning_tokens" => self.reasoning_tokens = value::<Count, _>(map)?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for UsageObject {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "prompt_tokens" => self.prompt_tokens = value::<Count, _>(map)?.0,
            "completion_tokens" => self.completion_tokens = value::<Count, _>(map)?.0,
            "total_tokens" => self.total_tokens = value::<Count, _>(map)?.0,
            "prompt_cache_hit_tokens" => self.prompt_cache_hit_tokens = value::<Count, _>(map)?.0,
            "prompt_tokens_details" => {
                let details = value::<Obj<PromptDetails>, _>(map)?.0.unwrap_or_default();
                (self.cached_tokens, self.cache_write_tokens) = (details.cached_tokens, details.cache_write_tokens);
            }
            "completion_tokens_details" => {
                self.reasoning_tokens = value::<Obj<CompletionDetails>, _>(map)?.0.and_then(|d| d.reasoning_tokens);
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Buckets from an OpenAI `usage` object; `served_model` is left unset.
///
/// `None` when `usage` is not an object or has neither `prompt_tokens` nor
/// `completion_tokens` (an empty `{}` is no usage, not a free request). Cached tokens
/// come from `prompt_tokens_details.cached_tokens`, or DeepSeek-style
/// `prompt_cache_hit_tokens` when that is absent; cache writes from
/// `prompt_tokens_details.cache_write_tokens`. See [`output_tokens`] for how upstreams that
/// leave reasoning out of `completion_tokens` are recognised, and for reasoning above the
/// completion count.
pub fn usage_from_value(usage: &Value) -> Option<Usage> {
    Obj::<UsageObject>::deserialize(usage).ok()?.0.as_ref().and_then(usage_from_object)
}

/// [`usage_from_value`] of an already-read `usage` object.
pub fn usage_from_object(usage: &UsageObject) -> Option<Usage> {
    if usage.prompt_tokens.is_none() && usage.completion_tokens.is_none() {
        return None;
    }
    let prompt = usage.prompt_tokens.unwrap_or(0);
    let completion = usage.completion_tokens.unwrap_or(0);
    let cached = usage.cached_tokens.or(usage.prompt_cache_hit_tokens).unwrap_or(0);
    let cache_write = usage.cache_write_tokens.unwrap_or(0);
    let reasoning = usage.reasoning_tokens.unwrap_or(0);

    let mut out = empty_usage();
    out.input_uncached_tokens = sat_sub(sat_sub(prompt, cached), cache_write);
    out.cache_read_tokens = cached;
    out.cache_write_5m_tokens = cache_write;
    out.output_tokens = output_tokens(prompt, completion, reasoning, usage.total_tokens);
    // The reasoning part of the output, never more than the output.
    out.reasoning_tokens = reasoning.min(out.output_tokens);
    Some(out)
}

/// All generated tokens, reasoning included.
///
/// OpenAI's `completion_tokens` already includes reasoning. Some OpenAI-compatible
/// translators (Gemini behind an OpenAI facade, xAI) report it apart; that shows as
/// `total_tokens == prompt + completion + reasoning` with `reasoning > 0`, and then the
/// reasoning is added. Otherwise the output is the completion count as reported, even when
/// the reasoning figure is larger: the completion count is what the provider charges, and
/// the reasoning figure is clamped to it ([`usage_from_object`]).
pub fn output_tokens(prompt: u64, completion: u64, reasoning: u64, total: Option<u64>) -> u64 {
    let reasoning_apart = reasoning > 0 && total == Some(prompt.saturating_add(completion).saturating_add(reasoning));
    if reasoning_apart { completion.saturating_add(reasoning) } else { completion }
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
        // Reasoning above completion, not reported apart: the completion count is billed and
        // the reasoning figure clamped to it.
        let u = usage_from_value(&json!({"prompt_tokens": 21, "completion_tokens": 5,
            "completion_tokens_details": {"reasoning_tokens": 60}}))
        .unwrap();
        assert_eq!((u.output_tokens, u.reasoning_tokens), (5, 5));
        let u = usage_from_value(&json!({"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26,
            "completion_tokens_details": {"reasoning_tokens": 60}}))
        .unwrap();
        assert_eq!((u.output_tokens, u.reasoning_tokens), (5, 5));
    }

    #[test]
    fn cache_writes_come_out_of_prompt_tokens() {
        let u = usage_from_value(&json!({"prompt_tokens": 3390, "completion_tokens": 402,
            "prompt_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 1690}}))
        .unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_read_tokens, u.cache_write_5m_tokens), (164, 1536, 1690));
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
