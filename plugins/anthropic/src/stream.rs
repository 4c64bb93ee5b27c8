//! The Messages streaming parser: SSE events in, the last cumulative usage out.
//!
//! `message_start` carries `message.usage` (input and cache counts, a small output
//! count); each `message_delta` carries cumulative `usage` whose fields replace the
//! earlier ones; `message_stop` ends the stream properly; an `error` event is an
//! in-band upstream failure. Text, thinking and tool-input deltas are counted in bytes
//! so that an interrupted stream can be estimated.

use crate::Anthropic;
use crate::usage::{UsageFields, UsageObject};
use serde::Deserialize;
use serde::de::MapAccess;
use xjp_plugin_sdk::framing::Framer;
use xjp_plugin_sdk::json::Value;
use xjp_plugin_sdk::json::lenient::{Fields, Obj, Str, StrLen, skip, value};
use xjp_plugin_sdk::{ApiFormat, PluginError, PluginResult, Provider, StreamError, StreamOutcome, StreamParse};

/// What the events of one stream said so far.
#[derive(Debug, Default)]
struct Events {
    usage: UsageFields,
    complete: bool,
    error: Option<StreamError>,
    output_text_bytes: u64,
}

/// The upstream error an `error` event or error body describes.
pub fn stream_error(event: &Value) -> StreamError {
    Obj::<Event>::deserialize(event).ok().and_then(|e| e.0).unwrap_or_default().stream_error()
}

/// The parts of one stream event the parser uses. Which of them matter depends on
/// `type`, which may come after them in the object, so all are read.
#[derive(Default)]
struct Event<'a> {
    kind: Str<'a>,
    /// `message` of `message_start`.
    message: Obj<MessageStart<'a>>,
    /// `usage` of `message_delta`.
    usage: Obj<UsageObject>,
    /// `delta` of `content_block_delta`.
    delta: Obj<Delta<'a>>,
    /// `error` of an `error` event.
    error: Obj<ErrorObject<'a>>,
}

impl<'de> Fields<'de> for Event<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = value(map)?,
            "message" => self.message = value(map)?,
            "usage" => self.usage = value(map)?,
            "delta" => self.delta = value(map)?,
            "error" => self.error = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl Event<'_> {
    fn stream_error(&self) -> StreamError {
        let error = self.error.0.as_ref();
        StreamError {
            code: error.and_then(|e| e.kind.as_deref()).map(str::to_owned),
            message: error.and_then(|e| e.message.as_deref()).unwrap_or("upstream reported an error").to_owned(),
        }
    }
}

/// `message_start.message`: the model and the first usage.
#[derive(Default)]
struct MessageStart<'a> {
    model: Str<'a>,
    usage: Obj<UsageObject>,
}

impl<'de> Fields<'de> for MessageStart<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "model" => self.model = value(map)?,
            "usage" => self.usage = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// A `content_block_delta` delta: its type and the lengths of its text fields.
#[derive(Default)]
struct Delta<'a> {
    kind: Str<'a>,
    text: StrLen,
    thinking: StrLen,
    partial_json: StrLen,
}

impl<'de> Fields<'de> for Delta<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = value(map)?,
            "text" => self.text = value(map)?,
            "thinking" => self.thinking = value(map)?,
            "partial_json" => self.partial_json = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl Delta<'_> {
    /// Bytes of the generated text the delta carries (text, thinking or tool input).
    fn text_bytes(&self) -> Option<u64> {
        match self.kind.as_deref()? {
            "text_delta" => self.text.0,
            "thinking_delta" => self.thinking.0,
            "input_json_delta" => self.partial_json.0,
            _ => None,
        }
    }
}

/// `error`: its `type` and `message`.
#[derive(Default)]
struct ErrorObject<'a> {
    kind: Str<'a>,
    message: Str<'a>,
}

impl<'de> Fields<'de> for ErrorObject<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = value(map)?,
            "message" => self.message = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl Events {
    /// Folds in one event; an event that is not an object says nothing.
    fn apply(&mut self, event: Obj<Event>) {
        let Some(event) = event.0 else { return };
        match event.kind.as_deref() {
            Some("message_start") => {
                if let Some(message) = &event.message.0 {
                    self.usage.set_model_name(message.model.as_deref());
                    if let Some(usage) = &message.usage.0 {
                        self.usage.merge_object(usage);
                    }
                }
            }
            Some("message_delta") => {
                if let Some(usage) = &event.usage.0 {
                    self.usage.merge_object(usage);
                }
            }
            Some("content_block_delta") => {
                if let Some(n) = event.delta.0.as_ref().and_then(Delta::text_bytes) {
                    self.output_text_bytes = self.output_text_bytes.saturating_add(n);
                }
            }
            Some("message_stop") => self.complete = true,
            Some("error") => {
                // The first error is the cause; anything after it is fallout.
                self.error.get_or_insert_with(|| event.stream_error());
            }
            _ => {}
        }
    }
}

