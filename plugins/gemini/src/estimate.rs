//! Upper-bound usage of a `generateContent` request, for the balance reservation.
//!
//! The SDK bounds the prompt by its bytes and the output by `maxOutputTokens`
//! (camelCase as AI Studio documents it, snake_case as the protobuf JSON mapping also
//! accepts). `candidateCount` asks for several candidates, each up to that maximum, so
//! the output bound is multiplied by it.

use xjp_plugin_sdk::json::{self, u64_at};
use xjp_plugin_sdk::{ModelLimits, PluginResult, Usage, estimate};

/// Where a request may set its output maximum.
const MAX_OUTPUT_PATHS: &[&[&str]] =
    &[&["generationConfig", "maxOutputTokens"], &["generation_config", "max_output_tokens"]];
/// Where a request may ask for several candidates.
const CANDIDATE_COUNT_PATHS: &[&[&str]] =
    &[&["generationConfig", "candidateCount"], &["generation_config", "candidate_count"]];

/// An upper bound of the usage `request` can incur.
pub fn upper_bound(request: &[u8], limits: &ModelLimits) -> PluginResult<Usage> {
    let mut usage = estimate::upper_bound(request, MAX_OUTPUT_PATHS, limits)?;
    // Both spellings (`candidateCount`, `candidate_count`) contain this; most requests
    // have neither and skip the second parse.
    const MARKER: &[u8] = b"andidate";
    if request.windows(MARKER.len()).any(|w| w == MARKER) {
        // `estimate::upper_bound` already accepted the body as a JSON object.
        if let Ok(body) = json::parse(request) {
            let candidates = CANDIDATE_COUNT_PATHS.iter().find_map(|p| u64_at(&body, p)).unwrap_or(1).max(1);
            usage.output_tokens = usage.output_tokens.saturating_mul(candidates);
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::PluginError;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 8192, max_output_tokens: 65_536 };

    #[test]
    fn reads_the_maximum_in_either_spelling() {
        let camel =
            br#"{"contents":[{"role":"user","parts":[{"text":"Hello"}]}],"generationConfig":{"maxOutputTokens":256}}"#;
        let snake = br#"{"contents":[{"role":"user","parts":[{"text":"Hello"}]}],"generation_config":{"max_output_tokens":512}}"#;
        let none = br#"{"contents":[{"role":"user","parts":[{"text":"Hello"}]}]}"#;
        assert_eq!(upper_bound(camel, &LIMITS).unwrap().output_tokens, 256);
        assert_eq!(upper_bound(snake, &LIMITS).unwrap().output_tokens, 512);
        assert_eq!(upper_bound(none, &LIMITS).unwrap().output_tokens, 8192);
        assert!(upper_bound(none, &LIMITS).unwrap().input_uncached_tokens >= 5);
        let huge = br#"{"contents":[],"generationConfig":{"maxOutputTokens":1000000}}"#;
        assert_eq!(upper_bound(huge, &LIMITS).unwrap().output_tokens, 65_536);
    }

    #[test]
    fn several_candidates_multiply_the_output_bound() {
        let two = br#"{"contents":[],"generationConfig":{"maxOutputTokens":100,"candidateCount":3}}"#;
        assert_eq!(upper_bound(two, &LIMITS).unwrap().output_tokens, 300);
        let zero = br#"{"contents":[],"generationConfig":{"maxOutputTokens":100,"candidateCount":0}}"#;
        assert_eq!(upper_bound(zero, &LIMITS).unwrap().output_tokens, 100);
        let snake = br#"{"contents":[],"generation_config":{"candidate_count":2}}"#;
        assert_eq!(upper_bound(snake, &LIMITS).unwrap().output_tokens, 16_384);
    }

    #[test]
    fn rejects_bodies_that_are_not_objects() {
        assert!(matches!(upper_bound(b"{", &LIMITS), Err(PluginError::InvalidRequest(_))));
        assert!(matches!(upper_bound(b"[{}]", &LIMITS), Err(PluginError::InvalidRequest(_))));
    }
}
