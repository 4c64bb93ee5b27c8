//! Upper-bound usage of a Messages request, for the balance reservation.
//!
//! The SDK bounds the prompt by its bytes and the output by `max_tokens` (thinking
//! budgets are part of `max_tokens`). A request that asks for prompt caching may pay
//! cache-write rates, which are above the input rate, on its whole prompt; so when it
//! carries a `cache_control` marker the bound moves the prompt into the write bucket
//! (1 h if any marker asks for `"ttl": "1h"`, else 5 min).

use xjp_plugin_sdk::json::Value;
use xjp_plugin_sdk::{ModelLimits, PluginResult, Usage, estimate};

/// The most expensive cache lifetime a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CacheAsk {
    None,
    FiveMinutes,
    OneHour,
}

/// The longest TTL among the `cache_control` markers anywhere in `v`.
fn cache_ask(v: &Value) -> CacheAsk {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let own = if key == "cache_control" && value.is_object() {
                    if value.get("ttl").and_then(Value::as_str) == Some("1h") {
                        CacheAsk::OneHour
                    } else {
                        CacheAsk::FiveMinutes
                    }
                } else {
                    CacheAsk::None
                };
                own.max(cache_ask(value))
            })
            .max()
            .unwrap_or(CacheAsk::None),
        Value::Array(items) => items.iter().map(cache_ask).max().unwrap_or(CacheAsk::None),
        _ => CacheAsk::None,
    }
}

/// An upper bound of the usage `request` can incur.
pub fn upper_bound(request: &[u8], limits: &ModelLimits) -> PluginResult<Usage> {
    let mut usage = estimate::upper_bound(request, &[&["max_tokens"]], limits)?;
    const MARKER: &[u8] = b"cache_control";
    if !request.windows(MARKER.len()).any(|w| w == MARKER) {
        return Ok(usage);
    }
    // `estimate::upper_bound` already accepted the body as a JSON object.
    let Ok(body) = xjp_plugin_sdk::json::parse(request) else {
        return Ok(usage);
    };
    let prompt = usage.input_uncached_tokens;
    match cache_ask(&body) {
        CacheAsk::None => {}
        CacheAsk::FiveMinutes => {
            usage.input_uncached_tokens = 0;
            usage.cache_write_5m_tokens = prompt;
        }
        CacheAsk::OneHour => {
            usage.input_uncached_tokens = 0;
            usage.cache_write_1h_tokens = prompt;
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::{PluginError, prompt_tokens};

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 64_000 };

    #[test]
    fn bounds_output_by_max_tokens_within_the_model_ceiling() {
        let u = upper_bound(
            br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Hi"}]}"#,
            &LIMITS,
        )
        .unwrap();
        assert_eq!(u.output_tokens, 1024);
        assert!(u.input_uncached_tokens >= 2);
        assert_eq!(u.cache_write_5m_tokens + u.cache_write_1h_tokens, 0);
        let u = upper_bound(br#"{"max_tokens":128000,"messages":[]}"#, &LIMITS).unwrap();
        assert_eq!(u.output_tokens, 64_000);
        let u = upper_bound(br#"{"messages":[]}"#, &LIMITS).unwrap();
        assert_eq!(u.output_tokens, 4096);
    }

    #[test]
    fn cache_markers_move_the_prompt_to_the_write_bucket() {
        let plain = br#"{"max_tokens":10,"system":[{"type":"text","text":"You are terse."}],"messages":[]}"#;
        let five = br#"{"max_tokens":10,"system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}}],"messages":[]}"#;
        let hour = br#"{"max_tokens":10,"system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral"}}]}]}"#;
        let u = upper_bound(plain, &LIMITS).unwrap();
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (0, 0));
        let u = upper_bound(five, &LIMITS).unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_write_1h_tokens), (0, 0));
        assert_eq!(u.cache_write_5m_tokens, prompt_tokens(&u));
        assert!(u.cache_write_5m_tokens > 0);
        let u = upper_bound(hour, &LIMITS).unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_write_5m_tokens), (0, 0));
        assert!(u.cache_write_1h_tokens > 0);
        // A marker word inside text is not a marker.
        let text = br#"{"max_tokens":10,"messages":[{"role":"user","content":"what is cache_control?"}]}"#;
        assert_eq!(upper_bound(text, &LIMITS).unwrap().cache_write_5m_tokens, 0);
    }

    #[test]
    fn rejects_bodies_that_are_not_objects() {
        assert!(matches!(upper_bound(b"not json", &LIMITS), Err(PluginError::InvalidRequest(_))));
        assert!(matches!(upper_bound(b"[]", &LIMITS), Err(PluginError::InvalidRequest(_))));
    }
}
