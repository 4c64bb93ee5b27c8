//! xjp-gateway billing plugin for OpenRouter: the OpenAI chat format plus OpenRouter's
//! `usage.cost`, cache-write counts, SSE keep-alive comments and in-band error chunks.
//!
//! Parsing is the SDK's [`xjp_plugin_sdk::openai_chat`] module run with the
//! [`OpenRouterDialect`]; only the usage reader differs.

pub mod usage;

pub use usage::OpenRouterDialect;

use xjp_plugin_sdk::openai_chat::{self as chat, ChatStream};
use xjp_plugin_sdk::{ApiFormat, Descriptor, ModelLimits, PluginResult, Provider, Usage};

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
        chat::estimate(format, request, &limits)
    }

    fn new_stream(format: ApiFormat) -> Self::Stream {
        ChatStream::new(format)
    }
}

xjp_plugin_sdk::export_provider!(OpenRouter);
