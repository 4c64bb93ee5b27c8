//! xjp-gateway billing plugin for Perplexity (Sonar), an OpenAI-format (Chat Completions)
//! provider whose bill holds more than tokens. Written from `xjp-gateway plugin new
//! perplexity` and docs/plugins.md ("Mapping a provider's bill").
//!
//! The SDK's [`openai_chat`] reads whole responses, SSE streams and requests; this plugin
//! says how Perplexity's `usage` object maps onto the billing buckets:
//!
//! | Perplexity bills | reported as | plugin reports |
//! | --- | --- | --- |
//! | input tokens | `usage.prompt_tokens` | uncached input |
//! | output tokens | `usage.completion_tokens` | output |
//! | reasoning tokens (Deep Research), priced apart, *not* in `completion_tokens` | `usage.reasoning_tokens` | added to output and reported as its reasoning part (the price's `reasoning` rate) |
//! | citation tokens (Deep Research), per token | `usage.citation_tokens` | fee [`CITATION_TOKENS_FEE`], one unit per token |
//! | search queries (Deep Research), per query | `usage.num_search_queries` | fee [`SEARCH_QUERIES_FEE`] |
//! | the request fee of Sonar models, by search context size | `usage.search_context_size` (`low`, `medium`, `high`) | one of the fees [`SEARCH_CONTEXT_FEES`] (an unknown size is [`SEARCH_CONTEXT_UNKNOWN_FEE`], which no price lists: the row is priced as an estimate and flagged for review); none for Deep Research (see below) |
//! | Perplexity's own total | `usage.cost.total_cost` (USD) | the provider's reported cost |
//!
//! Perplexity documents the request fee for Sonar, Sonar Pro, Sonar Reasoning and Sonar
//! Reasoning Pro only; Deep Research is billed by tokens, citation tokens, searches and
//! reasoning, with no request fee. Its usage may still carry `search_context_size` (the
//! API's usage object has the field for every model), so the size is **ignored** when the
//! response's `model` is Deep Research ([`estimate::is_deep_research`]): reporting it as a
//! fee would name a price line Deep Research does not have (the request would be charged
//! its hold and flagged), and mapping it to another fee would charge what Perplexity does
//! not. A response without a `model` keeps the fee: a charge nobody can place is flagged
//! for review rather than dropped.
//!
//! Every quantity is exact under the existing buckets: no WIT change was needed.

pub mod estimate;

use serde::de::MapAccess;
use xjp_plugin_sdk::estimate::add_fee;
use xjp_plugin_sdk::json::lenient::{Count, Fields, Obj, Str, Usd, skip, value};
use xjp_plugin_sdk::openai_chat::{self, ChatStream, Dialect, UsageObject, usage_from_object};
use xjp_plugin_sdk::{ApiFormat, Descriptor, ModelLimits, PluginResult, Provider, StreamOutcome, StreamParse, Usage};

/// Fee per citation token (Deep Research), one unit per token.
pub const CITATION_TOKENS_FEE: &str = "citation_tokens";
/// Fee per search query (Deep Research).
pub const SEARCH_QUERIES_FEE: &str = "search_queries";
/// The request fees of Sonar models: (`search_context_size`, fee name).
pub const SEARCH_CONTEXT_FEES: [(&str, &str); 3] =
    [("low", "search_context_low"), ("medium", "search_context_medium"), ("high", "search_context_high")];
/// The fee of a search context size this plugin does not know.
pub const SEARCH_CONTEXT_UNKNOWN_FEE: &str = "search_context_unknown";

/// The fee name of a search context size.
pub fn search_context_fee(size: &str) -> &'static str {
    SEARCH_CONTEXT_FEES.iter().find(|(s, _)| *s == size).map_or(SEARCH_CONTEXT_UNKNOWN_FEE, |(_, fee)| fee)
}

/// The Perplexity provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Perplexity;

