//! Upper-bound usage of a Perplexity request, for the balance hold.
//!
//! The SDK's [`openai_chat::estimate`] bounds the prompt and the output (it reads
//! `web_search_options` as an OpenAI search and adds its `web_search` fee and search-result
//! prompt tokens; the tokens stay, the fee is replaced by Perplexity's own):
//!
//! | request | bound |
//! | --- | --- |
//! | a Sonar model | the request fee of `web_search_options.search_context_size` (`low` when absent; another value is refused) |
//! | `sonar-deep-research` | no request fee; [`DEEP_RESEARCH_SEARCHES`] search queries, [`DEEP_RESEARCH_CITATION_TOKENS`] citation tokens and [`DEEP_RESEARCH_REASONING_TOKENS`] reasoning tokens (added to the output maximum) |
//!
//! **Not a hard bound** for Deep Research: Perplexity documents no maximum of its searches,
//! citations or reasoning. The figures are about three times the largest documented run
//! (22 to 30 searches, ~25k citation tokens, ~330k reasoning tokens); a run beyond them is
//! billed in full, beyond the hold, and the row is flagged for review.

use crate::{CITATION_TOKENS_FEE, SEARCH_QUERIES_FEE, search_context_fee};
use xjp_plugin_sdk::estimate::{add_fee, parse_request};
use xjp_plugin_sdk::json::Value;
use xjp_plugin_sdk::openai_chat::{self, request::WEB_SEARCH_FEE};
use xjp_plugin_sdk::{ApiFormat, ModelLimits, PluginError, PluginResult, Usage};

/// Search queries allowed per Deep Research request.
pub const DEEP_RESEARCH_SEARCHES: u64 = 100;
/// Citation tokens allowed per Deep Research request.
pub const DEEP_RESEARCH_CITATION_TOKENS: u64 = 100_000;
/// Reasoning tokens allowed per Deep Research request.
pub const DEEP_RESEARCH_REASONING_TOKENS: u64 = 1_000_000;

/// Whether `model` is Sonar Deep Research.
pub fn is_deep_research(model: &str) -> bool {
    model.contains("deep-research")
}

/// An upper bound of the usage a Perplexity request can incur (see the module docs).
pub fn estimate(format: ApiFormat, request: &[u8], limits: &ModelLimits) -> PluginResult<Usage> {
    let mut usage = openai_chat::estimate(format, request, limits)?;
    usage.fees.retain(|f| f.name != WEB_SEARCH_FEE);
    let body = parse_request(request)?;
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if is_deep_research(model) {
        add_fee(&mut usage, SEARCH_QUERIES_FEE, DEEP_RESEARCH_SEARCHES);
        add_fee(&mut usage, CITATION_TOKENS_FEE, DEEP_RESEARCH_CITATION_TOKENS);
        usage.output_tokens = usage.output_tokens.saturating_add(DEEP_RESEARCH_REASONING_TOKENS);
        usage.reasoning_tokens = DEEP_RESEARCH_REASONING_TOKENS;
        return Ok(usage);
    }
    let size = match body.get("web_search_options").and_then(|o| o.get("search_context_size")) {
        None | Some(Value::Null) => "low",
        Some(Value::String(s)) if matches!(s.as_str(), "low" | "medium" | "high") => s.as_str(),
        Some(_) => {
            return Err(PluginError::InvalidRequest(
                "`web_search_options.search_context_size` must be \"low\", \"medium\" or \"high\"".into(),
            ));
        }
    };
    add_fee(&mut usage, search_context_fee(size), 1);
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::Fee;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 8192 };

    fn est(body: &str) -> PluginResult<Usage> {
        estimate(ApiFormat::OpenaiChat, body.as_bytes(), &LIMITS)
    }

    #[test]
    fn sonar_holds_the_request_fee_of_its_context_size() {
        let u = est(r#"{"model":"sonar","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(u.fees, vec![Fee { name: "search_context_low".into(), count: 1 }]);
        let u =
            est(r#"{"model":"sonar-pro","web_search_options":{"search_context_size":"high"},"messages":[]}"#).unwrap();
        assert_eq!(u.fees, vec![Fee { name: "search_context_high".into(), count: 1 }]);
        assert!(u.input_uncached_tokens > 30_000, "search results are held as prompt");
        let bad = est(r#"{"model":"sonar","web_search_options":{"search_context_size":"max"},"messages":[]}"#);
        xjp_plugin_sdk::testing::assert_refused(bad, "search_context_size", "bad size");
    }

    #[test]
    fn deep_research_holds_searches_citations_and_reasoning() {
        let u = est(r#"{"model":"sonar-deep-research","max_tokens":1000,"messages":[]}"#).unwrap();
        assert_eq!(u.output_tokens, 1000 + DEEP_RESEARCH_REASONING_TOKENS);
        assert_eq!(u.reasoning_tokens, DEEP_RESEARCH_REASONING_TOKENS);
        let names: Vec<&str> = u.fees.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, [SEARCH_QUERIES_FEE, CITATION_TOKENS_FEE]);
    }
}
