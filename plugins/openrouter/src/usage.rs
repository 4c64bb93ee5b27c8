//! OpenRouter's `usage` object: OpenAI's buckets plus the billed cost.
//!
//! `prompt_tokens` includes both `prompt_tokens_details.cached_tokens` (cache reads)
//! and `prompt_tokens_details.cache_write_tokens`, which the SDK's OpenAI reader takes
//! out of the uncached input. `cost` is what OpenRouter charged, in USD, as a JSON number.

use serde::Deserialize;
use serde::de::MapAccess;
use xjp_plugin_sdk::Usage;
use xjp_plugin_sdk::json::Value;
use xjp_plugin_sdk::json::lenient::{Fields, Obj, Usd, value};
use xjp_plugin_sdk::openai_chat::{Dialect, UsageObject, usage_from_object};

/// The OpenRouter dialect of the OpenAI chat format.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenRouterDialect;

impl Dialect for OpenRouterDialect {
    type UsageObject = OpenRouterUsageObject;

    fn usage(usage: &OpenRouterUsageObject) -> Option<Usage> {
        openrouter_usage_from_object(usage)
    }
}

/// An OpenRouter `usage` object: OpenAI's counts plus the cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenRouterUsageObject {
    /// What the OpenAI reader takes from the object (cache writes included).
    pub openai: UsageObject,
    /// `cost` as nano-USD (see [`cost_nano_usd`]).
    pub cost_nano_usd: Option<i64>,
}

impl<'de> Fields<'de> for OpenRouterUsageObject {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "cost" => self.cost_nano_usd = value::<Usd, _>(map)?.0,
            _ => self.openai.field(key, map)?,
        }
        Ok(())
    }
}

/// Buckets from an OpenRouter `usage` object; `served_model` is left unset.
///
/// Cache writes go to the 5-minute bucket (OpenRouter reports one write count). `None`
/// when the object carries no token counts, as for OpenAI.
pub fn openrouter_usage(usage: &Value) -> Option<Usage> {
    Obj::<OpenRouterUsageObject>::deserialize(usage).ok()?.0.as_ref().and_then(openrouter_usage_from_object)
}

/// [`openrouter_usage`] of an already-read `usage` object.
pub fn openrouter_usage_from_object(usage: &OpenRouterUsageObject) -> Option<Usage> {
    let mut out = usage_from_object(&usage.openai)?;
    out.provider_cost_nano_usd = usage.cost_nano_usd;
    Some(out)
}

/// A non-negative USD amount (a JSON number, or a decimal string) as nano-USD, exactly:
/// a number is converted through the decimal text serde_json prints for it, never a
/// float product ([`Usd`]).
pub fn cost_nano_usd(cost: &Value) -> Option<i64> {
    Usd::of(cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cache_reads_and_writes_both_come_out_of_prompt_tokens() {
        let u = openrouter_usage(&json!({
            "prompt_tokens": 3390, "completion_tokens": 402, "total_tokens": 3792,
            "prompt_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 1690, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 251},
            "cost": 0.0133203, "is_byok": false
        }))
        .unwrap();
        assert_eq!(u.input_uncached_tokens, 164);
        assert_eq!(u.cache_read_tokens, 1536);
        assert_eq!(u.cache_write_5m_tokens, 1690);
        assert_eq!(u.cache_write_1h_tokens, 0);
        assert_eq!((u.output_tokens, u.reasoning_tokens), (402, 251));
        assert_eq!(u.provider_cost_nano_usd, Some(13_320_300));
    }

    #[test]
    fn writes_above_prompt_saturate() {
        let u = openrouter_usage(&json!({"prompt_tokens": 100, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 90}}))
        .unwrap();
        assert_eq!(u.input_uncached_tokens, 0);
        assert_eq!((u.cache_read_tokens, u.cache_write_5m_tokens), (60, 90));
    }

    #[test]
    fn cost_is_exact_decimal_text() {
        // Parsed from the JSON text, so these go through serde_json's shortest round-trip form.
        let cost = |text: &str| cost_nano_usd(&serde_json::from_str(text).unwrap());
        assert_eq!(cost("0.000924"), Some(924_000));
        assert_eq!(cost("1.05e-5"), Some(10_500));
        assert_eq!(cost("6.4e-7"), Some(640));
        assert_eq!(cost("0.0000000015"), Some(2));
        assert_eq!(cost("0"), Some(0));
        assert_eq!(cost("12"), Some(12_000_000_000));
        assert_eq!(cost("0.1"), Some(100_000_000));
        assert_eq!(cost("0.30000000000000004"), Some(300_000_000));
        assert_eq!(cost(r#""0.000924""#), Some(924_000));
        assert_eq!(cost("-0.5"), None);
        assert_eq!(cost("1e300"), None);
        assert_eq!(cost("null"), None);
        assert_eq!(cost(r#""abc""#), None);
    }

    #[test]
    fn missing_or_odd_cost_leaves_tokens_alone() {
        let u = openrouter_usage(&json!({"prompt_tokens": 5, "completion_tokens": 2, "cost": {"usd": 1}})).unwrap();
        assert_eq!((u.input_uncached_tokens, u.output_tokens, u.provider_cost_nano_usd), (5, 2, None));
        assert_eq!(openrouter_usage(&json!({"cost": 0.01})), None);
    }
}