impl Provider for Perplexity {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!("perplexity", openai_chat::FORMATS);

    type Stream = PerplexityStream;

    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        let mut usage = openai_chat::extract_response::<PerplexityDialect>(format, status, body)?;
        if let Some(u) = usage.as_mut() {
            drop_unbilled_fees(u);
        }
        Ok(usage)
    }

    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        estimate::estimate(format, request, &limits)
    }

    fn new_stream(format: ApiFormat) -> Self::Stream {
        PerplexityStream(ChatStream::new(format))
    }
}

/// Drops the request fee of a Deep Research response (see the crate docs): the usage
/// object alone does not say which model served, the response's `model` does.
pub fn drop_unbilled_fees(usage: &mut Usage) {
    if usage.served_model.as_deref().is_some_and(estimate::is_deep_research) {
        let request_fee =
            |name: &str| name == SEARCH_CONTEXT_UNKNOWN_FEE || SEARCH_CONTEXT_FEES.iter().any(|(_, n)| *n == name);
        usage.fees.retain(|f| !request_fee(&f.name));
    }
}

/// The SDK's stream reader with Perplexity's dialect, and [`drop_unbilled_fees`] at the end.
pub struct PerplexityStream(ChatStream<PerplexityDialect>);

impl StreamParse for PerplexityStream {
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.0.push(chunk)
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        let mut outcome = self.0.finish()?;
        if let Some(u) = outcome.usage.as_mut() {
            drop_unbilled_fees(u);
        }
        Ok(outcome)
    }
}

/// How Perplexity's `usage` object is read (see the crate docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct PerplexityDialect;

/// The fields of Perplexity's `usage` object that billing reads.
#[derive(Debug, Clone, Default)]
pub struct PerplexityUsage {
    /// What the OpenAI reader takes from the object (prompt and completion tokens).
    pub openai: UsageObject,
    /// `reasoning_tokens` (top level; not part of `completion_tokens`).
    pub reasoning_tokens: Option<u64>,
    /// `citation_tokens`.
    pub citation_tokens: Option<u64>,
    /// `num_search_queries`.
    pub search_queries: Option<u64>,
    /// `search_context_size`.
    pub search_context_size: Option<String>,
    /// `cost.total_cost` in nano-USD.
    pub cost_nano_usd: Option<i64>,
}

/// `usage.cost`: only its total is kept (the parts are the buckets priced above).
#[derive(Default)]
struct CostObject {
    total: Option<i64>,
}

impl<'de> Fields<'de> for CostObject {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "total_cost" => self.total = value::<Usd, _>(map)?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for PerplexityUsage {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "reasoning_tokens" => self.reasoning_tokens = value::<Count, _>(map)?.0,
            "citation_tokens" => self.citation_tokens = value::<Count, _>(map)?.0,
            "num_search_queries" => self.search_queries = value::<Count, _>(map)?.0,
            "search_context_size" => {
                self.search_context_size = value::<Str, _>(map)?.0.map(|s| s.into_owned());
            }
            "cost" => self.cost_nano_usd = value::<Obj<CostObject>, _>(map)?.0.and_then(|c| c.total),
            _ => self.openai.field(key, map)?,
        }
        Ok(())
    }
}

impl Dialect for PerplexityDialect {
    type UsageObject = PerplexityUsage;

    fn usage(usage: &PerplexityUsage) -> Option<Usage> {
        let mut out = usage_from_object(&usage.openai)?;
        // Reasoning is billed apart from `completion_tokens` (total_tokens leaves it out
        // too): the output bucket holds both, the reasoning part priced at its own rate.
        let reasoning = usage.reasoning_tokens.unwrap_or(0);
        out.output_tokens = out.output_tokens.saturating_add(reasoning);
        out.reasoning_tokens = out.reasoning_tokens.saturating_add(reasoning);
        add_fee(&mut out, CITATION_TOKENS_FEE, usage.citation_tokens.unwrap_or(0));
        add_fee(&mut out, SEARCH_QUERIES_FEE, usage.search_queries.unwrap_or(0));
        if let Some(size) = &usage.search_context_size {
            add_fee(&mut out, search_context_fee(size), 1);
        }
        out.provider_cost_nano_usd = usage.cost_nano_usd;
        Some(out)
    }
}

