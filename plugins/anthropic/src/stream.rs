//! The Messages streaming parser: SSE events in, the last cumulative usage out.
//!
//! `message_start` carries `message.usage` (input and cache counts, a small output
//! count); each `message_delta` carries cumulative `usage` whose fields replace the
//! earlier ones; `message_stop` ends the stream properly; an `error` event is an
//! in-band upstream failure. Text, thinking and tool-input deltas are counted in bytes
//! so that an interrupted stream can be estimated.

use crate::framing::Framer;
use crate::usage::UsageFields;
use xjp_plugin_sdk::json::{Value, str_at};
use xjp_plugin_sdk::{ApiFormat, PluginError, PluginResult, StreamError, StreamOutcome, StreamParse};

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
    let error = event.get("error").unwrap_or(&Value::Null);
    StreamError {
        code: str_at(error, &["type"]).map(str::to_owned),
        message: str_at(error, &["message"]).unwrap_or("upstream reported an error").to_owned(),
    }
}

/// The generated text a `content_block_delta` carries.
fn delta_text(delta: &Value) -> Option<&str> {
    let field = match str_at(delta, &["type"])? {
        "text_delta" => "text",
        "thinking_delta" => "thinking",
        "input_json_delta" => "partial_json",
        _ => return None,
    };
    str_at(delta, &[field])
}

impl Events {
    fn apply(&mut self, event: &Value) {
        match str_at(event, &["type"]) {
            Some("message_start") => {
                if let Some(message) = event.get("message") {
                    self.usage.set_model(message);
                    if let Some(usage) = message.get("usage") {
                        self.usage.merge(usage);
                    }
                }
            }
            Some("message_delta") => {
                if let Some(usage) = event.get("usage") {
                    self.usage.merge(usage);
                }
            }
            Some("content_block_delta") => {
                if let Some(text) = event.get("delta").and_then(delta_text) {
                    self.output_text_bytes = self.output_text_bytes.saturating_add(text.len() as u64);
                }
            }
            Some("message_stop") => self.complete = true,
            Some("error") => {
                // The first error is the cause; anything after it is fallout.
                self.error.get_or_insert_with(|| stream_error(event));
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
        match self.format {
            ApiFormat::AnthropicMessages => Ok(()),
            other => Err(PluginError::UnsupportedFormat(other)),
        }
    }
}

impl StreamParse for AnthropicStream {
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.check_format()?;
        let events = &mut self.events;
        self.framer.push(chunk, &mut |payload| {
            let event = xjp_plugin_sdk::json::parse(payload).map_err(|e| match e {
                PluginError::Malformed(m) => PluginError::Malformed(format!("stream event: {m}")),
                other => other,
            })?;
            events.apply(&event);
            Ok(())
        })
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        self.check_format()?;
        let events = &mut self.events;
        // The last event may be cut short when the connection dropped: use it only if
        // it is whole.
        self.framer.finish(&mut |payload| {
            if let Ok(event) = xjp_plugin_sdk::json::parse(payload) {
                events.apply(&event);
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
