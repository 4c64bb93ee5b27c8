//! Billing plugin for Google Gemini `generateContent` / `streamGenerateContent`, on both
//! AI Studio (`generativelanguage.googleapis.com`) and Vertex AI.
//!
//! Usage comes from `usageMetadata` (see [`usage`]), streams in SSE or JSON-array framing
//! (see [`stream`]), request bounds, and the requests refused because nothing bounds them,
//! from the request body (see [`estimate`]). Pricing and the budget check are the SDK
//! defaults.

pub mod chunk;
pub mod estimate;

pub mod stream;
pub mod usage;

use chunk::Responses;
use stream::GeminiStream;
use usage::UsageFields;
use xjp_plugin_sdk::{ApiFormat, Descriptor, ModelLimits, PluginResult, Provider, Usage};

/// The Gemini billing provider.
#[derive(Debug)]
pub struct Gemini;

impl Provider for Gemini {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!("gemini", &[ApiFormat::GeminiGenerate]);

    type Stream = GeminiStream;

    /// A response is one object; Vertex wraps some (error) bodies in an array, and a
    /// whole buffered stream is an array of chunks, so arrays are folded like a stream.
    fn extract_response(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        Self::DESCRIPTOR.check_format(format)?;
        if status >= 400 {
            return Ok(None);
        }
        let body: Responses = xjp_plugin_sdk::json::read(body)?;
        if body.iter().any(|r| r.is_error()) {
            return Ok(None);
        }
        let mut fields = UsageFields::default();
        body.iter().for_each(|r| fields.apply_response(r));
        Ok(fields.to_usage())
    }

    fn estimate(format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        Self::DESCRIPTOR.check_format(format)?;
        estimate::upper_bound(request, &limits)
    }

    fn new_stream(format: ApiFormat) -> GeminiStream {
        GeminiStream::new(format)
    }
}

xjp_plugin_sdk::export_provider!(Gemini);

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::PluginError;

    const OK: &[u8] = br#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1,"totalTokenCount":5},"modelVersion":"gemini-2.0-flash"}"#;

    fn extract(status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        Gemini::extract_response(ApiFormat::GeminiGenerate, status, body)
    }

    #[test]
    fn describes_itself() {
        let info = Gemini::info();
        assert_eq!((info.name.as_str(), info.version.as_str()), ("gemini", env!("CARGO_PKG_VERSION")));
        assert_eq!(info.formats, vec![ApiFormat::GeminiGenerate]);
    }

    #[test]
    fn error_statuses_and_bodies_yield_no_usage() {
        assert_eq!(extract(200, OK).unwrap().unwrap().served_model.as_deref(), Some("gemini-2.0-flash"));
        assert_eq!(extract(503, OK), Ok(None));
        assert_eq!(extract(500, b"<html>Internal Server Error</html>"), Ok(None));
        assert_eq!(extract(200, br#"{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT"}}"#), Ok(None));
        assert_eq!(extract(200, br#"[{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT"}}]"#), Ok(None));
        assert_eq!(extract(200, br#"{"candidates":[]}"#), Ok(None));
        assert_eq!(extract(200, b"[]"), Ok(None));
        assert_eq!(extract(200, b"7"), Ok(None));
    }

    #[test]
    fn a_buffered_stream_array_folds_to_its_last_usage() {
        let first = r#"{"candidates":[{"content":{"parts":[{"text":"H"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4}}"#;
        let body = format!("[{first},{}]", std::str::from_utf8(OK).unwrap());
        let u = extract(200, body.as_bytes()).unwrap().unwrap();
        assert_eq!((u.input_uncached_tokens, u.output_tokens), (4, 1));
    }

    #[test]
    fn invalid_json_on_success_is_malformed() {
        assert!(matches!(extract(200, b"{\"candidates\": ["), Err(PluginError::Malformed(_))));
    }

    #[test]
    fn other_formats_are_unsupported() {
        let limits = ModelLimits { default_max_output_tokens: 1, max_output_tokens: 1 };
        for format in [ApiFormat::OpenaiChat, ApiFormat::AnthropicMessages] {
            assert_eq!(Gemini::extract_response(format, 200, OK), Err(PluginError::UnsupportedFormat(format)));
            assert_eq!(Gemini::estimate(format, b"{}", limits), Err(PluginError::UnsupportedFormat(format)));
        }
    }
}
