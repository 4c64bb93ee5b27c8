//! Framing for JSON-array streams (`[{...},\r\n{...}]`), as Gemini sends without `alt=sse`.
//!
//! Emits each top-level element's bytes as soon as it is complete, whatever the
//! chunk boundaries; strings and escapes are tracked so braces inside text are ignored.

/// Incremental splitter of a streamed JSON array into its elements.
#[derive(Debug, Default)]
pub struct JsonArraySplitter {
    buf: Vec<u8>,
    started: bool,
    ended: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

/// Why a JSON-array stream could not be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayFrameError {
    /// A byte that cannot appear at that place of a JSON array.
    Unexpected(u8),
}

impl JsonArraySplitter {
    /// A splitter with no input yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once the closing `]` has been seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// True when an element has started but not finished.
    pub fn in_element(&self) -> bool {
        self.depth > 0
    }

    /// Feeds bytes and calls `on_element` with each complete element.
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        on_element: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Result<(), ArrayFrameError>, E> {
        for &b in chunk {
            if self.depth == 0 {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    b'[' if !self.started => self.started = true,
                    b',' if self.started && !self.ended => {}
                    b']' if self.started && !self.ended => self.ended = true,
                    b'{' | b'[' if self.started && !self.ended => {
                        self.depth = 1;
                        self.buf.clear();
                        self.buf.push(b);
                    }
                    other => return Ok(Err(ArrayFrameError::Unexpected(other))),
                }
                continue;
            }
            self.buf.push(b);
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        on_element(&self.buf)?;
                        self.buf.clear();
                    }
                }
                _ => {}
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_elements_at_every_boundary() {
        let input = b"[{\"a\":\"}]{\\\"\"},\r\n{\"b\":[1,{\"c\":2}]}\r\n]";
        for split in 0..=input.len() {
            let mut s = JsonArraySplitter::new();
            let mut out: Vec<Vec<u8>> = Vec::new();
            let mut sink = |e: &[u8]| {
                out.push(e.to_vec());
                Ok::<(), ()>(())
            };
            s.push(&input[..split], &mut sink).unwrap().unwrap();
            s.push(&input[split..], &mut sink).unwrap().unwrap();
            assert!(s.ended());
            assert_eq!(out, vec![b"{\"a\":\"}]{\\\"\"}".to_vec(), b"{\"b\":[1,{\"c\":2}]}".to_vec()]);
        }
    }

    #[test]
    fn rejects_non_array() {
        let mut s = JsonArraySplitter::new();
        let r = s.push(b"data: {}", &mut |_: &[u8]| Ok::<(), ()>(())).unwrap();
        assert_eq!(r, Err(ArrayFrameError::Unexpected(b'd')));
    }
}
