//! xjp-gateway billing plugin for xAI (Grok), an OpenAI-format (Chat Completions) provider
//! whose bill holds more than tokens. Written from `xjp-gateway plugin new xai` and
//! docs/plugins.md ("Mapping a provider's bill").
//!
//! The SDK's [`openai_chat`] reads whole responses, SSE streams and requests; this plugin
//! says how xAI's `usage` object maps onto the billing buckets:
//!
//! | xAI bills | reported as | plugin reports |
//! | --- | --- | --- |
//! | input tokens | `usage.prompt_tokens` less the cached ones | uncached input |
//! | cached input tokens | `usage.prompt_tokens_details.cached_tokens` | cache read |
//! | completion tokens | `usage.completion_tokens` | output |
//! | reasoning tokens, at the output rate, *not* in `completion_tokens` (`total_tokens` = prompt + completion + reasoning) | `usage.completion_tokens_details.reasoning_tokens` | added to output whether or not `total_tokens` is sent, and reported as its reasoning part |
//! | Live Search, per source used | `usage.num_sources_used` | fee [`LIVE_SEARCH_SOURCE_FEE`] |
//!
//! The SDK's OpenAI reader tells reasoning reported apart from `total_tokens`; without it, it
//! takes `completion_tokens` as the whole output (OpenAI's meaning) and clamps the reasoning
//! to it. xAI always reports reasoning apart, so [`XaiDialect`] adds it in every case: a
//! response (or a stream's last chunk) that leaves out `total_tokens` still bills its
//! reasoning.
//!
//! Every quantity is exact under the existing buckets: no WIT change was needed.

use serde::de::MapAccess;
use xjp_plugin_sdk::estimate::{MAX_COUNT, add_fee, count, parse_request};
use xjp_plugin_sdk::json::Value;
use xjp_plugin_sdk::json::lenient::{Count, Fields, value};
use xjp_plugin_sdk::openai_chat::{self, ChatStream, Dialect, UsageObject, usage_from_object};
use xjp_plugin_sdk::{ApiFormat, Descriptor, ModelLimits, PluginError, PluginResult, Provider, Usage};

/// Fee per Live Search source used.
pub const LIVE_SEARCH_SOURCE_FEE: &str = "live_search_source";
/// Sources a search may use when the request does not set `max_search_results` (xAI's default).
pub const DEFAULT_MAX_SEARCH_RESULTS: u64 = 20;
/// Prompt tokens allowed per source: Live Search puts what it read into the prompt.
pub const SOURCE_PROMPT_TOKENS: u64 = 4_096;

/// The xAI provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Xai;

impl Provider for Xai {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!("xai", openai_chat::FORMATS);

    type Stream = ChatStream<XaiDialect>;

    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        openai_chat::extract_response::<XaiDialect>(format, status, body)
    }

    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        let mut usage = openai_chat::estimate(format, request, &limits)?;
        let sources = live_search_sources(&parse_request(request)?)?;
        add_fee(&mut usage, LIVE_SEARCH_SOURCE_FEE, sources);
        usage.input_uncached_tokens =
            usage.input_uncached_tokens.saturating_add(sources.saturating_mul(SOURCE_PROMPT_TOKENS));
        Ok(usage)
    }

    fn new_stream(format: ApiFormat) -> Self::Stream {
        ChatStream::new(format)
    }
}

/// The most sources a request's Live Search may use: none without `search_parameters` or
/// with `mode: "off"`, else `max_search_results` (1 to 50, default 20).
pub fn live_search_sources(body: &Value) -> PluginResult<u64> {
    let Some(params) = body.get("search_parameters").filter(|p| !p.is_null()) else { return Ok(0) };
    if !params.is_object() {
        return Err(PluginError::InvalidRequest("`search_parameters` must be an object".into()));
    }
    match params.get("mode") {
        Some(Value::String(m)) if m == "off" => return Ok(0),
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if m == "auto" || m == "on" => {}
        Some(_) => {
            return Err(PluginError::InvalidRequest(
                "`search_parameters.mode` must be \"off\", \"auto\" or \"on\"".into(),
            ));
        }
    }
    let max = count(params.get("max_search_results"), "search_parameters.max_search_results", 1, MAX_COUNT.min(50))?;
    Ok(max.unwrap_or(DEFAULT_MAX_SEARCH_RESULTS))
}

