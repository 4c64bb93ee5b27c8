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
use crate::json::lenient::{
    Fields, Fold, NonNull, NonNullValue, Obj, Seq, Str, StrLen, TextPart, skip, skip_map, value,
};
use crate::json::{AnyValue, Value};
use crate::sse::{SseDecoder, SseEvent};
use crate::{ApiFormat, PluginError, PluginResult, StreamError, StreamOutcome, StreamParse, Usage};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

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
        if event.event.as_deref() == Some("error") {
            self.on_error_event::<D>(data);
            return Ok(());
        }
        match crate::json::from_slice::<Obj<Chunk<D::UsageObject>>>(data) {
            Ok(Obj(Some(chunk))) => {
                self.on_chunk::<D>(chunk);
                Ok(())
            }
            _ if at_eof => Ok(()),
            Ok(Obj(None)) => Err(PluginError::Malformed("stream chunk is not a JSON object".into())),
            Err(e) => Err(PluginError::Malformed(format!("stream chunk is not JSON: {e}"))),
        }
    }

    /// An `event: error` payload: plain text, an error object, or a chunk carrying an
    /// `error`. Rare, so it is read as a whole [`Value`].
    fn on_error_event<D: Dialect>(&mut self, data: &[u8]) {
        let chunk = match crate::json::from_slice::<AnyValue>(data) {
            Ok(AnyValue(v)) if v.is_object() => v,
            _ => {
                let text = String::from_utf8_lossy(data);
                self.record_error(stream_error(&Value::from(text)));
                return;
            }
        };
        if chunk_error(&chunk).is_none() {
            // `event: error` with the error object itself as the payload.
            self.record_error(stream_error(&chunk));
        }
        if let Ok(Obj(Some(typed))) = Obj::<Chunk<D::UsageObject>>::deserialize(&chunk) {
            self.on_chunk::<D>(typed);
        }
    }

    /// Folds one `chat.completion.chunk` (or error chunk) into the state.
    fn on_chunk<D: Dialect>(&mut self, chunk: Chunk<'_, D::UsageObject>) {
        let choices = chunk.choices.0.unwrap_or_default();
        // The chunk's top-level `error`, or else the first choice's (as `chunk_error`).
        if let Some(error) = chunk.error.0.as_ref().or(choices.error.as_ref()) {
            self.record_error(stream_error(error));
        }
        if let Some(model) = chunk.model.as_deref()
            && self.model.as_deref() != Some(model)
        {
            self.model = Some(model.to_owned());
        }
        self.text_bytes = self.text_bytes.saturating_add(choices.text_bytes);
        self.finish_seen |= choices.finish_seen;
        if let Some(mut usage) = chunk.usage.0.as_ref().and_then(D::usage) {
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

/// What a `chat.completion.chunk` says that the stream state needs.
struct Chunk<'a, U> {
    /// The top-level `error`, unless absent or null.
    error: NonNullValue,
    model: Str<'a>,
    choices: Seq<Choices>,
    usage: Obj<U>,
}

impl<U> Default for Chunk<'_, U> {
    fn default() -> Self {
        Chunk { error: NonNullValue::default(), model: Str::default(), choices: Seq::default(), usage: Obj::default() }
    }
}

impl<'de, U: Fields<'de>> Fields<'de> for Chunk<'de, U> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "error" => self.error = value(map)?,
            "model" => self.model = value(map)?,
            "choices" => self.choices = value(map)?,
            "usage" => self.usage = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// The `choices` array folded: text bytes of every `delta`, whether any choice has a
/// non-null `finish_reason`, and the first non-null choice `error`. Elements that are
/// not objects count for nothing.
#[derive(Default)]
struct Choices {
    text_bytes: u64,
    finish_seen: bool,
    error: Option<Value>,
}

impl<'de> Fold<'de> for Choices {
    type Item = Obj<Choice>;

    fn add(&mut self, choice: Obj<Choice>) {
        let Some(choice) = choice.0 else { return };
        self.text_bytes = self.text_bytes.saturating_add(choice.text_bytes);
        self.finish_seen |= choice.finish;
        if self.error.is_none() {
            self.error = choice.error.0;
        }
    }
}

