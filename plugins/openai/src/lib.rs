//! xjp-gateway billing plugin for OpenAI Chat Completions and OpenAI-compatible upstreams.
//!
//! The parsing lives in [`chat`], generic over a [`chat::Dialect`] so that other
//! OpenAI-format plugins (openrouter) reuse it. The component exports are behind the
//! `export` feature (on by default); depend on this crate with `default-features = false`
//! to use [`chat`] without exporting a second provider.

pub mod chat;

use chat::{ChatStream, OpenAiDialect};
use xjp_plugin_sdk::{ApiFormat, Descriptor, ModelLimits, PluginResult, Provider, Usage};

/// The OpenAI provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAi;

impl Provider for OpenAi {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!("openai", chat::FORMATS);

    type Stream = ChatStream<OpenAiDialect>;

    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        chat::extract_response::<OpenAiDialect>(format, status, body)
    }

    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        chat::estimate(format, request, &limits)
    }

    fn new_stream(format: ApiFormat) -> Self::Stream {
        ChatStream::new(format)
    }
}

#[cfg(feature = "export")]
xjp_plugin_sdk::export_provider!(OpenAi);