xjp_plugin_sdk::export_provider!(Perplexity);

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::Fee;

    fn usage(json: &str) -> Option<Usage> {
        let body = format!(r#"{{"model":"sonar","usage":{json}}}"#);
        Perplexity::extract_response(ApiFormat::OpenaiChat, 200, body.as_bytes()).unwrap()
    }

    #[test]
    fn every_billed_quantity_has_a_bucket_or_a_fee() {
        let u = usage(
            r#"{"prompt_tokens":19,"completion_tokens":9408,"total_tokens":9427,"citation_tokens":24329,
            "num_search_queries":22,"reasoning_tokens":331536,"cost":{"total_cost":1.228568}}"#,
        )
        .unwrap();
        assert_eq!((u.input_uncached_tokens, u.output_tokens, u.reasoning_tokens), (19, 9408 + 331536, 331536));
        assert_eq!(
            u.fees,
            vec![
                Fee { name: CITATION_TOKENS_FEE.into(), count: 24329 },
                Fee { name: SEARCH_QUERIES_FEE.into(), count: 22 }
            ]
        );
        assert_eq!(u.provider_cost_nano_usd, Some(1_228_568_000));
    }

    #[test]
    fn the_search_context_size_names_the_request_fee() {
        let fee =
            |size: &str| usage(&format!(r#"{{"prompt_tokens":1,"completion_tokens":1,"search_context_size":{size}}}"#));
        assert_eq!(fee("\"medium\"").unwrap().fees, vec![Fee { name: "search_context_medium".into(), count: 1 }]);
        assert_eq!(fee("\"huge\"").unwrap().fees, vec![Fee { name: SEARCH_CONTEXT_UNKNOWN_FEE.into(), count: 1 }]);
        assert_eq!(fee("3").unwrap().fees, vec![]);
        // A cost that is not an object, or has no total, is no reported cost.
        assert_eq!(usage(r#"{"prompt_tokens":1,"cost":0.5}"#).unwrap().provider_cost_nano_usd, None);
    }

    #[test]
    fn deep_research_pays_no_request_fee_whatever_size_it_reports() {
        let usage = r#"{"prompt_tokens":12,"completion_tokens":6,"num_search_queries":3,"search_context_size":"high"}"#;
        let body = format!(r#"{{"model":"sonar-deep-research","usage":{usage}}}"#);
        let u = Perplexity::extract_response(ApiFormat::OpenaiChat, 200, body.as_bytes()).unwrap().unwrap();
        assert_eq!(u.fees, vec![Fee { name: SEARCH_QUERIES_FEE.into(), count: 3 }]);
        // Streams too (the model is in every chunk, the usage in the last).
        let mut stream = Perplexity::new_stream(ApiFormat::OpenaiChat);
        let chunk = format!(r#"data: {{"model":"sonar-deep-research","choices":[],"usage":{usage}}}"#);
        stream.push(format!("{chunk}\n\ndata: [DONE]\n\n").as_bytes()).unwrap();
        let outcome = stream.finish().unwrap();
        assert_eq!(outcome.usage.unwrap().fees, vec![Fee { name: SEARCH_QUERIES_FEE.into(), count: 3 }]);
        // Sonar keeps its request fee.
        let sonar = format!(r#"{{"model":"sonar","usage":{usage}}}"#);
        let u = Perplexity::extract_response(ApiFormat::OpenaiChat, 200, sonar.as_bytes()).unwrap().unwrap();
        assert!(u.fees.iter().any(|f| f.name == "search_context_high"), "{:?}", u.fees);
    }
}