/// Incremental parser of an Anthropic Messages stream.
#[derive(Debug)]
pub struct AnthropicStream {
    format: ApiFormat,
    framer: Framer,
    events: Events,
}

impl AnthropicStream {
    /// A parser for a stream in `format` (only `anthropic-messages` is read).
    pub fn new(format: ApiFormat) -> Self {
        Self { format, framer: Framer::new(), events: Events::default() }
    }

    fn check_format(&self) -> PluginResult<()> {
        Anthropic::DESCRIPTOR.check_format(self.format)
    }
}

impl StreamParse for AnthropicStream {
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.check_format()?;
        let events = &mut self.events;
        self.framer.push(chunk, &mut |payload| {
            let event = xjp_plugin_sdk::json::from_slice(payload)
                .map_err(|e| PluginError::Malformed(format!("stream event: invalid JSON: {e}")))?;
            events.apply(event);
            Ok(())
        })
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        self.check_format()?;
        let events = &mut self.events;
        // The last event may be cut short when the connection dropped: use it only if
        // it is whole.
        self.framer.finish(&mut |payload| {
            if let Ok(event) = xjp_plugin_sdk::json::from_slice(payload) {
                events.apply(event);
            }
            Ok(())
        })?;
        Ok(StreamOutcome {
            usage: self.events.usage.to_usage(),
            complete: self.events.complete,
            error: self.events.error.clone(),
            output_text_bytes: self.events.output_text_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> StreamOutcome {
        let mut s = AnthropicStream::new(ApiFormat::AnthropicMessages);
        s.push(input).unwrap();
        s.finish().unwrap()
    }

    #[test]
    fn counts_text_thinking_and_tool_input_bytes() {
        let out = run(concat!(
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"h\u{e9}\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"abc\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\"\"}}\n\n",
        ).as_bytes());
        // "hé" is 3 bytes, "abc" 3, `{"q"` 4; signatures are not text.
        assert_eq!(out.output_text_bytes, 10);
        assert_eq!(out.usage, None);
        assert!(!out.complete);
    }

    #[test]
    fn an_event_cut_at_the_end_is_ignored_but_a_whole_one_is_used() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
        let cut =
            format!("{start}event: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":");
        assert_eq!(run(cut.as_bytes()).usage.unwrap().output_tokens, 1);
        let unterminated = format!(
            "{start}event: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":9}}}}"
        );
        assert_eq!(run(unterminated.as_bytes()).usage.unwrap().output_tokens, 9);
    }

    #[test]
    fn a_plain_error_body_is_an_in_band_error() {
        let out = run(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#);
        let err = out.error.unwrap();
        assert_eq!((err.code.as_deref(), err.message.as_str()), (Some("overloaded_error"), "Overloaded"));
        assert_eq!(out.usage, None);
    }

    #[test]
    fn only_the_first_error_is_kept() {
        let out = run(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}\n\n");
        assert_eq!(out.error.unwrap().message, "Overloaded");
        let out = run(b"event: error\ndata: {\"type\":\"error\"}\n\n");
        assert_eq!(out.error.unwrap(), StreamError { code: None, message: "upstream reported an error".into() });
    }

    #[test]
    fn a_whole_event_that_is_not_json_is_malformed() {
        let mut s = AnthropicStream::new(ApiFormat::AnthropicMessages);
        assert!(matches!(s.push(b"event: message_start\ndata: {oops\n\n"), Err(PluginError::Malformed(_))));
        // The parser carries on with the events after it.
        s.push(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n").unwrap();
        assert!(s.finish().unwrap().complete);
    }

    #[test]
    fn other_formats_are_refused_on_use() {
        let mut s = AnthropicStream::new(ApiFormat::OpenaiChat);
        assert_eq!(s.push(b"data: {}\n\n"), Err(PluginError::UnsupportedFormat(ApiFormat::OpenaiChat)));
        assert_eq!(s.finish(), Err(PluginError::UnsupportedFormat(ApiFormat::OpenaiChat)));
    }
}
