//! JSON-array stream framing for the relay (Gemini's `streamGenerateContent` without
//! `alt=sse`): bytes go to the client element by element, so that a stream cut mid-way can
//! still be closed as a valid array with an error element in Gemini's shape, as Vertex does
//! (`,{"error":{...}}]`). A partial element is held until it completes; every byte of a
//! complete element, separator or whitespace is passed on unchanged, so a whole stream is
//! relayed byte for byte. A body that does not start with `[` (an upstream error object)
//! passes through as it comes.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only whitespace so far.
    Undecided,
    /// Inside the top-level array.
    Array,
    /// The array's closing `]` was seen.
    Closed,
    /// Not an array: everything passes.
    Passthrough,
}

/// Splits a JSON-array stream at element boundaries.
#[derive(Debug)]
pub struct ArrayElements {
    mode: Mode,
    /// Bytes not yet passed on (the start of an element that has not completed).
    pending: BytesMut,
    /// Nesting inside the current element.
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// A scalar element (number, literal) is being read.
    in_scalar: bool,
    /// The last byte passed on that is not whitespace.
    last_passed: Option<u8>,
}

impl Default for ArrayElements {
    fn default() -> Self {
        ArrayElements {
            mode: Mode::Undecided,
            pending: BytesMut::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            in_scalar: false,
            last_passed: None,
        }
    }
}

impl ArrayElements {
    /// A splitter with nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; returns what may go to the client now (possibly empty).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        if self.mode == Mode::Passthrough {
            return Bytes::copy_from_slice(chunk);
        }
        let start = self.pending.len();
        self.pending.extend_from_slice(chunk);
        let mut boundary = None;
        for i in start..self.pending.len() {
            let b = self.pending[i];
            if self.step(b) {
                boundary = Some(i + 1);
            }
            if self.mode == Mode::Passthrough {
                return self.pending.split().freeze();
            }
        }
        match boundary {
            Some(end) => {
                let out = self.pending.split_to(end).freeze();
                if let Some(&b) = out.iter().rev().find(|b| !b.is_ascii_whitespace()) {
                    self.last_passed = Some(b);
                }
                out
            }
            None => Bytes::new(),
        }
    }

    /// Reads one byte; true when the stream is at an element boundary after it.
    fn step(&mut self, b: u8) -> bool {
        match self.mode {
            Mode::Passthrough => false,
            Mode::Closed => true,
            Mode::Undecided => {
                match b {
                    b'[' => self.mode = Mode::Array,
                    b if b.is_ascii_whitespace() => {}
                    _ => self.mode = Mode::Passthrough,
                }
                self.mode != Mode::Passthrough
            }
            Mode::Array => {
                if self.in_string {
                    match (self.escaped, b) {
                        (true, _) => self.escaped = false,
                        (false, b'\\') => self.escaped = true,
                        (false, b'"') => self.in_string = false,
                        _ => {}
                    }
                    return self.depth == 0 && !self.in_string;
                }
                if self.in_scalar {
                    if b == b',' || b == b']' || b.is_ascii_whitespace() {
                        self.in_scalar = false;
                    } else {
                        return false;
                    }
                }
                match b {
                    b'"' => {
                        self.in_string = true;
                        false
                    }
                    b'{' | b'[' => {
                        self.depth += 1;
                        false
                    }
                    b']' if self.depth == 0 => {
                        self.mode = Mode::Closed;
                        true
                    }
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        self.depth == 0
                    }
                    _ if self.depth > 0 => false,
                    b',' => true,
                    b if b.is_ascii_whitespace() => true,
                    _ => {
                        self.in_scalar = true;
                        false
                    }
                }
            }
        }
    }

    /// Whether the body is a JSON array whose closing `]` has not been seen.
    pub fn open(&self) -> bool {
        matches!(self.mode, Mode::Undecided | Mode::Array)
    }

    /// What ends the stream as a valid array with `element` last (held bytes of a partial
    /// element are dropped): `None` when the body is not an open array.
    pub fn close_with(&mut self, element: &str) -> Option<Bytes> {
        let text = match (self.mode, self.last_passed) {
            (Mode::Undecided, _) => format!("[{element}]"),
            (Mode::Array, Some(b'[' | b',')) => format!("{element}\n]"),
            (Mode::Array, _) => format!(",\n{element}\n]"),
            (Mode::Closed | Mode::Passthrough, _) => return None,
        };
        self.pending.clear();
        self.mode = Mode::Closed;
        Some(Bytes::from(text))
    }

    /// Whatever is held (a partial element, or trailing bytes).
    pub fn finish(&mut self) -> Bytes {
        self.pending.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "[{\"a\":\"x]}\\\"\",\"b\":[1,{\"c\":2}]}\n,\r\n{\"d\":3}\n, 4 , \"s,]\" ]\n";

    fn relay(input: &[u8], splits: &[usize]) -> (Vec<u8>, ArrayElements) {
        let mut a = ArrayElements::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &end in splits.iter().chain(std::iter::once(&input.len())) {
            out.extend_from_slice(&a.push(&input[start..end]));
            start = end;
        }
        (out, a)
    }

    #[test]
    fn a_whole_stream_passes_byte_for_byte_at_any_split() {
        let input = STREAM.as_bytes();
        for split in 0..=input.len() {
            let (mut out, mut a) = relay(input, &[split]);
            out.extend_from_slice(&a.finish());
            assert_eq!(out, input, "split at {split}");
            assert!(!a.open());
        }
    }

    #[test]
    fn only_whole_elements_pass_and_a_cut_closes_the_array() {
        let input = STREAM.as_bytes();
        for cut in 0..input.len() {
            let (mut out, mut a) = relay(&input[..cut], &[cut / 2]);
            if let Some(end) = a.close_with(r#"{"error":{"code":502}}"#) {
                out.extend_from_slice(&end);
            } else {
                out.extend_from_slice(&a.finish());
            }
            let text = String::from_utf8(out).unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("cut at {cut}: {e}: {text:?}"));
            let items = v.as_array().unwrap();
            if cut < input.len() - 2 {
                assert_eq!(items.last().unwrap()["error"]["code"], 502, "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_body_that_is_not_an_array_passes_as_it_comes() {
        let (out, mut a) = relay(b"  {\"error\":{\"code\":429}", &[3]);
        assert_eq!(out, b"  {\"error\":{\"code\":429}");
        assert_eq!(a.close_with("{}"), None);
    }
}
