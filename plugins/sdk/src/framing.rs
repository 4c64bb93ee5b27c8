//! Splits a streamed body into JSON payloads, whatever its framing.
//!
//! The framing is chosen by the first non-whitespace byte: `[` is a JSON-array stream,
//! `{` is a bare JSON body (an upstream that answered a streaming request with a plain
//! error object), anything else is server-sent events. The SDK's decoders do the actual
//! framing; this only picks one and reports framing errors as `Malformed`.

use crate::json_array::{ArrayFrameError, JsonArraySplitter};
use crate::sse::SseDecoder;
use crate::{PluginError, PluginResult};

/// How a stream turned out to be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `data: {...}` events separated by blank lines.
    Sse,
    /// One JSON array whose elements arrive one by one.
    Array,
    /// One or more bare JSON objects.
    Objects,
}

#[derive(Debug)]
enum State {
    /// Only whitespace seen so far.
    Undecided,
    Sse(SseDecoder),
    Json {
        splitter: JsonArraySplitter,
        framing: Framing,
    },
    /// A framing error was reported; the rest of the input cannot be framed.
    Failed(String),
}

/// Incremental framer that hands every complete payload to a callback.
#[derive(Debug)]
pub struct Framer {
    state: State,
}

impl Default for Framer {
    fn default() -> Self {
        Self { state: State::Undecided }
    }
}

/// Whitespace allowed before the first payload (the JSON and SSE sets agree on these).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Framer {
    /// A framer with no input yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The framing, once the first non-whitespace byte has arrived.
    pub fn framing(&self) -> Option<Framing> {
        match &self.state {
            State::Undecided | State::Failed(_) => None,
            State::Sse(_) => Some(Framing::Sse),
            State::Json { framing, .. } => Some(*framing),
        }
    }

    /// True once a JSON-array stream's closing `]` has arrived.
    pub fn array_closed(&self) -> bool {
        matches!(&self.state, State::Json { splitter, framing: Framing::Array } if splitter.ended())
    }

    /// Feeds bytes; `on_payload` gets each payload they complete.
    pub fn push(&mut self, chunk: &[u8], on_payload: &mut impl FnMut(&[u8]) -> PluginResult<()>) -> PluginResult<()> {
        let mut chunk = chunk;
        if matches!(self.state, State::Undecided) {
            let Some(start) = chunk.iter().position(|&b| !is_space(b)) else {
                return Ok(());
            };
            chunk = &chunk[start..];
            self.state = match chunk[0] {
                b'[' => State::Json { splitter: JsonArraySplitter::new(), framing: Framing::Array },
                b'{' => {
                    // Bare objects are framed as the elements of an array whose `[` never came.
                    let mut splitter = JsonArraySplitter::new();
                    // `[` is always accepted by a fresh splitter, and nothing is emitted.
                    let _ = splitter.push(b"[", &mut |_: &[u8]| Ok::<(), ()>(()));
                    State::Json { splitter, framing: Framing::Objects }
                }
                _ => State::Sse(SseDecoder::new()),
            };
        }
        match &mut self.state {
            State::Undecided => Ok(()),
            State::Failed(message) => Err(PluginError::Malformed(message.clone())),
            State::Sse(decoder) => decoder.push(chunk, &mut |event| on_payload(&event.data)),
            State::Json { splitter, .. } => match splitter.push(chunk, on_payload)? {
                Ok(()) => Ok(()),
                Err(ArrayFrameError::Unexpected(byte)) => {
                    let message = format!("unexpected byte 0x{byte:02x} between JSON stream elements");
                    self.state = State::Failed(message.clone());
                    Err(PluginError::Malformed(message))
                }
            },
        }
    }

    /// Ends the input. An unterminated last SSE event is still handed over, so the
    /// callback must expect a payload cut short; an unfinished JSON element is dropped.
    pub fn finish(&mut self, on_payload: &mut impl FnMut(&[u8]) -> PluginResult<()>) -> PluginResult<()> {
        match &mut self.state {
            State::Sse(decoder) => decoder.finish(&mut |event| on_payload(&event.data)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(input: &[u8]) -> (Option<Framing>, Vec<Vec<u8>>, bool) {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        let mut sink = |p: &[u8]| {
            out.push(p.to_vec());
            Ok(())
        };
        for byte in input {
            framer.push(std::slice::from_ref(byte), &mut sink).unwrap();
        }
        framer.finish(&mut sink).unwrap();
        (framer.framing(), out, framer.array_closed())
    }

    #[test]
    fn picks_the_framing_from_the_first_byte() {
        let (f, out, closed) = frame(b"\r\n event: ping\ndata: {\"a\":1}\n\n");
        assert_eq!((f, out, closed), (Some(Framing::Sse), vec![b"{\"a\":1}".to_vec()], false));
        let (f, out, closed) = frame(b"\n[{\"a\":1}\r\n,\r\n{\"b\":2}\r\n]");
        assert_eq!((f, out, closed), (Some(Framing::Array), vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()], true));
        let (f, out, closed) = frame(b"{\"error\":{\"code\":1}}\n");
        assert_eq!((f, out, closed), (Some(Framing::Objects), vec![b"{\"error\":{\"code\":1}}".to_vec()], false));
        assert_eq!(frame(b" \r\n"), (None, vec![], false));
    }

    #[test]
    fn a_framing_error_is_reported_and_sticks() {
        let mut framer = Framer::new();
        let mut sink = |_: &[u8]| Ok(());
        framer.push(b"[{}", &mut sink).unwrap();
        assert!(matches!(framer.push(b" x", &mut sink), Err(PluginError::Malformed(_))));
        assert!(matches!(framer.push(b",{}]", &mut sink), Err(PluginError::Malformed(_))));
        assert_eq!(framer.framing(), None);
    }
}
