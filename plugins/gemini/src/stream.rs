//! The `streamGenerateContent` parser, for both framings Google sends.
//!
//! With `alt=sse` every chunk is a `data: {...}` event (`\r\n\r\n` separated); without
//! it the body is one JSON array whose elements arrive over time. Either way each chunk
//! is a `GenerateContentResponse` with cumulative `usageMetadata`, the final one carries
//! a `finishReason`, and an upstream failure arrives as an `{"error": {...}}` element.

use crate::Gemini;
use crate::chunk::{Response, Responses};
use crate::usage::UsageFields;
use xjp_plugin_sdk::framing::{Framer, Framing};
use xjp_plugin_sdk::{ApiFormat, PluginError, PluginResult, Provider, StreamError, StreamOutcome, StreamParse};

/// What the chunks of one stream said so far.
#[derive(Debug, Default)]
struct Chunks {
    usage: UsageFields,
    finished: bool,
    error: Option<StreamError>,
    output_text_bytes: u64,
}

impl Chunks {
    /// Folds in one payload; Vertex may wrap objects in an array of their own, which
    /// are taken one by one.
    fn apply(&mut self, payload: &Responses) {
        payload.iter().for_each(|chunk| self.apply_one(chunk));
    }

    fn apply_one(&mut self, chunk: &Response) {
        if let Some(error) = chunk.error() {
            // The first error is the cause; anything after it is fallout.
            self.error.get_or_insert(error);
            return;
        }
        self.usage.apply_response(chunk);
        self.finished |= chunk.is_final();
        self.output_text_bytes = self.output_text_bytes.saturating_add(chunk.text_bytes());
    }
}

/// Incremental parser of a Gemini stream.
#[derive(Debug)]
pub struct GeminiStream {
    format: ApiFormat,
    framer: Framer,
    chunks: Chunks,
}

impl GeminiStream {
    /// A parser for a stream in `format` (only `gemini-generate` is read).
    pub fn new(format: ApiFormat) -> Self {
        Self { format, framer: Framer::new(), chunks: Chunks::default() }
    }

    fn check_format(&self) -> PluginResult<()> {
        Gemini::DESCRIPTOR.check_format(self.format)
    }

    /// Complete once a final chunk arrived and, for a JSON array, the array closed.
    fn complete(&self) -> bool {
        self.chunks.finished && (self.framer.framing() != Some(Framing::Array) || self.framer.array_closed())
    }
}

impl StreamParse for GeminiStream {
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.check_format()?;
        let chunks = &mut self.chunks;
        self.framer.push(chunk, &mut |payload| {
            let value: Responses = xjp_plugin_sdk::json::from_slice(payload)
                .map_err(|e| PluginError::Malformed(format!("stream chunk: invalid JSON: {e}")))?;
            chunks.apply(&value);
            Ok(())
        })
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        self.check_format()?;
        let chunks = &mut self.chunks;
        // An SSE event cut short by a dropped connection is used only if it is whole.
        self.framer.finish(&mut |payload| {
            if let Ok(value) = xjp_plugin_sdk::json::from_slice::<Responses>(payload) {
                chunks.apply(&value);
            }
            Ok(())
        })?;
        Ok(StreamOutcome {
            usage: self.chunks.usage.to_usage(),
            complete: self.complete(),
            error: self.chunks.error.clone(),
            output_text_bytes: self.chunks.output_text_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> StreamOutcome {
        let mut s = GeminiStream::new(ApiFormat::GeminiGenerate);
        s.push(input).unwrap();
        s.finish().unwrap()
    }

    const FINAL: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1,"totalTokenCount":5},"modelVersion":"gemini-2.5-flash"}"#;

    #[test]
    fn an_array_is_complete_only_when_closed() {
        let open = format!("[{FINAL}\r\n");
        let out = run(open.as_bytes());
        assert!(!out.complete);
        assert_eq!(out.usage.unwrap().output_tokens, 1);
        assert!(run(format!("{open}]").as_bytes()).complete);
    }

    #[test]
    fn sse_and_bare_objects_are_complete_on_the_final_chunk() {
        assert!(run(format!("data: {FINAL}\r\n\r\n").as_bytes()).complete);
        assert!(run(FINAL.as_bytes()).complete);
    }

    #[test]
    fn error_bodies_are_in_band_errors_in_every_framing() {
        let error = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
        for input in [error.to_owned(), format!("[{error}]"), format!("data: {error}\n\n"), format!("[[{error}]]")] {
            let out = run(input.as_bytes());
            let e = out.error.unwrap_or_else(|| panic!("no error from {input}"));
            assert_eq!(e.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
            assert!(out.usage.is_none() && !out.complete);
        }
    }

    #[test]
    fn grounding_in_a_stream_is_one_fee() {
        let grounded = r#"{"candidates":[{"content":{"parts":[{"text":"It rained."}],"role":"model"},"finishReason":"STOP","groundingMetadata":{"webSearchQueries":["weather Paris yesterday"]}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"toolUsePromptTokenCount":120}}"#;
        let out = run(format!("data: {FINAL}\r\n\r\ndata: {grounded}\r\n\r\n").as_bytes());
        let u = out.usage.unwrap();
        assert_eq!(u.fees.len(), 1);
        assert_eq!(u.input_uncached_tokens, 128);
        assert_eq!(out.output_text_bytes, 2 + 10);
    }

    #[test]
    fn a_blocked_prompt_ends_the_stream() {
        let out = run(br#"data: {"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":31,"totalTokenCount":31},"modelVersion":"gemini-2.5-flash"}"#);
        assert!(out.complete);
        assert_eq!(out.usage.unwrap().input_uncached_tokens, 31);
    }

    #[test]
    fn framing_and_json_errors_are_malformed() {
        let mut s = GeminiStream::new(ApiFormat::GeminiGenerate);
        assert!(matches!(s.push(b"[{\"a\":1} x"), Err(PluginError::Malformed(_))));
        let mut s = GeminiStream::new(ApiFormat::GeminiGenerate);
        assert!(matches!(s.push(b"data: {\"a\":\n\n"), Err(PluginError::Malformed(_))));
    }

    #[test]
    fn other_formats_are_refused_on_use() {
        let mut s = GeminiStream::new(ApiFormat::AnthropicMessages);
        assert_eq!(s.push(b"[]"), Err(PluginError::UnsupportedFormat(ApiFormat::AnthropicMessages)));
        assert_eq!(s.finish(), Err(PluginError::UnsupportedFormat(ApiFormat::AnthropicMessages)));
    }
}