/// One element of `choices`.
#[derive(Default)]
struct Choice {
    /// [`Delta::text_bytes`] of `delta`; zero when `delta` is absent or not an object.
    text_bytes: u64,
    /// `finish_reason` is present and not null.
    finish: bool,
    error: NonNullValue,
}

impl<'de> Fields<'de> for Choice {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "delta" => self.text_bytes = value::<Obj<Delta>, _>(map)?.0.map_or(0, |d| d.text_bytes()),
            "finish_reason" => self.finish = value::<NonNull, _>(map)?.0,
            "error" => self.error = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// The text-carrying fields of a `delta`, as byte lengths.
#[derive(Default)]
struct Delta {
    content: Content,
    reasoning_content: StrLen,
    reasoning: StrLen,
    refusal: StrLen,
    /// Sum over `tool_calls[].function.arguments`.
    tool_arguments: u64,
    /// `function_call.arguments` (the legacy single call).
    function_call_arguments: u64,
}

impl Delta {
    /// Bytes of generated text: `content` (a string, or text parts), `reasoning_content`
    /// or else `reasoning`, `refusal`, and the `arguments` of `tool_calls[].function`
    /// and the legacy `function_call`.
    fn text_bytes(&self) -> u64 {
        let reasoning = self.reasoning_content.0.unwrap_or(self.reasoning.or_zero());
        [self.content.0, reasoning, self.refusal.or_zero(), self.tool_arguments, self.function_call_arguments]
            .into_iter()
            .fold(0, u64::saturating_add)
    }
}

impl<'de> Fields<'de> for Delta {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "content" => self.content = value(map)?,
            "reasoning_content" => self.reasoning_content = value(map)?,
            "reasoning" => self.reasoning = value(map)?,
            "refusal" => self.refusal = value(map)?,
            "tool_calls" => self.tool_arguments = value::<Seq<ToolArguments>, _>(map)?.0.map_or(0, |t| t.0),
            "function_call" => {
                self.function_call_arguments = value::<Obj<Function>, _>(map)?.0.map_or(0, |f| f.arguments.or_zero());
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `content`: a string's length, or the summed `text` lengths of an array of parts;
/// zero for anything else.
#[derive(Default)]
struct Content(u64);

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Content, E> {
                Ok(Content(0))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Content, E> {
                Ok(Content(0))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Content, E> {
                Ok(Content(0))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Content, E> {
                Ok(Content(0))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Content, E> {
                Ok(Content(s.len() as u64))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut parts: A) -> Result<Content, A::Error> {
                let mut n = 0u64;
                while let Some(part) = parts.next_element::<Obj<TextPart>>()? {
                    n = n.saturating_add(part.0.map_or(0, |p| p.text.or_zero()));
                }
                Ok(Content(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Content, A::Error> {
                skip_map(&mut map)?;
                Ok(Content(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// Summed `function.arguments` lengths over `tool_calls`.
#[derive(Default)]
struct ToolArguments(u64);

impl<'de> Fold<'de> for ToolArguments {
    type Item = Obj<ToolCall>;

    fn add(&mut self, call: Obj<ToolCall>) {
        self.0 = self.0.saturating_add(call.0.map_or(0, |c| c.arguments));
    }
}

/// One element of `tool_calls`: the length of `function.arguments`.
#[derive(Default)]
struct ToolCall {
    arguments: u64,
}

impl<'de> Fields<'de> for ToolCall {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "function" => self.arguments = value::<Obj<Function>, _>(map)?.0.map_or(0, |f| f.arguments.or_zero()),
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// A `function` object: only `arguments` counts.
#[derive(Default)]
struct Function {
    arguments: StrLen,
}

impl<'de> Fields<'de> for Function {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "arguments" => self.arguments = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Bytes of generated text in one `delta` (see `Delta::text_bytes`): `content` (a
/// string, or text parts), `reasoning_content` or else `reasoning`, `refusal`, and the
/// `arguments` of `tool_calls[].function` and the legacy `function_call`. Zero for a
/// `delta` that is not an object.
pub fn delta_text_bytes(delta: &Value) -> u64 {
    Obj::<Delta>::deserialize(delta).ok().and_then(|d| d.0).map_or(0, |d| d.text_bytes())
}
