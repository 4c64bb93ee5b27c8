//! The chat completion stream (SSE of `chat.completion.chunk` objects) as a state machine.
//!
//! Framing is the SDK's [`SseDecoder`]; each `data:` payload is `[DONE]` or one JSON
//! chunk. Usage is the last `usage` object seen (OpenAI sends it in a final chunk with
//! `"choices": []` when `stream_options.include_usage` is set; upstreams that repeat
//! cumulative usage on every chunk work too). The stream is complete once `[DONE]`
//! arrives, or a usage chunk arrives after a `finish_reason`, unless the upstream sent
//! an in-band error.

use super::upstream_error::{chunk_error, stream_error};
use super::{Dialect, OpenAiDialect, check_format};
use std::marker::PhantomData;
use xjp_plugin_sdk::json::Value;
use xjp_plugin_sdk::sse::{SseDecoder, SseEvent};
use xjp_plugin_sdk::{ApiFormat, PluginError, PluginResult, StreamError, StreamOutcome, StreamParse, Usage};

/// Incremental parser of a chat completion stream, reading usage with dialect `D`.
///
/// After an error from `push`, the parser stays failed and every later call returns
/// the same error: the bytes after the bad event were not read.
pub struct ChatStream<D: Dialect = OpenAiDialect> {
    format: ApiFormat,
    decoder: SseDecoder,
    state: ChunkState,
    failed: Option<PluginError>,
    dialect: PhantomData<fn() -> D>,
}

/// What the chunks said so far.
#[derive(Debug, Default)]
struct ChunkState {
    usage: Option<Usage>,
    /// The last `model` a chunk named.
    model: Option<String>,
    done: bool,
    finish_seen: bool,
    usage_after_finish: bool,
    error: Option<StreamError>,
    text_bytes: u64,
}

impl<D: Dialect> ChatStream<D> {
    /// A parser for `format`; any format but `openai-chat` fails on first use.
    pub fn new(format: ApiFormat) -> Self {
        Self { format, decoder: SseDecoder::new(), state: ChunkState::default(), failed: None, dialect: PhantomData }
    }

    /// `Err` when the format is unsupported or an earlier call failed.
    fn ready(&self) -> PluginResult<()> {
        check_format(self.format)?;
        self.failed.clone().map_or(Ok(()), Err)
    }
}

impl<D: Dialect> StreamParse for ChatStream<D> {
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.ready()?;
        let state = &mut self.state;
        let result = self.decoder.push(chunk, &mut |event| state.on_event::<D>(event, false));
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        self.ready()?;
        let state = &mut self.state;
        // Events dispatched here had no terminating blank line: the stream was cut.
        let result = self.decoder.finish(&mut |event| state.on_event::<D>(event, true));
        if let Err(e) = result {
            self.failed = Some(e.clone());
            return Err(e);
        }
        Ok(self.state.outcome())
    }
}

impl ChunkState {
    /// Handles one SSE event. `at_eof`: the event was cut off by the end of input, so
    /// a payload that is not JSON is a truncated chunk, not a malformed stream.
    fn on_event<D: Dialect>(&mut self, event: SseEvent, at_eof: bool) -> PluginResult<()> {
        let data = event.data.trim_ascii();
        if data.is_empty() {
            return Ok(());
        }
        if data == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk = match serde_json::from_slice::<Value>(data) {
            Ok(v) if v.is_object() => v,
            _ if event.event.as_deref() == Some("error") => {
                let text = String::from_utf8_lossy(data);
                self.record_error(stream_error(&Value::from(text)));
                return Ok(());
            }
            _ if at_eof => return Ok(()),
            Ok(_) => {
                return Err(PluginError::Malformed("stream chunk is not a JSON object".into()));
            }
            Err(e) => {
                return Err(PluginError::Malformed(format!("stream chunk is not JSON: {e}")));
            }
        };
        if event.event.as_deref() == Some("error") && chunk_error(&chunk).is_none() {
            // `event: error` with the error object itself as the payload.
            self.record_error(stream_error(&chunk));
        }
        self.on_chunk::<D>(&chunk);
        Ok(())
    }

    /// Folds one `chat.completion.chunk` (or error chunk) into the state.
    fn on_chunk<D: Dialect>(&mut self, chunk: &Value) {
        if let Some(error) = chunk_error(chunk) {
            self.record_error(error);
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str)
            && self.model.as_deref() != Some(model)
        {
            self.model = Some(model.to_owned());
        }
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            if let Some(delta) = choice.get("delta") {
                self.text_bytes = self.text_bytes.saturating_add(delta_text_bytes(delta));
            }
            if choice.get("finish_reason").is_some_and(|r| !r.is_null()) {
                self.finish_seen = true;
            }
        }
        if let Some(mut usage) = chunk.get("usage").and_then(D::usage) {
            usage.served_model = self.model.clone();
            self.usage = Some(usage);
            self.usage_after_finish |= self.finish_seen;
        }
    }

    /// Keeps the first in-band error: later ones are usually its consequences.
    fn record_error(&mut self, error: StreamError) {
        self.error.get_or_insert(error);
    }

    fn outcome(&self) -> StreamOutcome {
        StreamOutcome {
            usage: self.usage.clone(),
            complete: self.error.is_none() && (self.done || self.usage_after_finish),
            error: self.error.clone(),
            output_text_bytes: self.text_bytes,
        }
    }
}

/// Bytes of generated text in one `delta`: `content` (a string, or text parts),
/// `reasoning_content` or else `reasoning`, `refusal`, and the `arguments` of
/// `tool_calls[].function` and the legacy `function_call`.
pub fn delta_text_bytes(delta: &Value) -> u64 {
    let str_len = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |s| s.len() as u64);
    let content = match delta.get("content") {
        Some(Value::Array(parts)) => parts.iter().map(|p| str_len(p.get("text"))).fold(0, u64::saturating_add),
        other => str_len(other),
    };
    let reasoning = match delta.get("reasoning_content").and_then(Value::as_str) {
        Some(s) => s.len() as u64,
        None => str_len(delta.get("reasoning")),
    };
    let tools = delta
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|call| str_len(call.get("function").and_then(|f| f.get("arguments"))))
        .fold(0, u64::saturating_add);
    let legacy = str_len(delta.get("function_call").and_then(|f| f.get("arguments")));
    [content, reasoning, str_len(delta.get("refusal")), tools, legacy].into_iter().fold(0, u64::saturating_add)
}
