//! Gemini `usageMetadata` folded into the gateway's non-overlapping buckets.
//!
//! `promptTokenCount` includes `cachedContentTokenCount`; `candidatesTokenCount`
//! excludes `thoughtsTokenCount`; `toolUsePromptTokenCount` is prompt-side input on top
//! of the prompt (for example the tool results of grounding or URL context). So:
//! cache read = cached, uncached input = prompt − cached + tool-use prompt,
//! output = candidates + thoughts, reasoning = thoughts.

use crate::chunk::Response;
use serde::Deserialize;
use xjp_plugin_sdk::json::Value;
use xjp_plugin_sdk::json::lenient::Obj;
use xjp_plugin_sdk::{Fee, Usage, empty_usage};

/// Fee name for a response grounded with Google Search.
pub const GOOGLE_SEARCH_FEE: &str = "google_search";

/// The usage fields seen so far over one response or stream.
///
/// Stream chunks carry cumulative counts, so a count present in a later chunk replaces
/// the earlier one. A count a chunk leaves out keeps its earlier value: proto3 JSON
/// omits zero counts, and Vertex sends chunks whose `usageMetadata` has no counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageFields {
    seen: bool,
    prompt: u64,
    cached: u64,
    candidates: u64,
    thoughts: u64,
    tool_use_prompt: u64,
    model: Option<String>,
    grounded: bool,
}

impl UsageFields {
    /// Folds in one response object (a whole response or one stream chunk); anything
    /// but an object says nothing.
    pub fn apply(&mut self, response: &Value) {
        if let Ok(Obj(Some(response))) = Obj::<Response>::deserialize(response) {
            self.apply_response(&response);
        }
    }

    /// Folds in one already-read response object.
    pub fn apply_response(&mut self, response: &Response) {
        if let Some(model) = response.model_version.as_deref() {
            self.model = Some(model.to_owned());
        }
        self.grounded |= response.searched();
        let Some(counts) = response.counts else {
            return;
        };
        // In the order of `chunk::COUNTS`.
        let slots =
            [&mut self.prompt, &mut self.cached, &mut self.candidates, &mut self.thoughts, &mut self.tool_use_prompt];
        for (count, slot) in counts.into_iter().zip(slots) {
            if let Some(n) = count {
                *slot = n;
                self.seen = true;
            }
        }
    }

    /// The usage record, or `None` when no token count was ever reported.
    pub fn to_usage(&self) -> Option<Usage> {
        if !self.seen {
            return None;
        }
        let mut usage = empty_usage();
        usage.cache_read_tokens = self.cached;
        usage.input_uncached_tokens = self.prompt.saturating_sub(self.cached).saturating_add(self.tool_use_prompt);
        usage.output_tokens = self.candidates.saturating_add(self.thoughts);
        usage.reasoning_tokens = self.thoughts;
        // Grounding with Google Search is billed per grounded prompt on Gemini 2.x (and
        // per search query on newer models); the response does not say which, so one
        // `google_search` unit per response that ran any search, and the operator's
        // price for that unit decides what it costs.
        if self.grounded {
            usage.fees.push(Fee { name: GOOGLE_SEARCH_FEE.to_owned(), count: 1 });
        }
        usage.served_model = self.model.clone();
        Some(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fold(chunks: &[Value]) -> Option<Usage> {
        let mut fields = UsageFields::default();
        for c in chunks {
            fields.apply(c);
        }
        fields.to_usage()
    }

    #[test]
    fn buckets_do_not_overlap() {
        let u = fold(&[json!({"usageMetadata": {
            "promptTokenCount": 1000, "cachedContentTokenCount": 600, "candidatesTokenCount": 50,
            "thoughtsTokenCount": 200, "toolUsePromptTokenCount": 30, "totalTokenCount": 1280}})])
        .unwrap();
        assert_eq!(u.cache_read_tokens, 600);
        assert_eq!(u.input_uncached_tokens, 430);
        assert_eq!((u.output_tokens, u.reasoning_tokens), (250, 200));
        // Everything billed adds up to the total the API reports.
        assert_eq!(xjp_plugin_sdk::prompt_tokens(&u) + u.output_tokens, 1280);
    }

    #[test]
    fn no_counts_means_no_usage() {
        assert_eq!(fold(&[json!({"candidates": []})]), None);
        assert_eq!(
            fold(&[json!({"usageMetadata": {"trafficType": "ON_DEMAND"}, "modelVersion": "gemini-2.5-pro"})]),
            None
        );
        assert_eq!(fold(&[json!({"usageMetadata": null})]), None);
    }

    #[test]
    fn later_counts_replace_earlier_ones_and_missing_counts_keep_them() {
        let u = fold(&[
            json!({"usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "thoughtsTokenCount": 40}}),
            json!({"usageMetadata": {"trafficType": "ON_DEMAND"}}),
            json!({"usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9}, "modelVersion": "gemini-2.5-flash"}),
        ])
        .unwrap();
        assert_eq!((u.input_uncached_tokens, u.output_tokens, u.reasoning_tokens), (12, 49, 40));
        assert_eq!(u.served_model.as_deref(), Some("gemini-2.5-flash"));
    }

    #[test]
    fn cached_above_prompt_saturates() {
        let u = fold(&[json!({"usageMetadata": {"promptTokenCount": 5, "cachedContentTokenCount": 9}})]).unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_read_tokens), (0, 9));
        let u = fold(&[json!({"usageMetadata": {"candidatesTokenCount": u64::MAX, "thoughtsTokenCount": 1}})]).unwrap();
        assert_eq!(u.output_tokens, u64::MAX);
    }

    #[test]
    fn grounding_is_one_fee_per_response_only_when_a_search_ran() {
        let grounded = json!({"candidates": [{"groundingMetadata": {"webSearchQueries": ["a", "b"]}}], "usageMetadata": {"promptTokenCount": 1}});
        let u = fold(&[grounded.clone(), grounded]).unwrap();
        assert_eq!(u.fees, vec![Fee { name: "google_search".into(), count: 1 }]);
        let none = json!({"candidates": [{"groundingMetadata": {"webSearchQueries": []}}], "usageMetadata": {"promptTokenCount": 1}});
        assert!(fold(&[none]).unwrap().fees.is_empty());
        let retrieval = json!({"candidates": [{"groundingMetadata": {"retrievalQueries": ["x"]}}], "usageMetadata": {"promptTokenCount": 1}});
        assert!(fold(&[retrieval]).unwrap().fees.is_empty());
    }
}