/// How xAI's `usage` object is read (see the crate docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct XaiDialect;

/// The fields of xAI's `usage` object that billing reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct XaiUsage {
    /// What the OpenAI reader takes from the object.
    pub openai: UsageObject,
    /// `num_sources_used`.
    pub sources_used: Option<u64>,
}

impl<'de> Fields<'de> for XaiUsage {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "num_sources_used" => self.sources_used = value::<Count, _>(map)?.0,
            _ => self.openai.field(key, map)?,
        }
        Ok(())
    }
}

impl Dialect for XaiDialect {
    type UsageObject = XaiUsage;

    fn usage(usage: &XaiUsage) -> Option<Usage> {
        let mut out = usage_from_object(&usage.openai)?;
        let reasoning = usage.openai.reasoning_tokens.unwrap_or(0);
        out.output_tokens = usage.openai.completion_tokens.unwrap_or(0).saturating_add(reasoning);
        out.reasoning_tokens = reasoning;
        add_fee(&mut out, LIVE_SEARCH_SOURCE_FEE, usage.sources_used.unwrap_or(0));
        Some(out)
    }
}

xjp_plugin_sdk::export_provider!(Xai);

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::Fee;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 8192 };

    #[test]
    fn reasoning_apart_and_sources_as_a_fee() {
        let body = br#"{"model":"grok-4-0709","usage":{"prompt_tokens":37,"completion_tokens":530,"total_tokens":800,
            "prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":233},
            "num_sources_used":7}}"#;
        let u = Xai::extract_response(ApiFormat::OpenaiChat, 200, body).unwrap().unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_read_tokens), (29, 8));
        assert_eq!((u.output_tokens, u.reasoning_tokens), (763, 233));
        assert_eq!(u.fees, vec![Fee { name: LIVE_SEARCH_SOURCE_FEE.into(), count: 7 }]);
    }

    #[test]
    fn reasoning_is_billed_without_total_tokens() {
        let usage = |total: &str| {
            let body = format!(
                r#"{{"model":"grok-3-mini","usage":{{"prompt_tokens":45,"completion_tokens":12{total},
                "completion_tokens_details":{{"reasoning_tokens":310}}}}}}"#
            );
            let u = Xai::extract_response(ApiFormat::OpenaiChat, 200, body.as_bytes()).unwrap().unwrap();
            (u.output_tokens, u.reasoning_tokens)
        };
        assert_eq!(usage(""), (322, 310));
        assert_eq!(usage(r#","total_tokens":367"#), (322, 310));
    }

    #[test]
    fn the_estimate_holds_every_source_a_search_may_use() {
        let est = |b: &str| Xai::estimate(ApiFormat::OpenaiChat, b.as_bytes(), LIMITS);
        assert!(est(r#"{"model":"grok-4","messages":[]}"#).unwrap().fees.is_empty());
        assert!(est(r#"{"model":"grok-4","search_parameters":{"mode":"off"},"messages":[]}"#).unwrap().fees.is_empty());
        let u = est(r#"{"model":"grok-4","search_parameters":{"mode":"auto"},"messages":[]}"#).unwrap();
        assert_eq!(u.fees, vec![Fee { name: LIVE_SEARCH_SOURCE_FEE.into(), count: 20 }]);
        assert!(u.input_uncached_tokens >= 20 * SOURCE_PROMPT_TOKENS);
        let u = est(r#"{"model":"grok-4","search_parameters":{"mode":"on","max_search_results":5},"messages":[]}"#);
        assert_eq!(u.unwrap().fees[0].count, 5);
        for bad in [
            r#"{"search_parameters":{"mode":"always"}}"#,
            r#"{"search_parameters":{"max_search_results":51}}"#,
            r#"{"search_parameters":{"max_search_results":"5"}}"#,
            r#"{"search_parameters":true}"#,
        ] {
            assert!(matches!(est(bad), Err(PluginError::InvalidRequest(_))), "{bad}");
        }
    }
}
