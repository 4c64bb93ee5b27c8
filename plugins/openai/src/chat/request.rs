//! Upper-bound usage of a chat completion request, for the balance reservation.

use super::check_format;
use xjp_plugin_sdk::estimate::upper_bound;
use xjp_plugin_sdk::json::u64_at;
use xjp_plugin_sdk::{ApiFormat, ModelLimits, PluginResult, Usage};

/// Request fields that cap generated tokens, newest first.
pub const MAX_OUTPUT_PATHS: &[&[&str]] = &[&["max_completion_tokens"], &["max_tokens"]];

/// Largest `n` (choices per request) OpenAI accepts.
pub const MAX_CHOICES: u64 = 128;

/// The SDK's upper bound (prompt bytes as uncached input, the output cap from
/// `max_completion_tokens` / `max_tokens` within the model limits), with the output
/// multiplied by `n`: every choice can generate up to the cap, while the prompt is
/// billed once. `n` is clamped to `1..=128`.
pub fn estimate(format: ApiFormat, request: &[u8], limits: &ModelLimits) -> PluginResult<Usage> {
    check_format(format)?;
    let mut usage = upper_bound(request, MAX_OUTPUT_PATHS, limits)?;
    // `upper_bound` has already parsed the body as a JSON object.
    let choices =
        serde_json::from_slice(request).ok().and_then(|v| u64_at(&v, &["n"])).unwrap_or(1).clamp(1, MAX_CHOICES);
    usage.output_tokens = usage.output_tokens.saturating_mul(choices);
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::PluginError;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 16384 };

    fn est(body: &str) -> PluginResult<Usage> {
        estimate(ApiFormat::OpenaiChat, body.as_bytes(), &LIMITS)
    }

    #[test]
    fn prefers_max_completion_tokens_then_max_tokens_then_default() {
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        let u = est(&format!(r#"{{"model":"o3",{msgs},"max_completion_tokens":900,"max_tokens":50}}"#)).unwrap();
        assert_eq!(u.output_tokens, 900);
        let u = est(&format!(r#"{{"model":"gpt-4o",{msgs},"max_tokens":50}}"#)).unwrap();
        assert_eq!(u.output_tokens, 50);
        let u = est(&format!(r#"{{"model":"gpt-4o",{msgs}}}"#)).unwrap();
        assert_eq!(u.output_tokens, 4096);
        let u = est(&format!(r#"{{"model":"gpt-4o",{msgs},"max_tokens":1000000}}"#)).unwrap();
        assert_eq!(u.output_tokens, 16384);
        assert!(u.input_uncached_tokens >= "hi".len() as u64);
        assert_eq!((u.cache_read_tokens, u.reasoning_tokens), (0, 0));
    }

    #[test]
    fn output_scales_with_n_but_prompt_does_not() {
        let one = est(r#"{"messages":[{"role":"user","content":"hello"}],"max_tokens":100,"n":1}"#).unwrap();
        let three = est(r#"{"messages":[{"role":"user","content":"hello"}],"max_tokens":100,"n":3}"#).unwrap();
        assert_eq!(three.output_tokens, 300);
        assert_eq!(three.input_uncached_tokens, one.input_uncached_tokens);
        let silly = est(r#"{"messages":[],"max_tokens":100,"n":100000}"#).unwrap();
        assert_eq!(silly.output_tokens, 100 * MAX_CHOICES);
        let zero = est(r#"{"messages":[],"max_tokens":100,"n":0}"#).unwrap();
        assert_eq!(zero.output_tokens, 100);
    }

    #[test]
    fn bad_requests_and_formats_are_errors() {
        assert!(matches!(est("not json"), Err(PluginError::InvalidRequest(_))));
        assert!(matches!(est("[]"), Err(PluginError::InvalidRequest(_))));
        let r = estimate(ApiFormat::GeminiGenerate, b"{}", &LIMITS);
        assert_eq!(r, Err(PluginError::UnsupportedFormat(ApiFormat::GeminiGenerate)));
    }
}
