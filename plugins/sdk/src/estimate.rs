//! Upper-bound usage estimates from a request body, for the balance reservation.
//!
//! A byte-level BPE token always covers at least one byte, so the bytes of the text a
//! request carries bound its prompt tokens from above. Binary payloads (base64 images,
//! `data:` URLs) are counted as a fixed allowance per item instead of per byte.

use crate::json::Value;
use crate::{ModelLimits, PluginError, Usage, empty_usage};

/// Tokens assumed per inline binary item (image, audio, document).
pub const BINARY_ITEM_TOKENS: u64 = 8_192;
/// Tokens added per message/part for role markers and separators.
pub const PER_NODE_TOKENS: u64 = 4;

/// Keys whose string values hold base64 payloads.
const BINARY_KEYS: &[&str] = &["data", "image_url", "url", "file_data", "bytes"];

/// Prompt-token upper bound of a JSON request: the bytes of every string and key,
/// plus a per-object allowance, with binary payloads counted per item.
pub fn prompt_upper_bound(request: &Value) -> u64 {
    fn walk(v: &Value, key: Option<&str>) -> u64 {
        match v {
            Value::String(s) => {
                let binary = s.starts_with("data:")
                    || (s.len() > 256 && key.is_some_and(|k| BINARY_KEYS.contains(&k)) && !s.contains(' '));
                if binary { BINARY_ITEM_TOKENS } else { s.len() as u64 }
            }
            Value::Array(items) => items.iter().map(|i| walk(i, key)).fold(0u64, u64::saturating_add),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.len() as u64).saturating_add(walk(v, Some(k))))
                .fold(PER_NODE_TOKENS, u64::saturating_add),
            Value::Number(n) => n.to_string().len() as u64,
            Value::Bool(_) | Value::Null => 1,
        }
    }
    walk(request, None)
}

/// The output-token bound: the request's own maximum if it sets one, else the
/// model default, never above the model ceiling.
pub fn output_upper_bound(requested_max: Option<u64>, limits: &ModelLimits) -> u64 {
    requested_max.unwrap_or(limits.default_max_output_tokens).min(limits.max_output_tokens)
}

/// A conservative estimate: all prompt tokens priced as uncached input (the most
/// expensive way they can be billed apart from cache writes, which the caller can
/// add), and the maximum output.
pub fn upper_bound(request: &[u8], max_output_paths: &[&[&str]], limits: &ModelLimits) -> Result<Usage, PluginError> {
    let body = crate::json::parse(request).map_err(|e| match e {
        PluginError::Malformed(m) => PluginError::InvalidRequest(m),
        other => other,
    })?;
    if !body.is_object() {
        return Err(PluginError::InvalidRequest("request body must be a JSON object".into()));
    }
    let requested = max_output_paths.iter().find_map(|p| crate::json::u64_at(&body, p));
    let mut usage = empty_usage();
    usage.input_uncached_tokens = prompt_upper_bound(&body);
    usage.output_tokens = output_upper_bound(requested, limits);
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_text_and_counts_images_per_item() {
        let limits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 8192 };
        let big_b64 = "A".repeat(100_000);
        let body = format!(
            r#"{{"model":"m","max_tokens":100000,"messages":[{{"role":"user","content":[{{"type":"text","text":"hello world"}},{{"type":"image","source":{{"type":"base64","data":"{big_b64}"}}}}]}}]}}"#
        );
        let u = upper_bound(body.as_bytes(), &[&["max_tokens"]], &limits).unwrap();
        assert!(u.input_uncached_tokens > 11 + BINARY_ITEM_TOKENS);
        assert!(u.input_uncached_tokens < 11 + BINARY_ITEM_TOKENS + 200);
        assert_eq!(u.output_tokens, 8192);
        let u = upper_bound(br#"{"messages":[]}"#, &[&["max_tokens"]], &limits).unwrap();
        assert_eq!(u.output_tokens, 4096);
        assert!(matches!(upper_bound(b"[1]", &[], &limits), Err(PluginError::InvalidRequest(_))));
    }
}
