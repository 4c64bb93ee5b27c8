//! xjp-gateway billing plugin for OpenRouter: the OpenAI chat format plus OpenRouter's
//! `usage.cost`, cache-write counts, SSE keep-alive comments and in-band error chunks.
//!
//! Parsing is the SDK's [`xjp_plugin_sdk::openai_chat`] module run with the
//! [`OpenRouterDialect`]; only the usage reader differs. The estimate is the SDK's, after
//! refusing OpenRouter's model fallbacks (`models`, `route`): a fallback could be served by
//! a pricier model than the route the hold was priced with.

pub mod usage;

pub use usage::OpenRouterDialect;

use xjp_plugin_sdk::openai_chat::{self as chat, ChatStream};
use xjp_plugin_sdk::{ApiFormat, Descriptor, ModelLimits, PluginError, PluginResult, Provider, Usage};

/// Refuses a request that asks OpenRouter to fall back to other models.
fn refuse_fallbacks(body: &xjp_plugin_sdk::json::Value) -> PluginResult<()> {
    let asks = |field: &str| body.get(field).is_some_and(|v| !v.is_null());
    if asks("models") || asks("route") {
        return Err(PluginError::InvalidRequest(
            "`models` / `route` (model fallbacks) are not accepted: the request is priced for the model it names"
                .into(),
        ));
    }
    Ok(())
}

/// The OpenRouter provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenRouter;

impl Provider for OpenRouter {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!("openrouter", chat::FORMATS);

    type Stream = ChatStream<OpenRouterDialect>;

    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        chat::extract_response::<OpenRouterDialect>(format, status, body)
    }

    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        chat::check_format(format)?;
        let body = xjp_plugin_sdk::estimate::parse_request(request)?;
        refuse_fallbacks(&body)?;
        chat::estimate_body(&body, &limits)
    }

    fn new_stream(format: ApiFormat) -> Self::Stream {
        ChatStream::new(format)
    }
}

xjp_plugin_sdk::export_provider!(OpenRouter);

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 1000, max_output_tokens: 4000 };

    #[test]
    fn model_fallbacks_are_refused() {
        let plain = br#"{"model":"anthropic/claude-3.5-haiku","messages":[{"role":"user","content":"hi"}]}"#;
        assert!(OpenRouter::estimate(ApiFormat::OpenaiChat, plain, LIMITS).is_ok());
        let with_null = br#"{"model":"m","models":null,"messages":[]}"#;
        assert!(OpenRouter::estimate(ApiFormat::OpenaiChat, with_null, LIMITS).is_ok());
        for body in [
            &br#"{"model":"m","models":["openai/o1-pro"],"messages":[]}"#[..],
            br#"{"model":"m","models":[],"messages":[]}"#,
            br#"{"model":"m","route":"fallback","messages":[]}"#,
        ] {
            let got = OpenRouter::estimate(ApiFormat::OpenaiChat, body, LIMITS);
            assert!(matches!(got, Err(PluginError::InvalidRequest(_))), "{}", String::from_utf8_lossy(body));
        }
    }
}
