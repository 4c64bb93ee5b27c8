//! Billing plugin for the Anthropic Messages API (`POST /v1/messages`), plain and streamed.
//!
//! Usage comes from `usage` (see [`usage`]), streams from SSE events (see [`stream`]),
//! request bounds, and the requests refused because nothing bounds them, from the
//! request body (see [`estimate`]). Pricing and the budget check are the SDK defaults.

pub mod estimate;

pub mod stream;
pub mod usage;

use serde::de::MapAccess;
use stream::AnthropicStream;
use usage::{UsageFields, UsageObject};
use xjp_plugin_sdk::json::lenient::{Fields, NonNull, Obj, Str, skip, value};
use xjp_plugin_sdk::{ApiFormat, Descriptor, ModelLimits, PluginResult, Provider, Usage};

/// The Anthropic billing provider.
#[derive(Debug)]
pub struct Anthropic;

impl Provider for Anthropic {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!("anthropic", &[ApiFormat::AnthropicMessages]);

    type Stream = AnthropicStream;

    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        Self::DESCRIPTOR.check_format(format)?;
        if status >= 400 {
            return Ok(None);
        }
        let body: Obj<Message> = xjp_plugin_sdk::json::read(body)?;
        // A body that is not an object has no usage.
        let Some(message) = body.0 else {
            return Ok(None);
        };
        // What `xjp_plugin_sdk::json::is_error_body` checks.
        if message.error || message.kind.as_deref() == Some("error") {
            return Ok(None);
        }
        // No `usage` object (absent, or not an object): no usage.
        let Some(usage) = message.usage.0 else {
            return Ok(None);
        };
        let mut fields = UsageFields::default();
        fields.set_model_name(message.model.as_deref());
        fields.merge_object(&usage);
        Ok(fields.to_usage())
    }

    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        Self::DESCRIPTOR.check_format(format)?;
        estimate::upper_bound(request, &limits)
    }

    fn new_stream(format: ApiFormat) -> AnthropicStream {
        AnthropicStream::new(format)
    }
}

xjp_plugin_sdk::export_provider!(Anthropic);

/// The parts of a Messages response that billing reads; `content` and the rest are
/// parsed (so a malformed body is still malformed) but not kept.
#[derive(Default)]
struct Message<'a> {
    /// `error` is present and not null.
    error: bool,
    kind: Str<'a>,
    model: Str<'a>,
    usage: Obj<UsageObject>,
}

impl<'de> Fields<'de> for Message<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "error" => self.error = value::<NonNull, _>(map)?.0,
            "type" => self.kind = value(map)?,
            "model" => self.model = value(map)?,
            "usage" => self.usage = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::PluginError;

    #[test]
    fn describes_itself() {
        let info = Anthropic::info();
        assert_eq!(info.name, "anthropic");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.formats, vec![ApiFormat::AnthropicMessages]);
    }

    #[test]
    fn error_statuses_and_bodies_yield_no_usage() {
        let usage = br#"{"model":"m","usage":{"input_tokens":3,"output_tokens":4}}"#;
        assert!(Anthropic::extract_response(ApiFormat::AnthropicMessages, 200, usage).unwrap().is_some());
        assert_eq!(Anthropic::extract_response(ApiFormat::AnthropicMessages, 500, usage), Ok(None));
        assert_eq!(
            Anthropic::extract_response(ApiFormat::AnthropicMessages, 502, b"<html>Bad Gateway</html>"),
            Ok(None)
        );
        let error = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(Anthropic::extract_response(ApiFormat::AnthropicMessages, 200, error), Ok(None));
        assert_eq!(Anthropic::extract_response(ApiFormat::AnthropicMessages, 200, br#"{"model":"m"}"#), Ok(None));
        assert_eq!(Anthropic::extract_response(ApiFormat::AnthropicMessages, 200, br#"{"usage":null}"#), Ok(None));
    }

    #[test]
    fn invalid_json_on_success_is_malformed() {
        let got = Anthropic::extract_response(ApiFormat::AnthropicMessages, 200, b"{\"usage\":");
        assert!(matches!(got, Err(PluginError::Malformed(_))));
    }

    #[test]
    fn other_formats_are_unsupported() {
        let limits = ModelLimits { default_max_output_tokens: 1, max_output_tokens: 1 };
        for format in [ApiFormat::OpenaiChat, ApiFormat::GeminiGenerate] {
            assert_eq!(Anthropic::extract_response(format, 200, b"{}"), Err(PluginError::UnsupportedFormat(format)));
            assert_eq!(Anthropic::estimate(format, b"{}", limits), Err(PluginError::UnsupportedFormat(format)));
        }
    }
}
