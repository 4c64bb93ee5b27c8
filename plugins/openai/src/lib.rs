//! xjp-gateway billing plugin for OpenAI Chat Completions and OpenAI-compatible upstreams.
//!
//! The parsing is the SDK's [`xjp_plugin_sdk::openai_chat`] (re-exported as [`chat`]),
//! generic over a [`chat::Dialect`] so that every OpenAI-format plugin (openrouter, and
//! plugins written outside this repository) reuses it. The component exports are behind
//! the `export` feature (on by default); depend on this crate with
//! `default-features = false` to use it natively without exporting a provider.

pub use xjp_plugin_sdk::openai_chat as chat;

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
